"""Exact hard-margin SVM without bias by a dual active-set method on a working set.

Solves ``min_w ||w||^2 / 2`` subject to ``<w, g_k> >= b_k`` (k >= n_eq) and
``<w, g_k> = b_k`` (k < n_eq), where the normals ``g_k`` are known only through a
:class:`~attnsvm.constraints.ConstraintKernel`.

The inner method is Goldfarb and Idnani's dual algorithm (Math. Programming 27, 1983) with
identity Hessian, written in the kernel: the iterate is always ``w = sum_k lambda_k g_k``, optimal
for the constraints in its active set ``S``, and ``K_SS = L L^T`` is kept by Cholesky
append/delete.  A violated constraint ``p`` enters by a step ``t`` along
``z = g_p - N_S^T r`` with ``r = K_SS^{-1} K_Sp``; an active constraint leaves when its
multiplier would turn negative.  When ``z = 0`` and no multiplier can leave, the problem is
infeasible and ``g_p - sum_j r_j g_j = 0`` with ``-r >= 0`` is a Farkas certificate.

The outer loop prices all ``m`` constraints from the explicit primal ``w`` (cheap for the
rank-one Att-SVM normals), adds the ``chunk`` most violated to the working set, and runs the
inner method on ``K`` restricted to that set, so ``K`` is never formed whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.linalg import LinAlgError

from ..constraints import ConstraintKernel
from ._block_pivoting import block_pivoting
from ._cholesky import GrowingCholesky
from ._linalg import cholesky

__all__ = ["solve_hard_margin", "QPResult", "default_chunk"]

#: ``z^T g_p <= DEPENDENCE_RTOL * K_pp`` counts as ``g_p`` in the span of the active normals.
DEPENDENCE_RTOL = 1e-11


@dataclass
class QPResult:
    """Raw result of :func:`solve_hard_margin`.

    Attributes
    ----------
    status : {"optimal", "infeasible", "max_iter", "inaccurate"}
        ``inaccurate``: the active rows stay off their right-hand sides by more than ``tol``
        after refinement (an ill-conditioned active set).
    active : ndarray of int, shape (s,)
        Indices of the active constraints.
    lam : ndarray, shape (s,)
        Their dual weights (>= 0 for inequalities).
    certificate : ndarray, shape (m,) or None
        For infeasible problems: weights, >= 0 on inequalities, summing to 1 in absolute value,
        with ``sum_k c_k g_k = 0`` (up to rounding).
    iterations : int
        Inner Goldfarb-Idnani steps.
    rounds : int
        Outer pricing rounds.
    method : str
    primal : ndarray or None
        The primal point ``w``, refined on the active rows; None: ``kernel.primal(active,
        lam)``.  Where the multipliers are large and ``w`` small (nearly infeasible problems)
        that sum cancels to about ``eps max|lam|``; the refinement adds small corrections
        to ``w`` itself instead.
    """

    status: str
    active: np.ndarray
    lam: np.ndarray
    certificate: np.ndarray | None
    iterations: int
    rounds: int
    method: str = "goldfarb-idnani"
    primal: np.ndarray | None = None

    def point(self, kernel: ConstraintKernel) -> np.ndarray:
        """The primal point: ``primal`` when refined, else ``kernel.primal(active, lam)``."""
        return self.primal if self.primal is not None else kernel.primal(self.active, self.lam)

    @property
    def shortfall(self) -> str:
        """Why an answer is not ``optimal``, for a warning (``""`` when it is)."""
        if self.status == "max_iter":
            return f"stopped after {self.iterations} steps"
        if self.status == "inaccurate":
            return "left its active rows off their margins after refinement"
        return ""


def default_chunk(m: int, dim: int) -> int:
    """Constraints added per pricing round: ``max(100, m // 20)``, but at most
    ``4 dim + 100`` (``dim`` the dimension of the normals): an active set never holds more
    than ``dim`` independent rows, so a larger chunk only builds Gram blocks (``chunk^2``
    floats: 1.7 GiB for ``n = 300000, T = 2, d = 1``) that cannot pay off."""
    return max(100, min(m // 20, 4 * dim + 100))


#: refinement steps of the active rows' values at the end
_REFINE_STEPS = 3


def _violations(b: np.ndarray, vals: np.ndarray, is_eq: np.ndarray, active: np.ndarray
                ) -> np.ndarray:
    """How far each row outside ``active`` is violated (``|b - v|`` on equalities, ``b - v``
    on inequalities; ``-inf`` on the active rows), shape (m,)."""
    resid = b - vals
    viol = np.where(is_eq, np.abs(resid), resid)
    viol[active] = -np.inf
    return viol


def _refine_active(kernel: ConstraintKernel, b: np.ndarray, thr: np.ndarray, is_eq: np.ndarray,
                   active: np.ndarray, lam: np.ndarray, w: np.ndarray | None = None,
                   vals: np.ndarray | None = None) -> tuple[str, np.ndarray, np.ndarray | None]:
    """Check the active rows' values (equal to ``b`` at the optimum) and refine them.

    ``K_SS delta = b_S - <w, g_S>``, ``w += sum delta_j g_j``, ``lam += delta``, at most
    :data:`_REFINE_STEPS` times (``w`` and its ``vals``, when the caller has them, are those
    of ``lam``).  Returns ``(status, lam, w)``: ``optimal`` when every active row is within
    ``thr`` of ``b`` and no other row is violated (``w`` None when no step was needed),
    ``inaccurate`` otherwise.
    """
    if active.size == 0:
        return "optimal", lam, None
    if w is None:
        w = kernel.primal(active, lam)
    if vals is None:
        vals = kernel.values(w)
    K = None
    for step in range(_REFINE_STEPS + 1):
        r = b[active] - vals[active]
        outside = _violations(b, vals, is_eq, active)
        if np.all(np.abs(r) <= thr[active]) and not np.any(outside > thr):
            return "optimal", lam, (w if step else None)
        if step == _REFINE_STEPS:
            break
        if K is None:
            K = kernel.block(active, active)
        try:
            delta = np.linalg.solve(K, r)
        except np.linalg.LinAlgError:
            delta = np.linalg.lstsq(K, r, rcond=None)[0]
        lam = lam + delta
        w = w + kernel.primal(active, delta)
        vals = kernel.values(w)
    return "inaccurate", lam, w


def solve_hard_margin(
    kernel: ConstraintKernel,
    b: np.ndarray,
    n_eq: int = 0,
    tol: float = 1e-10,
    chunk: int | None = None,
    max_iter: int | None = None,
    warm_active: np.ndarray | None = None,
    method: str = "auto",
) -> QPResult:
    """Solve the hard-margin SVM ``min ||w||^2/2 s.t. <w, g_k> >= b_k`` exactly.

    Parameters
    ----------
    kernel : ConstraintKernel
        Gram blocks and primal values of the normals ``g_k``, k = 0..m-1.
    b : ndarray, shape (m,)
        Right-hand sides.
    n_eq : int
        The first ``n_eq`` constraints are equalities.
    tol : float
        A constraint counts as violated when ``b_k - <w, g_k> > tol * max(1, |b_k|)``.
    chunk : int, optional
        Constraints added to the working set per pricing round (default
        :func:`default_chunk`).
    max_iter : int, optional
        Cap on inner steps (default ``10 m + 1000``).
    warm_active : ndarray of int, optional
        Constraints to try first (e.g. the support of a related problem's solution).
    method : {"auto", "active-set", "block"}
        ``"block"`` runs the block-pivoting phase of :mod:`._block_pivoting` first (default for
        inequality-only problems with more than 64 constraints), finishing with the
        Goldfarb-Idnani method only if it does not converge; ``"active-set"`` runs
        Goldfarb-Idnani alone.

    Returns
    -------
    QPResult
    """
    m = kernel.m
    b = np.asarray(b, dtype=np.float64)
    is_eq = np.zeros(m, dtype=bool)
    is_eq[:n_eq] = True
    diag = kernel.diag()
    scale = np.sqrt(np.maximum(diag, 1e-300))
    thr = tol * np.maximum(1.0, np.abs(b))
    chunk = default_chunk(m, _dimension(kernel)) if chunk is None else max(1, int(chunk))
    max_iter = 10 * m + 1000 if max_iter is None else int(max_iter)

    active = np.zeros(0, dtype=np.int64)
    lam = np.zeros(0)
    chol = GrowingCholesky(min(m, 256))
    K_SS = np.zeros((0, 0))
    iterations = 0
    rounds = 0
    pending = None if warm_active is None else np.unique(np.asarray(warm_active, dtype=np.int64))
    use_block = method == "block" or (method == "auto" and n_eq == 0 and m > 64)
    if use_block and n_eq == 0:
        start = pending if pending is not None and pending.size else np.argsort(diag)[:chunk]
        converged, P, lamP, brounds = block_pivoting(kernel, b, thr, start, scale)
        rounds += brounds
        if converged:
            st, lamP, w_ref = _refine_active(kernel, b, thr, is_eq, P, lamP)
            return QPResult(st, P, lamP, None, 0, rounds, "block-pivoting", w_ref)
        active, lam, K_SS, chol = _valid_start(kernel, b, P[lamP > 0] if lamP.size == P.size
                                               else P)
        pending = None
    how = "block-pivoting+goldfarb-idnani" if use_block and n_eq == 0 else "goldfarb-idnani"

    while True:
        rounds += 1
        w = kernel.primal(active, lam)
        vals = kernel.values(w)
        viol = _violations(b, vals, is_eq, active)
        cand = np.flatnonzero(viol > thr)
        if cand.size == 0:
            st, lam_r, w_ref = _refine_active(kernel, b, thr, is_eq, active, lam, w, vals)
            return QPResult(st, active, lam_r, None, iterations, rounds, how, w_ref)
        if pending is not None and pending.size:
            prio = pending[viol[pending] > thr[pending]]
            pending = None
        else:
            prio = np.zeros(0, dtype=np.int64)
        order = cand[np.argsort(-viol[cand] / scale[cand], kind="stable")]
        new = np.unique(np.concatenate([prio, order[:chunk]]))
        work = np.concatenate([active, new])
        s_n = active.size
        Kw = np.empty((work.size, work.size))
        Kw[:s_n, :s_n] = K_SS
        Kb = kernel.block(new, work)
        Kw[s_n:, :] = Kb
        Kw[:s_n, s_n:] = Kb[:, :s_n].T
        out = _goldfarb_idnani(Kw, b[work], is_eq[work], thr[work], chol, s_n, lam,
                               max_iter - iterations)
        status, act_local, lam, cert_local, steps = out
        iterations += steps
        active = work[act_local]
        K_SS = Kw[np.ix_(act_local, act_local)]
        if status == "infeasible":
            cert = np.zeros(m)
            assert cert_local is not None
            cert[work] = cert_local
            return QPResult("infeasible", active, lam, cert, iterations, rounds, how)
        if status == "max_iter":
            return QPResult("max_iter", active, lam, None, iterations, rounds, how)
        if steps == 0 or rounds > max_iter:
            # the working set's slacks say optimal while the primal's values say violated
            # (rounding on an ill-conditioned set): no step would change anything
            return QPResult("inaccurate", active, lam, None, iterations, rounds, how)


def _dimension(kernel: ConstraintKernel) -> int:
    """Dimension of the space of the normals (``d1 d2`` for rank-one matrix normals); a
    kernel that does not say counts as unbounded."""
    A, Zc, G = (getattr(kernel, k, None) for k in ("A", "Zc", "G"))
    if isinstance(A, np.ndarray) and isinstance(Zc, np.ndarray):
        return int(A.shape[1] * Zc.shape[1])
    if isinstance(G, np.ndarray):
        return int(G.shape[1])
    return kernel.m


def _valid_start(kernel: ConstraintKernel, b: np.ndarray, S: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, GrowingCholesky]:
    """A Goldfarb-Idnani starting state from a guessed active set: ``lambda_S = K_SS^{-1} b_S``
    with non-positive multipliers removed until all are positive (empty set on failure)."""
    S = np.asarray(S, dtype=np.int64)
    for _ in range(50):
        if S.size == 0:
            break
        K_SS = kernel.block(S, S)
        try:
            L = cholesky(K_SS, lower=True)
        except LinAlgError:
            break
        chol = GrowingCholesky.from_factor(L)
        lam = chol.solve(b[S])
        if np.all(lam > 0):
            return S, lam, K_SS, chol
        S = S[lam > 0]
    return (np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros((0, 0)),
            GrowingCholesky(256))


def _goldfarb_idnani(
    K: np.ndarray,
    b: np.ndarray,
    is_eq: np.ndarray,
    thr: np.ndarray,
    chol: GrowingCholesky,
    n_active: int,
    lam0: np.ndarray,
    max_steps: int,
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Goldfarb-Idnani on a dense local kernel ``K`` (M, M) whose first ``n_active`` rows are the
    current active set (factored in ``chol``) with multipliers ``lam0``."""
    M = K.shape[0]
    act = list(range(n_active))
    lam = list(lam0)
    in_act = np.zeros(M, dtype=bool)
    in_act[:n_active] = True
    s = K[:, :n_active] @ np.asarray(lam0) - b if n_active else -b.copy()
    dscale = np.sqrt(np.maximum(np.diag(K), 1e-300))
    steps = 0
    while True:
        viol = np.where(is_eq, np.abs(s), -s)
        viol[in_act] = -np.inf
        cand = np.flatnonzero(viol > thr)
        if cand.size == 0:
            return "optimal", np.asarray(act, dtype=np.int64), np.asarray(lam), None, steps
        p = int(cand[np.argmax(viol[cand] / dscale[cand])])
        sigma = -1.0 if (is_eq[p] and s[p] > 0) else 1.0
        up = 0.0
        kpp = K[p, p]
        while True:
            steps += 1
            if steps > max_steps:
                return "max_iter", np.asarray(act, dtype=np.int64), np.asarray(lam), None, steps
            a_idx = np.asarray(act, dtype=np.int64)
            c = sigma * K[a_idx, p]
            y = chol.forward(c)
            r = chol.backward(y)
            zn = kpp - float(y @ y)
            lam_arr = np.asarray(lam)
            t1, drop = np.inf, -1
            if a_idx.size:
                mask = (r > 0) & ~is_eq[a_idx]
                if mask.any():
                    ratios = np.full(a_idx.size, np.inf)
                    ratios[mask] = lam_arr[mask] / r[mask]
                    drop = int(np.argmin(ratios))
                    t1 = float(ratios[drop])
            sp = sigma * s[p]
            t2 = -sp / zn if zn > DEPENDENCE_RTOL * kpp and kpp > 0 else np.inf
            if not np.isfinite(t1) and not np.isfinite(t2):
                cert = np.zeros(M)
                cert[a_idx] = -r
                cert[p] = sigma
                cert /= np.abs(cert).sum()
                return "infeasible", a_idx, lam_arr, cert, steps
            t = min(t1, t2)
            if np.isfinite(t2):
                # active inequalities stay at equality (z is orthogonal to their normals):
                # update the slacks of the inactive rows only
                rows = np.flatnonzero(~in_act)
                dz = sigma * K[rows, p]
                if a_idx.size:
                    r_full = np.zeros(M)
                    r_full[a_idx] = r
                    dz = dz - K[rows] @ r_full
                s[rows] += t * dz
            lam_arr = lam_arr - t * r if a_idx.size else lam_arr
            up += t
            lam = list(lam_arr)
            if t2 <= t1:
                chol.append(sigma * y, np.sqrt(zn))  # factor of the unflipped K_SS
                act.append(p)
                lam.append(sigma * up)
                in_act[p] = True
                s[p] = 0.0 if is_eq[p] else s[p]
                break
            # partial step: constraint `drop` leaves the active set
            chol.delete(drop)
            in_act[act[drop]] = False
            del act[drop]
            del lam[drop]
