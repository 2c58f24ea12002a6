"""Several selected tokens per sequence: the general SVM-equivalence of TF-SVM.

When GD keeps a set ``O_i`` of tokens per sequence, ``W(k) ~ R_k W^dir + W^fin`` with

    W^dir = argmin ||W||  s.t. (x_iu - x_iw)^T W z_i = 0,  (x_iu - x_it)^T W z_i >= 1
                           for u, w in O_i, t not in O_i;
    W^fin = argmin ||W||  s.t. (x_iu - x_iw)^T W z_i = log(s_iu / s_iw),  u, w in O_i.

The equalities are imposed against the first token ``u_0`` of each ``O_i`` (the others follow
by differences), and the inequalities for ``u = u_0`` only (equal scores inside ``O_i`` make
the others the same constraint).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array
from ..constraints import ConstraintSet
from ..exceptions import InvalidInputError
from ..instance import Instance
from .frobenius import solve_fro_constraints
from .solution import INACCURATE, OPTIMAL, SVMSolution

__all__ = ["selected_sets", "solve_w_dir", "solve_w_fin", "fit_svmeq", "SVMEquivalence"]


def selected_sets(probs: np.ndarray, threshold: float = 1e-3) -> list[np.ndarray]:
    """``O_i = {t : s_it > threshold}`` from final attention probabilities (n, T)."""
    probs = as_float_array("probs", probs, 2)
    return [np.flatnonzero(row > threshold) for row in probs]


def _equalities(instance: Instance, sets: list[np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    Zq = instance.queries
    A, Z, idx, pairs = [], [], [], []
    for i, O in enumerate(sets):
        u0 = int(O[0])
        for w in O[1:]:
            A.append(instance.X[i, u0] - instance.X[i, w])
            Z.append(Zq[i])
            idx.append((i, int(w)))
            pairs.append((i, u0, int(w)))
    d = instance.d
    return (np.array(A).reshape(-1, d), np.array(Z).reshape(-1, d),
            np.array(idx, dtype=np.int64).reshape(-1, 2), pairs)


def _check_sets(instance: Instance, sets: list[np.ndarray]) -> list[np.ndarray]:
    if len(sets) != instance.n:
        raise InvalidInputError(
            f"The 'sets' list must hold one token set per sequence ({instance.n}). "
            f"Got {len(sets)} instead.")
    out = []
    for i, O in enumerate(sets):
        O = np.unique(np.asarray(O, dtype=np.int64))
        if O.size == 0 or O.min() < 0 or O.max() >= instance.T:
            raise InvalidInputError(
                f"The token set of sequence {i} must be non-empty with tokens in [0, {instance.T})."
                f" Got {O.tolist()} instead.")
        out.append(O)
    return out


def solve_w_dir(instance: Instance, sets: list[np.ndarray], tol: float = 1e-10) -> SVMSolution:
    """``W^dir`` for selected sets ``O_i`` (equalities inside, margin 1 to the rest)."""
    sets = _check_sets(instance, sets)
    Ae, Ze, ie, _ = _equalities(instance, sets)
    Zq = instance.queries
    A, Z, idx = [Ae], [Ze], [ie]
    for i, O in enumerate(sets):
        rest = np.setdiff1d(np.arange(instance.T), O)
        if rest.size:
            A.append(instance.X[i, O[0]][None, :] - instance.X[i, rest])
            Z.append(np.repeat(Zq[i][None, :], rest.size, 0))
            idx.append(np.stack([np.full(rest.size, i), rest], 1))
    A_all, Z_all = np.concatenate(A), np.concatenate(Z)
    idx_all = np.concatenate(idx).astype(np.int64)
    n_eq = Ae.shape[0]
    if A_all.shape[0] == n_eq:
        raise InvalidInputError("Every token is selected: W^dir has no margin constraint.")
    b = np.concatenate([np.zeros(n_eq), np.ones(A_all.shape[0] - n_eq)])
    cons = ConstraintSet(A=A_all, Zc=Z_all, index=idx_all, b=b, n_eq=n_eq)
    sol = solve_fro_constraints(cons, tol=tol, method="active-set")
    sol.shape = (instance.n, instance.T)
    return sol


def solve_w_fin(instance: Instance, sets: list[np.ndarray], probs: np.ndarray) -> SVMSolution:
    """``W^fin``: the least-norm W matching ``log(s_iu0 / s_iw)`` inside each ``O_i``.

    ``min ||W||_F s.t. (x_iu0 - x_iw)^T W z_i = log(s_iu0 / s_iw)`` for ``w`` in ``O_i``: an
    equality-constrained least-norm problem, solved through its Gram system (least squares, so
    rounding-level inconsistencies of the targets are absorbed).

    Returns
    -------
    SVMSolution
        Norm ``fro``, every constraint an equality (``n_eq = m``); ``W`` (d, d) is zero when
        every ``O_i`` is a single token.  Status ``inaccurate`` when the targets cannot be met
        to 1e-8 (relative).
    """
    sets = _check_sets(instance, sets)
    probs = as_float_array("probs", probs, 2, (instance.n, instance.T))
    Ae, Ze, ie, pairs = _equalities(instance, sets)
    d = instance.d
    if not pairs:
        empty = ConstraintSet(np.zeros((0, d)), np.zeros((0, d)), np.zeros((0, 2), np.int64))
        return SVMSolution(OPTIMAL, "fro", np.zeros((d, d)), empty, np.zeros(0), np.zeros(0),
                           solver="least-norm equalities", shape=(instance.n, instance.T))
    c = np.array([np.log(probs[i, u]) - np.log(probs[i, w]) for i, u, w in pairs])
    cons = ConstraintSet(Ae, Ze, ie, b=c, n_eq=len(c))
    K = (Ae @ Ae.T) * (Ze @ Ze.T)
    lam = np.linalg.lstsq(K, c, rcond=None)[0]
    W = cons.combine(lam)
    nrm = float(np.linalg.norm(W))
    sol = SVMSolution(OPTIMAL, "fro", W, cons, c, lam / nrm if nrm > 0 else lam, n_eq=len(c),
                      solver="least-norm equalities (Gram least squares)",
                      shape=(instance.n, instance.T))
    if sol.primal_residual() > 1e-8:
        sol.status = INACCURATE
    return sol


@dataclass
class SVMEquivalence:
    """``W^svmeq = W^fin + R W^dir`` fitted to an iterate ``W``.

    Attributes
    ----------
    W_dir, W_fin : ndarray, shape (d, d)
    R : float
        ``<W - W^fin, W^dir> / ||W^dir||^2``.
    W_svmeq : ndarray, shape (d, d)
    sets : list of ndarray
    dir_solution : SVMSolution
    """

    W_dir: np.ndarray
    W_fin: np.ndarray
    R: float
    W_svmeq: np.ndarray
    sets: list[np.ndarray]
    dir_solution: SVMSolution


def fit_svmeq(instance: Instance, W: np.ndarray, probs: np.ndarray, threshold: float = 1e-3
              ) -> SVMEquivalence:
    """Build ``W^dir``, ``W^fin`` from the selected sets of ``probs`` and fit ``R`` to ``W``.

    Parameters
    ----------
    instance : Instance
    W : ndarray, shape (d, d)
        A GD iterate.
    probs : ndarray, shape (n, T)
        Its attention probabilities.
    threshold : float
        Selection threshold for ``O_i``.
    """
    sets = selected_sets(probs, threshold)
    dsol = solve_w_dir(instance, sets)
    if dsol.W is None:
        raise InvalidInputError("W^dir is infeasible for these selected sets; see the certificate.")
    fin = solve_w_fin(instance, sets, probs)
    W_fin = fin.W if fin.W is not None else np.zeros((instance.d, instance.d))
    Wd = dsol.W
    R = float(np.vdot(W - W_fin, Wd) / np.vdot(Wd, Wd))
    return SVMEquivalence(Wd, W_fin, R, W_fin + R * Wd, sets, dsol)
