"""The max-norm and spectral-norm targets of a head (``attnsvm probe --targets ...,linf,spec``).

Steepest descent in a norm converges, for linear models, to the max margin in that norm; real
heads are trained with AdamW, which behaves like sign descent (the entrywise max norm) early and
like gradient descent once gradients fall below its ``eps`` (THEORY.md, "Optimizer geometry").
This module solves, on all of the head's rows, the Att-SVMs

    min max_ij |W_ij|  (``linf``)   and   min ||W||_2  (``spec``)   s.t.  A_k^T W Zc_k >= 1

(:func:`attnsvm.svm.solve_linf_constraints`, :func:`attnsvm.svm.solve_spec_constraints`; the
optimum of least Frobenius norm, so that correlations are defined) and reports for each norm
``x`` in ``linf``, ``spec``, beside ``corr_fro`` and ``corr_nuc``:

- ``corr_x`` and the controls of ``corr_fro``: ``corr_x_control`` (mean over the layer's other
  heads), ``corr_x_control_max``, ``corr_x_random``;
- ``margin_ratio_x``: the head's own margin in that norm, ``min_k A_k^T W_h Zc_k / ||W_h||_x``,
  over the optimal ``1 / ||W_x||_x`` (1 at the max-margin direction of that geometry; negative
  when the head violates some of its own constraints);
- ``x_status``, ``x_objective``, ``x_gap`` (certified relative gap), ``x_seconds``,
  ``x_warning`` (the solver's convergence warning, kept in the record).

An infeasible Frobenius instance is infeasible in every norm (same constraints, same
certificate): it is not solved again.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..constraints import ConstraintSet
from ..exceptions import InvalidParameterError
from ..svm import solve_linf_constraints, solve_spec_constraints
from ..svm.norms import norm_value
from .compare import compare, constraint_values, solve_noting_warnings
from .instance import HeadInstance

__all__ = ["PROBE_TARGETS", "GEOMETRY_NORMS", "GEOMETRY_FIELDS", "parse_targets",
           "geometry_block", "geometry_summary"]

#: Targets ``--targets`` accepts (``fro`` is always solved: it decides feasibility).
PROBE_TARGETS = ("fro", "nuc", "linf", "spec")
#: The targets of this module.
GEOMETRY_NORMS = ("linf", "spec")

_PER_NORM = ("corr_{}", "corr_{}_control", "corr_{}_control_max", "corr_{}_random",
             "margin_ratio_{}", "{}_status", "{}_objective", "{}_gap", "{}_seconds",
             "{}_warning")
#: Fields every record has (None when not asked for, not solved or infeasible).
GEOMETRY_FIELDS = tuple(f.format(nm) for nm in GEOMETRY_NORMS for f in _PER_NORM)


def parse_targets(text: str | None) -> tuple[bool | None, tuple[str, ...]]:
    """Read ``--targets`` (comma-separated, of :data:`PROBE_TARGETS`).

    Returns
    -------
    (nuclear, geometry)
        ``nuclear``: whether ``nuc`` is listed (None without ``--targets``: the default);
        ``geometry``: the listed norms of :data:`GEOMETRY_NORMS`, in that order.

    Raises
    ------
    InvalidParameterError
        An unknown or empty entry, or a list without ``fro``.
    """
    if text is None:
        return None, ()
    names = [s.strip() for s in str(text).split(",")]
    bad = [s for s in names if s not in PROBE_TARGETS]
    if bad or not names:
        raise InvalidParameterError(
            f"The 'targets' option must be a comma-separated list of {', '.join(PROBE_TARGETS)}."
            f" Got {text!r} instead.")
    if "fro" not in names:
        raise InvalidParameterError(
            f"The 'targets' option must include fro (it decides feasibility). Got {text!r} "
            "instead.")
    return "nuc" in names, tuple(nm for nm in GEOMETRY_NORMS if nm in names)


def geometry_block(inst: HeadInstance, W_layer: list[np.ndarray], head: int,
                   W_rand: np.ndarray, fro_sol: Any, norms: tuple[str, ...],
                   arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Solve the ``norms`` Att-SVMs of one head on all its rows and compare them with it.

    Parameters
    ----------
    inst : HeadInstance
        The head's constraints, A (m, d) and Zc (m, d + 1).
    W_layer : list of numpy.ndarray, each shape (d, d + 1)
        The layer's heads (``W_layer[head]`` is this one; the others are controls).
    head : int
    W_rand : numpy.ndarray, shape (d, d + 1)
        The random control.
    fro_sol : SVMSolution or None
        The Frobenius solution of the same rows (feasibility; warm start).
    norms : tuple of str
        Some of :data:`GEOMETRY_NORMS`.
    arrays : dict
        Receives ``W_linf`` / ``W_spec`` (float64) and ``dual_linf`` / ``dual_spec``.

    Returns
    -------
    dict
        The fields of :data:`GEOMETRY_FIELDS` (None for norms not in ``norms``).
    """
    out: dict[str, Any] = dict.fromkeys(GEOMETRY_FIELDS)
    if not norms:
        return out
    if inst.A.shape[0] == 0:
        out.update({f"{nm}_status": "empty" for nm in norms})
        return out
    fro_ok = fro_sol is not None and fro_sol.W is not None and fro_sol.status != "infeasible"
    if fro_sol is not None and not fro_ok:
        out.update({f"{nm}_status": fro_sol.status for nm in norms})
        return out
    W_head = W_layer[head]
    vals = constraint_values(W_head, inst.A, inst.Zc)
    cset = ConstraintSet.from_arrays(inst.A, inst.Zc, inst.index)
    for nm in norms:
        solver = solve_linf_constraints if nm == "linf" else solve_spec_constraints
        t0 = time.perf_counter()
        sol, out[f"{nm}_warning"] = solve_noting_warnings(
            solver, cset, warm_start=fro_sol if fro_ok else None)
        out[f"{nm}_seconds"] = time.perf_counter() - t0
        out[f"{nm}_status"] = sol.status
        if sol.W is None or sol.status == "infeasible":
            continue
        W = np.asarray(sol.W, dtype=np.float64)
        obj = norm_value(W, nm)
        nh = norm_value(W_head, nm)
        out.update(compare(W, W_layer, head, W_rand, nm))
        out[f"{nm}_objective"] = obj
        out[f"{nm}_gap"] = sol.info.get("certified_gap")
        out[f"margin_ratio_{nm}"] = float(vals.min() * obj / nh) if nh > 0 else None
        arrays[f"W_{nm}"] = W
        if sol.dual is not None:
            arrays[f"dual_{nm}"] = np.asarray(sol.dual, dtype=np.float64)
    return out


def _mean(xs: list[float]) -> float | None:
    xs = [float(x) for x in xs if x is not None and np.isfinite(float(x))]
    return float(np.mean(xs)) if xs else None


def geometry_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per solved norm ``x``, ``x_vs_fro``: is a head nearer its ``x`` target than its
    Frobenius one?  Over the heads with both: ``heads``, ``corr_higher`` (corr_x > corr_fro),
    ``diff_mean`` (corr_x - corr_fro), ``control_diff_mean`` (the same for each corr minus its
    control), ``ratio_higher`` (margin_ratio_x > margin_ratio: the head's margin is a larger
    share of the optimum in that geometry), ``ratio_mean``, ``ratio_fro_mean``.  Empty when no
    head has such a target (the default run)."""
    out: dict[str, Any] = {}
    for nm in GEOMETRY_NORMS:
        both = [r for r in records if r.get(f"corr_{nm}") is not None
                and r.get("corr_fro") is not None]
        if not both:
            continue
        rat = [r for r in both if r.get(f"margin_ratio_{nm}") is not None
               and r.get("margin_ratio") is not None]
        out[f"{nm}_vs_fro"] = {
            "heads": len(both),
            "corr_higher": sum(1 for r in both if r[f"corr_{nm}"] > r["corr_fro"]),
            "diff_mean": _mean([r[f"corr_{nm}"] - r["corr_fro"] for r in both]),
            "control_diff_mean": _mean([
                (r[f"corr_{nm}"] - r[f"corr_{nm}_control"]) - (r["corr_fro"] - r["corr_control"])
                for r in both if r.get(f"corr_{nm}_control") is not None
                and r.get("corr_control") is not None]),
            "ratio_higher": sum(1 for r in rat if r[f"margin_ratio_{nm}"] > r["margin_ratio"]),
            "ratio_mean": _mean([r[f"margin_ratio_{nm}"] for r in rat]),
            "ratio_fro_mean": _mean([r["margin_ratio"] for r in rat]),
        }
    return out
