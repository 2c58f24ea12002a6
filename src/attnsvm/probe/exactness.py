"""Is the analysed form the head?  Its probabilities against the model's, its argmaxes
against the model's selections.

- ``exact``: the analysed form's probabilities (:func:`attnsvm.probe.form.head_probs`)
  equal the model's own (eager attention) within :data:`PROB_TOL` on every captured
  sequence (for rotary heads also: the lifted form's row values equal the score differences,
  see :mod:`attnsvm.probe.rope`);
- ``selections_reproduced``: share of rows (with at least two keys) whose argmax under the
  analysed form is the model's selection ``alpha``;
- ``exact_prob_error``: the largest probability difference;
- ``rotary``: whether the head rotates q and k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .capture import Capture, HeadForm
from .form import head_logits
from .instance import HeadInstance

__all__ = ["exactness", "EXACT_FIELDS", "PROB_TOL"]

EXACT_FIELDS = ("exact", "selections_reproduced", "exact_prob_error", "rotary")

#: Largest probability difference accepted as "the same head" (float32 model, float64 form).
PROB_TOL = 1e-4


def exactness(form: HeadForm, captures: list[Capture], inst: HeadInstance) -> dict[str, Any]:
    """The fields of :data:`EXACT_FIELDS` for one head."""
    err, hits, total, row = 0.0, 0, 0, 0
    for cap in captures:
        L = head_logits(form, cap)
        T = L.shape[0]
        S = L - L.max(axis=1, keepdims=True)
        E = np.exp(S)
        P = E / E.sum(axis=1, keepdims=True)
        err = max(err, float(np.abs(P - cap.P[form.layer][form.head]).max()))
        multi = inst.n_keys[row : row + T] > 1
        pred = L.argmax(axis=1)
        hits += int(np.sum((pred == inst.alpha[row : row + T]) & multi))
        total += int(multi.sum())
        row += T
    return {
        "exact": bool(err <= PROB_TOL),
        "selections_reproduced": hits / total if total else None,
        "exact_prob_error": err,
        "rotary": bool(form.rot_dims),
    }
