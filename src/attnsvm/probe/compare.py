"""How a target matrix is compared with a head: correlation and the controls."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .._numerics import correlation
from ..exceptions import ConvergenceWarning

__all__ = ["corr", "compare", "random_control", "constraint_values", "solve_noting_warnings"]


#: ``<W1, W2> / (||W1||_F ||W2||_F)`` in float64 (nan if either is zero): the one correlation
#: of the package, :func:`attnsvm._numerics.correlation`, under the probe's short name
corr = correlation


def random_control(shape: tuple[int, int], seed: int, layer: int, head: int) -> np.ndarray:
    """The seeded Gaussian control matrix of one head."""
    rng = np.random.default_rng(seed + 1000 * layer + head)
    return rng.standard_normal(shape)


def constraint_values(W: np.ndarray, A: np.ndarray, Zc: np.ndarray) -> np.ndarray:
    """``A_k^T W Zc_k`` for every constraint, shape (m,)."""
    if A.shape[0] == 0:
        return np.zeros(0)
    return np.einsum("me,me->m", A @ W, Zc)


def compare(
    W_sol: np.ndarray, W_layer: list[np.ndarray], head: int, W_rand: np.ndarray, name: str
) -> dict[str, float]:
    """The correlation of a target ``W_sol`` with the head and its controls.

    Parameters
    ----------
    W_sol : numpy.ndarray, shape (d, d + 1)
        The target (an SVM solution).
    W_layer : list of numpy.ndarray, each shape (d, d + 1)
        Every head of the layer; ``W_layer[head]`` is the probed one, the others are controls.
    head : int
    W_rand : numpy.ndarray, shape (d, d + 1)
        The random control.
    name : str
        Key prefix: ``corr_{name}``, ``corr_{name}_control`` (mean over the other heads),
        ``corr_{name}_control_max`` and ``corr_{name}_random``.
    """
    others = [corr(W_sol, W) for h, W in enumerate(W_layer) if h != head]
    return {
        f"corr_{name}": corr(W_layer[head], W_sol),
        f"corr_{name}_control": float(np.mean(others)) if others else float("nan"),
        f"corr_{name}_control_max": float(np.max(others)) if others else float("nan"),
        f"corr_{name}_random": corr(W_sol, W_rand),
    }


def solve_noting_warnings(solver: Callable[..., Any], *args: Any,
                          **kwargs: Any) -> tuple[Any, str | None]:
    """Run one head's solve; its convergence warnings become the record's note.

    A solver's :class:`ConvergenceWarning` belongs to the head's record, not to the progress
    stream; other warnings are re-issued as they were.

    Returns
    -------
    tuple
        The solver's answer and the convergence warnings joined by ``"; "`` (None: none).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        sol = solver(*args, **kwargs)
    notes = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return sol, "; ".join(notes) if notes else None
