"""Per-head comparison of a head's key-query form with the Att-SVM of its own selections.

For one head with bilinear form ``W_h`` (d, d + 1) and instance ``(A, Zc)`` (see
:mod:`attnsvm.probe.instance`):

- ``corr_fro``: correlation ``<W_h, W_fro> / (||W_h|| ||W_fro||)`` with the Frobenius Att-SVM
  solution; ``corr_control``: the mean correlation of the same ``W_fro`` with the other heads of
  the layer (``corr_control_max`` the largest); ``corr_random``: with a seeded Gaussian matrix.
- ``margin_ratio``: the margin ``min_k A_k^T W_h Zc_k / ||W_h||`` divided by the max margin
  ``1 / ||W_fro||`` (at most 1; negative when some constraint is violated).
- ``violated_share``: share of constraints with ``A_k^T W_h Zc_k <= 0`` (the head's
  position-free form does not rank its own selection first).
- The same on the confident rows only (largest probability above ``confidence``), suffix
  ``_conf``; and the nuclear-norm solution on the first ``nuclear_queries`` rows, ``corr_nuc``,
  beside the Frobenius solution of those same rows (``corr_fro_nucrows``) and the correlation of
  the two solutions (``corr_nuc_fro``).  The nuclear solve grows fast with the cap: on MiniLM-L6
  (d = 384) 24 rows (744 constraints) take about 10 s, 64 rows about 8 minutes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .capture import Capture, position_free_scores
from .instance import HeadInstance

__all__ = ["ProbeOptions", "corr", "constraint_values", "argmax_agreement", "analyze_head"]


@dataclass(frozen=True)
class ProbeOptions:
    """Settings of the per-head analysis.

    Attributes
    ----------
    confidence : float
        Rows whose largest probability exceeds this are "confident".
    nuclear : bool
        Also solve the nuclear-norm Att-SVM (slow: minutes per head).
    nuclear_queries : int
        Number of query rows (the first ones) of the nuclear-norm instance.
    seed : int
        Seed of the random control matrices (per head ``seed + 1000 * layer + head``).
    tol : float
        Solver feasibility tolerance.
    """

    confidence: float = 0.5
    nuclear: bool = False
    nuclear_queries: int = 24
    seed: int = 0
    tol: float = 1e-9



#: The per-head fields that only a feasible solution fills.
_NO_SOLUTION: dict[str, Any] = dict.fromkeys(
    ("corr_fro", "corr_control", "corr_control_max", "corr_random", "margin_ratio", "objective",
     "duality_gap", "support"))

def corr(W1: np.ndarray, W2: np.ndarray) -> float:
    """Correlation ``<W1, W2> / (||W1||_F ||W2||_F)`` in float64 (nan if either is zero)."""
    a = np.asarray(W1, dtype=np.float64).ravel()
    b = np.asarray(W2, dtype=np.float64).ravel()
    den = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / den) if den > 0 else float("nan")


def random_control(shape: tuple[int, int], seed: int, layer: int, head: int) -> np.ndarray:
    """The seeded Gaussian control matrix of one head."""
    rng = np.random.default_rng(seed + 1000 * layer + head)
    return rng.standard_normal(shape)


def constraint_values(W: np.ndarray, A: np.ndarray, Zc: np.ndarray) -> np.ndarray:
    """``A_k^T W Zc_k`` for every constraint, shape (m,)."""
    if A.shape[0] == 0:
        return np.zeros(0)
    return np.einsum("me,me->m", A @ W, Zc)


def argmax_agreement(
    W: np.ndarray, captures: list[Capture], layer: int, inst: HeadInstance, causal: bool
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
    """
    hits, total, row = 0, 0, 0
    for cap in captures:
        S = position_free_scores(W, cap.X[layer])
        T = S.shape[0]
        if causal:
            S = np.where(np.tril(np.ones((T, T), dtype=bool)), S, -np.inf)
        pred = S.argmax(axis=1)
        multi = inst.n_keys[row : row + T] > 1
        hits += int(np.sum((pred == inst.alpha[row : row + T]) & multi))
        total += int(multi.sum())
        row += T
    return hits / total if total else float("nan")


def _controls(
    W_sol: np.ndarray, W_layer: list[np.ndarray], head: int, W_rand: np.ndarray
) -> dict[str, float]:
    others = [corr(W_sol, W) for h, W in enumerate(W_layer) if h != head]
    return {
        "control": float(np.mean(others)) if others else float("nan"),
        "control_max": float(np.max(others)) if others else float("nan"),
        "random": corr(W_sol, W_rand),
    }


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
    from ..constraints import ConstraintSet
    from ..svm import solve_fro_constraints

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
    c = _controls(W, W_layer, head, W_rand)
    nW, nH = float(np.linalg.norm(W)), float(np.linalg.norm(W_head))
    rec.update(
        corr_fro=corr(W_head, W),
        corr_control=c["control"],
        corr_control_max=c["control_max"],
        corr_random=c["random"],
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
        "argmax_reproduced": argmax_agreement(W_head, captures, layer, inst, causal),
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
        "W_head": W_head.astype(np.float32),
        "alpha": inst.alpha,
        "max_prob": mp,
        "index": inst.index.astype(np.int32),
    }
    if sol is not None:
        arrays["dual"] = np.asarray(sol.dual, dtype=np.float64)
        if sol.W is not None and rec["feasible"]:
            arrays["W_fro"] = np.asarray(sol.W, dtype=np.float32)
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
        arrays["W_fro_conf"] = np.asarray(sol_c.W, dtype=np.float32)

    rec.update(
        corr_nuc=None,
        corr_nuc_control=None,
        corr_nuc_random=None,
        corr_fro_nucrows=None,
        corr_nuc_fro=None,
        nuc_queries=None,
        nuc_status=None,
    )
    if opts.nuclear:
        rec.update(_nuclear(inst, W_layer, head, W_rand, opts, arrays))
    rec["seconds"] = time.perf_counter() - t0
    return rec, arrays


def _nuclear(
    inst: HeadInstance,
    W_layer: list[np.ndarray],
    head: int,
    W_rand: np.ndarray,
    opts: ProbeOptions,
    arrays: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Nuclear-norm Att-SVM on the first ``opts.nuclear_queries`` rows."""
    from ..constraints import ConstraintSet
    from ..svm import solve_fro_constraints, solve_nuc_constraints

    rows = np.zeros(inst.n, dtype=bool)
    rows[: opts.nuclear_queries] = True
    A, Zc, idx = inst.subset_rows(rows)
    out: dict[str, Any] = {"nuc_queries": int(rows.sum()), "m_nuc": int(A.shape[0])}
    if A.shape[0] == 0:
        out["nuc_status"] = "empty"
        return out
    t0 = time.perf_counter()
    cset = ConstraintSet.from_arrays(A, Zc, idx)
    sol = solve_nuc_constraints(cset)
    out["nuc_seconds"] = time.perf_counter() - t0
    out["nuc_status"] = sol.status
    if sol.W is not None and sol.status != "infeasible":
        W = np.asarray(sol.W)
        c = _controls(W, W_layer, head, W_rand)
        out.update(
            corr_nuc=corr(W_layer[head], W),
            corr_nuc_control=c["control"],
            corr_nuc_random=c["random"],
        )
        arrays["W_nuc"] = W.astype(np.float32)
        # the Frobenius solution of the same capped instance, for a like-for-like comparison
        fro = solve_fro_constraints(cset, tol=opts.tol)
        if fro.W is not None and fro.status != "infeasible":
            out["corr_fro_nucrows"] = corr(W_layer[head], fro.W)
            out["corr_nuc_fro"] = corr(W, fro.W)
            arrays["W_fro_nucrows"] = np.asarray(fro.W, dtype=np.float32)
    return out
