"""Optimizer geometry of a trained head: its max-norm and spectral Att-SVMs (THEORY.md).

Normalized steepest descent in a norm goes to the Att-SVM of that norm: Frobenius (GD), the
entrywise max norm (sign GD, Adam with eps -> 0), the spectral norm (spectral descent; Muon is
its momentum version); factored heads (``W = W_K^T W_Q``) under GD go to the nuclear norm.
``attnsvm track --geometry`` asks which of these a trained head sits nearest.  For one head of a
probed checkpoint this module rebuilds the head's Att-SVM constraints from the probe's own files
(``heads/L{ll}_H{hh}.npz``: selections, constraint index, query rows; ``heads/L{ll}_input.npz``:
the layer input ``X``), solves the ``linf`` and ``spec`` Att-SVMs
(:func:`attnsvm.svm.solve`, certified; where the optimum is not unique, its least-Frobenius
point) and records, for ``N`` in ``linf``, ``spec``:

- ``corr_N``: ``<W_h, W_N> / (||W_h||_F ||W_N||_F)``; ``corr_N_control``: the mean of the same
  solution's correlation with the layer's other heads;
- ``margin_ratio_N``: the head's normalized margin in that norm over the optimum's,
  ``||W_N||_N min_k <W_h, G_k> / ||W_h||_N`` (at most 1, 1 exactly at a max-margin direction
  of that norm; as :func:`attnsvm.svm.margin_ratio`), comparable across norms where correlations
  are not (the max-norm and spectral optima are often faces, not points);
- ``status_N``, ``gap_N`` (the certified relative gap), ``seconds_N``; ``method_spec``:
  ``ipm`` (the project's spectral interior point, least-Frobenius optimum) or ``clarabel``
  (where the interior point does not certify: cvxpy + Clarabel on ``min sigma_max(W)``,
  certified here by its multipliers; the correlation then uses Clarabel's optimum, the margin
  ratio is exact either way).  An answer is used when
  its certified gap is at most :data:`GAP_OK` (``1e-3``, so a margin ratio is exact to 0.1%);
  otherwise the correlation and margin ratio stay None and the status says why.

The Frobenius and nuclear counterparts are the probe's ``corr_fro`` / ``margin_ratio`` and
``corr_nuc`` / ``margin_ratio_nuc``.  Only heads whose bilinear form is their score are
analysed (no rotary embeddings, no QK-norm, no key-side augmentation): for a rotary head the
position-free form is not the head's score, so these fields stay None.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..constraints import ConstraintSet
from ..exceptions import ConvergenceWarning
from ..probe.compare import corr
from ..probe.run import head_file
from ..svm import solve
from ..svm.norms import norm_value

__all__ = ["GEOMETRY_NORMS", "GEOMETRY_FIELDS", "head_constraints", "geometry_fields",
           "spec_clarabel"]

#: The norms solved by ``--geometry`` (beside the probe's fro and nuc).
GEOMETRY_NORMS = ("linf", "spec")
#: Record fields per norm.
GEOMETRY_FIELDS = tuple(f"{k}_{n}" if k != "corr_control" else f"corr_{n}_control"
                        for n in GEOMETRY_NORMS
                        for k in ("corr", "corr_control", "margin_ratio", "status", "gap",
                                  "seconds")) + ("method_spec",)
#: Largest certified relative gap at which an answer is used (``inaccurate`` ones included).
GAP_OK = 1e-3
#: Solver options per norm: HiGHS for the max-norm LP (the interior point stalls on some head
#: instances), the spectral interior point as it is.
_SOLVER_OPTIONS: dict[str, dict[str, Any]] = {"linf": {"method": "highs"}, "spec": {}}


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def head_constraints(probe_dir: str | Path, layer: int, head: int
                     ) -> tuple[Any, np.ndarray, dict[str, np.ndarray]] | None:
    """The Att-SVM constraints of one probed head, rebuilt from the probe's files.

    Parameters
    ----------
    probe_dir : path-like
        A probe output folder (``heads/L{ll}_H{hh}.npz``, ``heads/L{ll}_input.npz``).
    layer, head : int

    Returns
    -------
    (ConstraintSet, W_head (d, d + 1), arrays) or None
        ``A_k = x_{s, alpha} - x_{s, t}``, ``Zc_k = [x_{s, q}; 1]`` for every constraint
        ``(row, t)`` of the head (``s``, ``q`` the row's sequence and query position); None when
        a file is missing or the head is not bilinear in the layer input (rotary, QK-norm,
        key-side augmentation).
    """
    hp = head_file(probe_dir, layer, head)
    ip = Path(probe_dir) / "heads" / f"L{layer:02d}_input.npz"
    if not hp.is_file() or not ip.is_file():
        return None
    arr = _load(hp)
    if any(bool(arr[k]) for k in ("rot_dims", "qk_norm", "key_aug") if k in arr) or not {
            "seq_of", "qpos", "alpha", "index", "W_head"} <= set(arr):
        return None
    X = _load(ip)["X"]  # (S, T, d)
    idx = arr["index"].astype(np.int64)
    rows, t = idx[:, 0], idx[:, 1]
    s, q, a = arr["seq_of"][rows], arr["qpos"][rows], arr["alpha"][rows]
    A = X[s, a] - X[s, t]  # (m, d)
    Zc = np.concatenate([X[s, q], np.ones((idx.shape[0], 1))], axis=1)  # (m, d + 1)
    return ConstraintSet.from_arrays(A, Zc, idx), np.asarray(arr["W_head"]), arr


def geometry_fields(probe_dir: str | Path, layer: int, heads: list[int], head: int,
                    norms: tuple[str, ...] = GEOMETRY_NORMS) -> dict[str, Any]:
    """The ``linf`` / ``spec`` fields of one head (None where not analysed or infeasible).

    Parameters
    ----------
    probe_dir : path-like
        The probe's output folder for this checkpoint.
    layer : int
    heads : list of int
        Every head of the layer (the controls are the others).
    head : int
    norms : tuple of str
        Subset of :data:`GEOMETRY_NORMS`.
    """
    out: dict[str, Any] = dict.fromkeys(GEOMETRY_FIELDS)
    built = head_constraints(probe_dir, layer, head)
    if built is None or built[0].m == 0:
        return out
    cs, W_h, _ = built
    others = []
    for h in heads:
        if h == head:
            continue
        ob = head_constraints(probe_dir, layer, h)
        if ob is not None:
            others.append(ob[1])
    for nm in norms:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sol = solve(cs, nm, **_SOLVER_OPTIONS.get(nm, {}))
        status, W_opt = sol.status, sol.W
        obj = float(sol.objective) if sol.W is not None else None
        gap = sol.info.get("certified_gap")
        gap = None if gap is None else float(gap)
        if nm == "spec":
            out["method_spec"] = "ipm"
            if status != "infeasible" and not (gap is not None and gap <= GAP_OK):
                W_c, obj_c, gap_c = spec_clarabel(cs)
                if W_c is not None and gap_c <= GAP_OK:
                    W_opt, obj, gap, out["method_spec"] = W_c, obj_c, gap_c, "clarabel"
                    status = "optimal" if gap_c <= 1e-6 else "inaccurate"
        out[f"seconds_{nm}"] = time.perf_counter() - t0
        out[f"status_{nm}"] = status
        out[f"gap_{nm}"] = gap
        if W_opt is None or obj is None or status == "infeasible" or gap is None \
                or not gap <= GAP_OK:
            continue
        W = np.asarray(W_opt)
        out[f"corr_{nm}"] = corr(W_h, W)
        out[f"corr_{nm}_control"] = float(np.mean([corr(W, Wo) for Wo in others])) \
            if others else None
        nrm = norm_value(W_h, nm)
        out[f"margin_ratio_{nm}"] = float(obj * cs.values(W_h).min() / nrm) if nrm > 0 else None
    return out


def spec_clarabel(cs: Any, time_limit: float = 600.0
                  ) -> tuple[np.ndarray | None, float, float]:
    """The spectral Att-SVM by cvxpy + Clarabel, certified by its own multipliers.

    ``W`` (made feasible by scaling) gives the upper bound ``||W||_2``; the multipliers
    ``mu >= 0`` of the constraints give the lower bound ``mu . b / ||sum mu_k a_k z_k^T||_*``
    (weak duality: the dual norm of the spectral norm is the nuclear norm).

    Parameters
    ----------
    cs : ConstraintSet
        Inequalities only (``n_eq = 0``), ``A`` (m, d1), ``Zc`` (m, d2), ``b`` (m,) > 0.
    time_limit : float
        Clarabel's time limit in seconds.

    Returns
    -------
    (W (d1, d2) or None, objective, certified relative gap)
        None and ``inf`` when the solver returns nothing usable.
    """
    import cvxpy as cp

    A, Z, b = cs.A, cs.Zc, np.asarray(cs.rhs, dtype=np.float64)
    W = cp.Variable((A.shape[1], Z.shape[1]))
    con = cp.sum(cp.multiply(A @ W, Z), axis=1) >= b
    prob = cp.Problem(cp.Minimize(cp.sigma_max(W)), [con])
    try:
        with warnings.catch_warnings():  # "may be inaccurate": judged by the gap below
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver="CLARABEL", time_limit=time_limit)
    except cp.error.SolverError:
        return None, float("inf"), float("inf")
    if W.value is None or con.dual_value is None:
        return None, float("inf"), float("inf")
    Wv = np.asarray(W.value, dtype=np.float64)
    vals = cs.values(Wv)
    if not np.all(vals > 0):
        return None, float("inf"), float("inf")
    Wv = Wv * max(1.0, float(np.max(b / vals)))
    upper = float(np.linalg.norm(Wv, 2))
    mu = np.maximum(np.asarray(con.dual_value, dtype=np.float64), 0.0)
    G = A.T @ (mu[:, None] * Z)
    nuc = float(np.linalg.norm(G, "nuc"))
    lower = float(mu @ b) / nuc if nuc > 0 else 0.0
    return Wv, upper, max(0.0, (upper - lower) / upper)
