"""``attention_scores``: the analysed form's logits, public, to hold against any model.

>>> import numpy as np                                                # doctest: +SKIP
>>> from attnsvm.probe import attention_scores                        # doctest: +SKIP
>>> S = attention_scores("minilm", np.array([101, 7592, 2088, 102]), layer=0)  # doctest: +SKIP
>>> S.shape                                                           # doctest: +SKIP
(12, 4, 4)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import InvalidInputError
from .adapters import find_adapter
from .capture import Adapter
from .corpus import Sequence
from .form import head_logits
from .models import ModelSource, load_model
from .preflight import check_in_memory

__all__ = ["attention_scores", "as_adapter", "ids_sequence"]


def as_adapter(model: Any, tokenizer: Any = None) -> tuple[Any, Adapter]:
    """``(ModelSource, Adapter)`` of a name, a folder, a loaded model object or an adapter.

    Raises
    ------
    InvalidInputError
        Unknown name or path, or an architecture the probe does not analyse exactly.
    """
    if model is None or isinstance(model, (str, os.PathLike)):
        return load_model(model)
    if isinstance(model, Adapter):
        return ModelSource(_label(model.model), Path("."), None), model
    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[1], Adapter):
        return model
    lens = hasattr(model, "cfg") and hasattr(model, "blocks")  # TransformerLens
    if not (hasattr(model, "config") or lens) or not hasattr(model, "named_modules"):
        raise InvalidInputError(
            f"The 'model' argument must be a name, a folder, a transformers model or a "
            f"TransformerLens HookedTransformer. Got "
            f"{type(model).__name__} instead."
        )

    check_in_memory(model)
    model.eval()
    return ModelSource(_label(model), Path("."), None), find_adapter(model, tokenizer)


def _label(model: Any) -> str:
    name = getattr(getattr(model, "config", None), "name_or_path", "") or ""
    lens = getattr(getattr(model, "cfg", None), "model_name", "") or ""
    if not name and lens and lens != "custom":
        name = f"{lens} (TransformerLens)"
    return str(name) or f"{type(model).__name__} (in memory)"


def ids_sequence(input_ids: Any) -> Sequence:
    """A :class:`Sequence` of 1-D token ids (no special tokens marked)."""
    ids = np.asarray(input_ids.detach().cpu() if hasattr(input_ids, "detach") else input_ids)
    if ids.ndim == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.ndim != 1 or ids.size < 1 or not np.issubdtype(ids.dtype, np.integer):
        raise InvalidInputError(
            f"The 'input_ids' argument must be 1-D integer token ids. Got shape {ids.shape} "
            f"of {ids.dtype} instead."
        )
    return Sequence(ids=ids.astype(np.int64), special=np.zeros(ids.size, dtype=bool),
                    tokens=("",) * int(ids.size))


def attention_scores(model: Any, input_ids: Any, layer: int, tokenizer: Any = None
                     ) -> np.ndarray:
    """The logits the model's softmax receives at ``layer``, from the analysed form.

    Parameters
    ----------
    model : str, path, transformers model or Adapter
        A name (``minilm``, ``smollm2``), a local folder, or a model already in memory (any
        attention implementation).
    input_ids : array-like of int, shape (T,)
    layer : int
        Counted from 0.
    tokenizer : optional
        Only stored with an in-memory model.

    Returns
    -------
    numpy.ndarray, shape (H, T, T)
        Entry (h, p, r): head h, query p, key r; soft-capped where the model caps (the
        Att-SVM is of the pre-cap score), ``-inf`` where masked (causal, sliding window).
    """
    _, ad = as_adapter(model, tokenizer)
    if not 0 <= int(layer) < ad.num_layers:
        raise InvalidInputError(
            f"The 'layer' argument must be in 0..{ad.num_layers - 1}. Got {layer!r} instead."
        )
    cap = ad.capture(ids_sequence(input_ids), [int(layer)])
    return np.stack([head_logits(f, cap) for f in ad.head_forms(int(layer))])
