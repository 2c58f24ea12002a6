"""Helpers shared by the figure modules: instances, SVM targets, correlations, plotting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..instance import Instance, random_instance
from ..svm import SVMSolution, solve_fro, solve_lp, solve_nuc

__all__ = ["make_instances", "optimal_or_first", "corr", "solve", "solution_fields", "targets",
           "new_figure", "save_figure", "SOLVE_TOL", "log_steps"]

#: KKT accuracy an SVM solution must reach to count as certified.
SOLVE_TOL = 1e-6


def make_instances(n: int, T: int, d: int, seeds: Sequence[int], cross: bool = True
                   ) -> list[Instance]:
    """The papers' random instances, one per seed."""
    return [random_instance(n, T, d, seed=int(s), cross=cross) for s in seeds]


def optimal_or_first(instance: Instance) -> tuple[np.ndarray, bool]:
    """Optimal tokens, or the first argmax of the scores when they tie (as the official code);
    the flag says whether there was a tie (the caller records it)."""
    from ..instance import TiedTokensError

    try:
        return instance.optimal_tokens(), False
    except TiedTokensError:
        return np.argmax(instance.token_scores(), axis=1).astype(np.int64), True


def corr(A: Any, B: Any) -> float:
    """``<A, B> / (||A||_F ||B||_F)``; NaN when either is missing or zero."""
    if A is None or B is None:
        return float("nan")
    a = np.asarray(A, dtype=np.float64).ravel()
    b = np.asarray(B, dtype=np.float64).ravel()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den > 0 and np.isfinite(den) else float("nan")


def solve(instance: Instance, alpha: np.ndarray, norm: str = "fro", p: float = 3.0
          ) -> SVMSolution:
    """Att-SVM of ``instance`` for ``alpha`` in the Frobenius, nuclear or entrywise l_p norm."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inaccuracy is recorded, not warned about
        if norm == "fro":
            return solve_fro(instance, alpha)
        if norm == "nuc":
            return solve_nuc(instance, alpha)
        return solve_lp(instance, p, alpha)


def solution_fields(sol: SVMSolution, prefix: str) -> dict[str, Any]:
    """Status, norm, rank and accuracy of a solution as flat row fields."""
    feas = sol.W is not None
    return {
        f"{prefix}_status": sol.status,
        f"{prefix}_certified": bool(sol.is_optimal(SOLVE_TOL) if feas
                                    else sol.is_certified_infeasible()),
        f"{prefix}_objective": float(sol.objective) if feas else float("nan"),
        f"{prefix}_rank": int(sol.rank) if feas else -1,
        f"{prefix}_residual": float(max(sol.primal_residual(), sol.stationarity_residual()))
        if feas else float("nan"),
    }


def targets(instances: Sequence[Instance], alphas: np.ndarray, norm: str = "fro",
            cache: dict[Any, SVMSolution] | None = None, p: float = 3.0
            ) -> tuple[np.ndarray, list[SVMSolution]]:
    """SVM solutions for each instance's token choice, stacked as (B, d, d) (NaN if infeasible).

    ``cache`` (keyed by instance index, alpha and norm) avoids solving the same problem twice.
    """
    d = instances[0].d
    out = np.full((len(instances), d, d), np.nan)
    sols = []
    for b, (inst, a) in enumerate(zip(instances, alphas, strict=False)):
        key = (b, tuple(int(x) for x in a), norm)
        if cache is not None and key in cache:
            sol = cache[key]
        else:
            sol = solve(inst, np.asarray(a, dtype=np.int64), norm, p)
            if cache is not None:
                cache[key] = sol
        if sol.W is not None:
            out[b] = sol.W
        sols.append(sol)
    return out, sols


def log_steps(steps: int, per_decade: int = 12) -> np.ndarray:
    """0, then roughly log-spaced steps up to ``steps`` (included)."""
    if steps <= 0:
        return np.array([0], dtype=np.int64)
    pts = np.unique(np.round(np.logspace(0, np.log10(steps),
                                         max(2, int(per_decade * np.log10(steps)) + 1))))
    return np.unique(np.r_[0, pts.astype(np.int64), steps])


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.4
               ) -> tuple[Any, Any]:
    """A matplotlib figure (Agg) with a grid of axes (always a 2-D array)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             squeeze=False)
    return fig, axes


def save_figure(fig: Any, path: str | Path, title: str | None = None) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import io

    import matplotlib.pyplot as plt

    from .._io import atomic_write_bytes

    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
