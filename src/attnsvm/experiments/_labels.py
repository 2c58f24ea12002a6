"""Human labels of the geometry studies' runs and norms, for plots, verdicts and the report.

The runs of ``optimizer-geometry`` (``ngd_W``, ``adam1e-8_KQ``, ...) and
``minibatch-geometry`` (``signum_seq_rand``, ``adam_full``, ...) are keyed by short names in
``summary.json``; everything a reader sees spells them out.
"""

from __future__ import annotations

import re

__all__ = ["NORM_LABELS", "run_label", "norm_label", "RUN_KEY"]

#: norm key -> its name in prose
NORM_LABELS = {"fro": "Frobenius", "nuc": "nuclear", "linf": "max-norm", "spec": "spectral",
               "lp": "l_p"}

#: first part of a run key (the optimizer) -> words
_OPTIMIZERS = {"ngd": "NGD", "gd": "GD", "sign": "sign descent", "adam0": "Adam (eps 0)",
               "adam1e-8": "Adam (eps 1e-8)", "adam1e-16": "Adam (eps 1e-16)",
               "spectral": "spectral descent", "muon": "Muon", "signum": "Signum",
               "signum99": "Signum 0.99", "adam": "Adam", "polyak": "Polyak",
               "md": "mirror descent"}
#: later parts -> words
_PARTS = {"W": "W", "KQ": "(K,Q)", "full": "full batch", "seq": "per sequence",
          "rand": "random order", "eps": "eps 1e-8"}

#: a run key at the start of a headline key: optimizer, then its parts
RUN_KEY = re.compile(r"^(ngd|sign|adam0|adam1e-8|adam1e-16|spectral|muon|signum99|signum|adam)"
                     r"((?:_(?:W|KQ|full|seq|eps|rand))+)(?=_|$)")


def norm_label(norm: str) -> str:
    """``"linf"`` -> ``"max-norm"``; an unknown key is returned as it is."""
    return NORM_LABELS.get(norm, norm)


def run_label(run: str, param: bool = True) -> str:
    """A run key in words (``per sequence``: one sequence per step; ``Signum 0.99``: momentum
    0.99); ``param=False`` leaves out the parametrization (``W``, ``(K,Q)``),
    for panels whose title names it.

    >>> run_label("adam1e-8_KQ"), run_label("ngd_W", param=False)
    ('Adam (eps 1e-8) on (K,Q)', 'NGD')
    >>> run_label("signum_seq_rand"), run_label("signum99_seq")
    ('Signum, per sequence, random order', 'Signum 0.99, per sequence')
    """
    head, *rest = run.split("_")
    words = _OPTIMIZERS.get(head, head)
    params = [p for p in rest if p in ("W", "KQ")]
    others = [_PARTS.get(p, p) for p in rest if p not in ("W", "KQ")]
    out = ", ".join([words, *others])
    if param and params:
        out += " on " + _PARTS[params[0]]
    return out
