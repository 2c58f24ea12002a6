"""Per-head comparison of a head's key-query form with the Att-SVM of its own selections.

For one head with bilinear form ``W_h`` (d, d + 1) and instance ``(A, Zc)`` (see
:mod:`attnsvm.probe.instance`), every target ``W_*`` below is compared with the head by the
correlation ``<W_h, W_*> / (||W_h|| ||W_*||)`` and with the same controls: the mean (and the
largest) correlation of ``W_*`` with the layer's other heads, and with a seeded Gaussian matrix.

- ``fro``: the Frobenius Att-SVM on all rows: ``corr_fro``, ``corr_control``,
  ``corr_control_max``, ``corr_random``; ``margin_ratio``: the margin
  ``min_k A_k^T W_h Zc_k / ||W_h||`` over the max margin ``1 / ||W_fro||`` (at most 1; negative
  when some constraint is violated); ``violated_share``: share of constraints with
  ``A_k^T W_h Zc_k <= 0``.  The same on the confident rows only (suffix ``_conf``).
- ``nuc``: the nuclear-norm Att-SVM ``W_*^mm`` on all rows (the limit of gradient descent on
  factors W_K, W_Q, the right target for a real head): ``corr_nuc``, ``corr_nuc_control``, ...,
  ``rank_nuc`` beside the head's ``d_head`` (:mod:`attnsvm.probe.nuclear`).
- ``linf``, ``spec`` (``ProbeOptions.geometry``): the max-norm and spectral-norm Att-SVMs on all
  rows: ``corr_linf``, ``corr_linf_control``, ..., ``margin_ratio_linf``
  (:mod:`attnsvm.probe.geometry`).
- ``graph`` (decoders): the Graph-SVM of the head's token-priority graphs
  (:mod:`attnsvm.probe.graph`): ``corr_graph``, ``corr_graph_control``, ...
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..constraints import ConstraintSet
from ..exceptions import InvalidParameterError
from ..svm import solve_fro_constraints
from .capture import Capture, position_free_scores
from .compare import compare, constraint_values, corr, random_control
from .geometry import GEOMETRY_NORMS, geometry_block
from .graph import GRAPH_FIELDS, graph_block
from .instance import HeadInstance
from .nuclear import nuclear_block, nuclear_skipped

__all__ = ["ProbeOptions", "corr", "compare", "random_control", "constraint_values",
           "argmax_agreement", "analyze_head"]


@dataclass(frozen=True)
class ProbeOptions:
    """Settings of the per-head analysis.

    Attributes
    ----------
    confidence : float
        Rows whose largest probability exceeds this are "confident".
    nuclear : bool
        Solve the nuclear-norm Att-SVM too (default).
    nuclear_rows : int or None
        Cap on the query rows (the first ones) of the nuclear-norm instance; None: all rows.
    graph : bool or None
        Solve the Graph-SVM of the head's token-priority graphs; None (default): for causal
        (decoder) heads only.
    seed : int
        Seed of the random control matrices (per head ``seed + 1000 * layer + head``).
    tol : float
        Feasibility tolerance of the Frobenius solver.
    rope_nuclear_rows : int
        Rotary heads: query rows of the group-nuclear lifted Att-SVM (with ``nuclear``; the
        first ones).  The lifted Frobenius target always uses all rows.
    geometry : tuple of str
        Also solve these of ``("linf", "spec")`` on all rows (default none).
    """

    confidence: float = 0.5
    nuclear: bool = True
    nuclear_rows: int | None = None
    graph: bool | None = None
    seed: int = 0
    tol: float = 1e-9
    rope_nuclear_rows: int = 8
    geometry: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [g for g in self.geometry if g not in GEOMETRY_NORMS]
        if bad:
            raise InvalidParameterError(
                f"The 'geometry' option must hold only {', '.join(GEOMETRY_NORMS)}. Got "
                f"{bad[0]!r} instead.")
        if not 0.0 <= float(self.confidence) < 1.0:
            raise InvalidParameterError(
                f"The 'confidence' option must be in [0, 1). Got {self.confidence!r} instead."
            )
        if self.nuclear_rows is not None and int(self.nuclear_rows) < 1:
            raise InvalidParameterError(
                f"The 'nuclear-rows' option must be at least 1. Got {self.nuclear_rows!r} "
                "instead."
            )


#: The per-head fields that only a feasible solution fills.
_NO_SOLUTION: dict[str, Any] = dict.fromkeys(
    ("corr_fro", "corr_control", "corr_control_max", "corr_random", "margin_ratio", "objective",
     "duality_gap", "support"))


def argmax_agreement(
    W: np.ndarray, captures: list[Capture], layer: int, inst: HeadInstance, causal: bool,
    features: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> float:
    """Share of rows (with at least two keys) where the form's argmax is the model's.

    Parameters
    ----------
    W : numpy.ndarray, shape (d, d + 1)
    captures : list of Capture
    layer : int
    inst : HeadInstance
        Provides the model's selections ``alpha`` in row order.
    causal : bool
    features : list of (K (T, d), Q (T, d + 1)), optional
        The head's own coordinates (QK-norm heads); default the layer input.
    """
    hits, total, row = 0, 0, 0
    for si, cap in enumerate(captures):
        if features is None:
            S = position_free_scores(W, cap.X[layer])
        else:
            K, Q = features[si]
            S = Q @ (K @ W).T
        T = S.shape[0]
        if causal:
            S = np.where(np.tril(np.ones((T, T), dtype=bool)), S, -np.inf)
        S = np.where(_seen(inst, row, T), S, -np.inf)
        pred = S.argmax(axis=1)
        multi = inst.n_keys[row : row + T] > 1
        hits += int(np.sum((pred == inst.alpha[row : row + T]) & multi))
        total += int(multi.sum())
        row += T
    return hits / total if total else float("nan")


def _seen(inst: HeadInstance, row: int, T: int) -> np.ndarray:
    """Keys each of the T rows from ``row`` on sees (the rows' constraint keys and alpha)."""
    seen = np.zeros((T, T), dtype=bool)
    seen[np.arange(T), inst.alpha[row : row + T]] = True
    sel = (inst.index[:, 0] >= row) & (inst.index[:, 0] < row + T)
    seen[inst.index[sel, 0] - row, inst.index[sel, 1]] = True
    return seen


def _solve_block(
    A: np.ndarray,
    Zc: np.ndarray,
    index: np.ndarray,
    W_head: np.ndarray,
    W_layer: list[np.ndarray],
    head: int,
    W_rand: np.ndarray,
    tol: float,
    warm: Any = None,
) -> tuple[dict[str, Any], Any]:
    """Solve the Frobenius Att-SVM of one constraint block and compare it with the head."""
    rec: dict[str, Any] = {"m": int(A.shape[0]), "certified": None}
    vals = constraint_values(W_head, A, Zc)
    rec["violated_share"] = float(np.mean(vals <= 0)) if vals.size else 0.0
    if A.shape[0] == 0:
        rec.update(_NO_SOLUTION, status="empty", feasible=None, solve_seconds=0.0)
        return rec, None
    t0 = time.perf_counter()
    kw: dict[str, Any] = {"tol": tol}
    if warm is not None:
        kw["warm_start"] = warm
    sol = solve_fro_constraints(ConstraintSet.from_arrays(A, Zc, index), **kw)
    rec["solve_seconds"] = time.perf_counter() - t0
    rec["status"] = sol.status
    rec["feasible"] = sol.status != "infeasible"
    if sol.W is None or sol.status == "infeasible":
        has_cert = sol.certificate is not None
        cert_res = sol.certificate_residual() if has_cert else None
        rec["certified"] = bool(has_cert and sol.is_certified_infeasible())
        rec.update(_NO_SOLUTION, certificate_residual=cert_res)
        return rec, sol
    W = np.asarray(sol.W)
    c = compare(W, W_layer, head, W_rand, "fro")
    nW, nH = float(np.linalg.norm(W)), float(np.linalg.norm(W_head))
    rec.update(
        corr_fro=c["corr_fro"],
        corr_control=c["corr_fro_control"],
        corr_control_max=c["corr_fro_control_max"],
        corr_random=c["corr_fro_random"],
        margin_ratio=float(vals.min() * nW / nH) if nH > 0 else None,
        objective=nW,
        duality_gap=float(sol.duality_gap()),
        support=int(np.sum(sol.support_mask())),
    )
    return rec, sol


def analyze_head(
    inst: HeadInstance,
    W_layer: list[np.ndarray],
    head: int,
    layer: int,
    captures: list[Capture],
    causal: bool,
    approximate: bool,
    opts: ProbeOptions,
    d_head: int | None = None,
    features: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Compare one head with the Att-SVM solutions of its own selections.

    Parameters
    ----------
    inst : HeadInstance
        The head's constraints (m rows; A (m, d), Zc (m, d + 1)).
    W_layer : list of numpy.ndarray, each shape (d, d + 1)
        Bilinear forms of every head of the layer (controls); ``W_layer[head]`` is this head's.
    head, layer : int
    captures : list of Capture
    causal, approximate : bool
        Decoder masking; rotary embeddings make the form position-free only.
    opts : ProbeOptions
    d_head : int, optional
        The head's width (``W_h`` has rank at most ``d_head``), reported beside ``rank_nuc``.
    features : list of (K, Q), optional
        The head's own coordinates (QK-norm heads), per sequence.

    Returns
    -------
    (dict, dict of numpy.ndarray)
        The head's summary record (JSON-ready) and the arrays to save.
    """
    t0 = time.perf_counter()
    W_head = W_layer[head]
    W_rand = random_control(W_head.shape, opts.seed, layer, head)
    mp = inst.max_prob
    rec: dict[str, Any] = {
        "layer": layer,
        "head": head,
        "n": inst.n,
        "T": int(inst.n_keys.max()) if inst.n else 0,
        "approximate": approximate,
        "argmax_reproduced": argmax_agreement(W_head, captures, layer, inst, causal, features),
        "max_prob_mean": float(mp.mean()),
        "max_prob_q10": float(np.quantile(mp, 0.1)),
        "max_prob_median": float(np.median(mp)),
        "max_prob_q90": float(np.quantile(mp, 0.9)),
        "max_prob_hist": np.histogram(mp, bins=10, range=(0.0, 1.0))[0].tolist(),
        "sink_share": float(inst.sink.mean()),
        "ties": int(inst.tie.sum()),
        "identical_keys": inst.identical_keys,
        "contradictory_pairs": inst.contradictory_pairs,
    }
    full, sol = _solve_block(inst.A, inst.Zc, inst.index, W_head, W_layer, head, W_rand, opts.tol)
    rec.update(full)
    arrays: dict[str, np.ndarray] = {
        "W_head": np.asarray(W_head, dtype=np.float64),
        "alpha": inst.alpha,
        "max_prob": mp,
        "index": inst.index.astype(np.int32),
    }
    if sol is not None:
        arrays["dual"] = np.asarray(sol.dual, dtype=np.float64)
        if sol.W is not None and rec["feasible"]:
            arrays["W_fro"] = np.asarray(sol.W, dtype=np.float64)
        if sol.certificate is not None:
            arrays["certificate"] = np.asarray(sol.certificate, dtype=np.float64)

    conf_rows = mp > opts.confidence
    keep = conf_rows[inst.row_of]
    if keep.all():  # every row is confident: the same instance, reuse its solution
        conf, sol_c = dict(full), sol
        conf["solve_seconds"] = 0.0
    else:
        A, Zc, idx = inst.A[keep], inst.Zc[keep], inst.index[keep]
        warm = None  # the full problem's support, restricted to the confident rows
        if sol is not None and sol.W is not None and rec["feasible"]:
            warm = np.flatnonzero(sol.support_mask()[keep])
        conf, sol_c = _solve_block(A, Zc, idx, W_head, W_layer, head, W_rand, opts.tol, warm)
    rec["n_conf"] = int(conf_rows.sum())
    rec.update({f"{k}_conf": v for k, v in conf.items()})
    if sol_c is not None and sol_c.W is not None and conf["feasible"]:
        arrays["W_fro_conf"] = np.asarray(sol_c.W, dtype=np.float64)

    if opts.nuclear:
        rec.update(nuclear_block(inst, W_layer, head, W_rand, sol, opts.nuclear_rows, arrays))
    else:
        rec.update(nuclear_skipped(inst, W_layer[head]))
    rec["d_head"] = d_head
    rec.update(geometry_block(inst, W_layer, head, W_rand, sol, tuple(opts.geometry), arrays))
    if opts.graph or (opts.graph is None and causal):
        rec.update(graph_block(captures, layer, head, causal, W_layer, W_rand, opts.tol, arrays,
                               nuclear=opts.nuclear))
    else:
        rec.update(dict.fromkeys(GRAPH_FIELDS))
    rec["seconds"] = time.perf_counter() - t0
    return rec, arrays
