"""The group nuclear lifted Att-SVM: ``min sum_f ||M_f||_* (+ ||W0||_*)`` as a block SDP.

In the dense fallback, complex ``M_f = R_f + i I_f`` enters through its real embedding
``E_f = [[R, -I], [I, R]]``, whose nuclear norm is twice the complex one; each row is linear
in ``(R_f, I_f)``:
``sum_f Re(a_kf)^T R_f z_k + Im(a_kf)^T I_f z_k (+ a0_k^T W0 z0_k)``.

1. Reduce: keys and queries are projected on orthonormal bases ``U``, ``V`` of their spans
   (the optimum lies in ``U (.) V^T``; the projection keeps the rows and never raises a
   nuclear norm), so the SDP is of the tokens' dimension, not the model's.
2. Solve the block SDP with the structured interior point of :mod:`._rotary_ipm` (rank-two
   constraint matrices, Schur complement ``O(F s^2 r)`` per iteration, no dense KKT system)
   on a working set of ``s`` rows (the lifted Frobenius support, then violated rows); only
   where it does not converge and the problem is small (``m F <=`` :data:`CLARABEL_MAX`),
   with cvxpy + Clarabel (``normNuc`` of each embedded block).
3. Correct the primal onto its rows (least-norm steps in the span of the row normals) and
   certify from the multipliers ourselves on every row: ``G_f = sum_k lambda_k a_kf z_k^T``,
   rescaled so that ``max_f ||G_f||_2 <= 1``, gives the lower bound ``sum(lambda b)``
   (:mod:`._rotary_certify`).  The answer is ``optimal`` only when that certified relative
   gap is at most ``tol``.
4. Where that gap is above :data:`POLISH_ABOVE` (or ``m F <=`` :data:`POLISH_SMALL`),
   polish (:mod:`._rotary_face`, :mod:`._rotary_newton`): the candidate moved in the
   tangent space of its rank manifold onto its active rows, multipliers corrected on that
   face, Newton on the face's optimality system; each kept when it certifies a smaller gap.
"""

from __future__ import annotations

import itertools
import time
import warnings
from typing import Any

import numpy as np

from .._numerics import row_space_basis
from ..exceptions import MissingDependencyError
from ._rotary_certify import PRIMAL_TOL, feasible_rescale, finish, group_nuclear
from ._rotary_face import face_candidates
from ._rotary_fro import LiftedKernel, solve_lifted_fro
from ._rotary_ipm import BlockData, block_ipm
from ._rotary_newton import newton_candidate
from .rotary import RotaryConstraintSet, RotarySolution

__all__ = ["solve_lifted_nuc", "reduce_problem"]

#: largest ``m * F`` (rows times blocks) for the dense-SDP fallback (cvxpy + Clarabel) when
#: the block interior point does not converge
CLARABEL_MAX = 4000
#: largest relative gap / residual of the interior point's last iterate that is not handed
#: to the fallback (the certificate decides ``optimal`` in any case)
IPM_ACCEPT = 1e-8
#: certified gap of the interior point's answer above which the face polish and the Newton
#: step are tried
POLISH_ABOVE = 1e-10
#: largest ``m F`` at which the polish is tried whatever the gap (it is cheap there and takes
#: gaps of 1e-11 to about 1e-15)
POLISH_SMALL = 400
#: relative shortfall of a row outside the working set that adds it
WS_VIOLATION = 1e-9
#: working-set rounds (the last one takes every row)
WS_ROUNDS = 8
#: fewest rows added per round
WS_ADD = 8


def reduce_problem(problem: RotaryConstraintSet) -> tuple[RotaryConstraintSet, tuple]:
    """The same rows in coordinates of the spans of the keys and the queries.

    Returns
    -------
    reduced : RotaryConstraintSet
        ``A @ U`` (m, F, r1), ``Zc @ V`` (m, r2) (and ``A0 @ U0``, ``Z0 @ V0``).
    bases : (U, V, U0, V0)
        Orthonormal bases, shapes (d, r1), (d, r2), (d0, s1), (d0, s2) (None without W0).
    """
    m, F, d = problem.A.shape
    keys = np.concatenate([problem.A.real.reshape(m * F, d), problem.A.imag.reshape(m * F, d)])
    U, V = row_space_basis(keys), row_space_basis(problem.Zc)
    U0 = V0 = None
    A0r = Z0r = None
    if problem.A0 is not None:
        assert problem.Z0 is not None
        U0, V0 = row_space_basis(problem.A0), row_space_basis(problem.Z0)
        A0r, Z0r = problem.A0 @ U0, problem.Z0 @ V0
    red = RotaryConstraintSet(A=problem.A @ U, Zc=problem.Zc @ V, freqs=problem.freqs,
                              index=problem.index, b=problem.rhs, n_eq=problem.n_eq,
                              A0=A0r, Z0=Z0r)
    return red, (U, V, U0, V0)


def _ipm_rows(red: RotaryConstraintSet, rows: np.ndarray, scale: float
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, Any]:
    """The block interior point on the rows ``rows``: ``M``, ``W0``, multipliers (m,)."""
    sub = red.subset(rows)
    F, r1 = red.F, red.A.shape[2]
    blocks = [BlockData(np.ascontiguousarray(sub.A.transpose(1, 0, 2)), sub.Zc)]  # (F, s, r1)
    if sub.A0 is not None:
        assert sub.Z0 is not None
        blocks.append(BlockData(sub.A0, sub.Z0))
    out = block_ipm(blocks, sub.rhs, sub.n_eq, scale=scale)
    M = np.stack([2 * X[:r1, r1:] for X in out.X[:F]])
    W0 = None
    if red.A0 is not None:
        s1 = red.A0.shape[1]
        W0 = np.asarray(2 * out.X[F][:s1, s1:].real)
    y = np.zeros(red.m)
    y[rows] = out.y
    return M, W0, y, out


def _ipm(red: RotaryConstraintSet, scale: float, start: np.ndarray
         ) -> tuple[str, np.ndarray, np.ndarray | None, np.ndarray, dict[str, Any]]:
    """The structured block interior point (:mod:`._rotary_ipm`) on a working set of rows:
    ``(status, M (F, r1, r2), W0, lambda (m,), info)``.

    The working set starts at ``start`` (e.g. the lifted Frobenius SVM's support) and the
    equality rows; rows that the answer violates by more than :data:`WS_VIOLATION` (relative)
    are added, the most violated first, until none is (then the subproblem's optimum is the
    whole problem's, its multipliers padded with zeros are dual feasible for all rows).  An
    iteration costs ``O(F s^2 r)`` for ``s`` rows in the set.
    """
    m = red.m
    b = red.rhs
    inset = np.zeros(m, dtype=bool)
    inset[start] = True
    inset[: red.n_eq] = True
    if not inset.any():
        inset[:] = True
    rounds = 0
    while True:
        rounds += 1
        rows = np.flatnonzero(inset)
        M, W0, y, out = _ipm_rows(red, rows, scale)
        short = (b - red.values(M, W0)) / np.maximum(1.0, np.abs(b))
        short[inset] = -np.inf
        bad = np.flatnonzero(short > WS_VIOLATION)
        if bad.size == 0 or inset.all() or rounds >= WS_ROUNDS:
            break
        add = bad[np.argsort(-short[bad])][: max(WS_ADD, rows.size // 2)]
        inset[add] = True
        if rounds == WS_ROUNDS - 1:
            inset[:] = True
    info = {"ipm_iterations": out.iterations, "ipm_gap": out.rel_gap,
            "ipm_residuals": (out.primal_res, out.dual_res), "working_set": int(rows.size),
            "working_set_rounds": rounds}
    good = max(out.rel_gap, out.primal_res, out.dual_res) <= IPM_ACCEPT and bad.size == 0
    return ("optimal" if good else "inaccurate"), M, W0, y, info


def _sdp(red: RotaryConstraintSet) -> tuple[str, np.ndarray, np.ndarray | None, np.ndarray]:
    """Clarabel on the embedded block SDP: ``(status, M (F, r1, r2), W0, lambda (m,))``."""
    try:
        import cvxpy as cp
    except ImportError as exc:  # pragma: no cover - cvxpy is a dependency
        raise MissingDependencyError("the group nuclear lifted Att-SVM needs cvxpy") from exc
    m, F, r1 = red.A.shape
    r2 = red.Zc.shape[1]
    R = [cp.Variable((r1, r2)) for _ in range(F)]
    I_ = [cp.Variable((r1, r2)) for _ in range(F)]
    # row values, one linear map per block: <Re a z^T, R> + <Im a z^T, I>
    vals: Any = 0
    for f in range(F):
        GR = np.einsum("ki,kj->kij", red.A[:, f].real, red.Zc).reshape(m, -1)
        GI = np.einsum("ki,kj->kij", red.A[:, f].imag, red.Zc).reshape(m, -1)
        vals = vals + GR @ cp.vec(R[f], order="C") + GI @ cp.vec(I_[f], order="C")
    obj: Any = sum(cp.normNuc(cp.bmat([[R[f], -I_[f]], [I_[f], R[f]]])) for f in range(F)) / 2
    W0 = None
    if red.A0 is not None:
        assert red.Z0 is not None
        W0 = cp.Variable((red.A0.shape[1], red.Z0.shape[1]))
        G0 = np.einsum("ki,kj->kij", red.A0, red.Z0).reshape(m, -1)
        vals = vals + G0 @ cp.vec(W0, order="C")
        obj = obj + cp.normNuc(W0)
    b, ne = red.rhs, red.n_eq
    cons = []
    if ne:
        cons.append(vals[:ne] == b[:ne])
    if ne < m:
        cons.append(vals[ne:] >= b[ne:])
    prob = cp.Problem(cp.Minimize(obj), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12,
                       tol_feas=1e-12, tol_ktratio=1e-10, max_iter=400)
        except cp.error.SolverError:
            prob.solve(solver="CLARABEL")
    status = str(prob.status)
    if R[0].value is None:
        return status, np.zeros((F, r1, r2), complex), None, np.zeros(m)
    M = np.stack([np.asarray(R[f].value) + 1j * np.asarray(I_[f].value) for f in range(F)])
    lam = np.zeros(m)
    if ne:
        lam[:ne] = -np.asarray(cons[0].dual_value).ravel()
    if ne < m:
        lam[ne:] = np.maximum(np.asarray(cons[-1].dual_value).ravel(), 0.0)
    return status, M, None if W0 is None else np.asarray(W0.value), lam


def _onto_rows(red: RotaryConstraintSet, M: np.ndarray, W0: np.ndarray | None,
               steps: int = 3) -> tuple[np.ndarray, np.ndarray | None]:
    """Least-norm corrections so that the equality rows and the violated inequality rows
    hold: ``K_JJ c = b_J - v_J``, ``Theta += sum_J c_j g_j`` (a few steps)."""
    kern = LiftedKernel(red)
    b, ne = red.rhs, red.n_eq
    for _ in range(steps):
        v = red.values(M, W0)
        J = np.flatnonzero((np.arange(red.m) < ne) | (v < b))
        J = J[np.abs(b[J] - v[J]) > 0]
        if J.size == 0:
            break
        c = np.linalg.lstsq(kern.block(J, J), b[J] - v[J], rcond=1e-13)[0]
        dM, dW0 = kern.split(kern.primal(J, c))
        M = M + dM
        W0 = None if W0 is None or dW0 is None else W0 + dW0
    return M, W0


def solve_lifted_nuc(problem: RotaryConstraintSet, tol: float = 1e-6,
                     sdp: str = "ipm") -> RotarySolution:
    """``min sum_f ||M_f||_* + ||W0||_*`` subject to the rows, certified by its dual.

    Parameters
    ----------
    problem : RotaryConstraintSet
    tol : float
        Certified relative gap required for ``optimal``.
    sdp : {"ipm", "clarabel"}
        The block SDP's solver: the structured interior point (default) or the dense SDP
        through cvxpy + Clarabel (the previous method, kept for comparisons).

    Returns
    -------
    RotarySolution
        ``dual``: multipliers with ``max_f ||G_f||_2 = 1`` (``sum(dual b)`` the certified lower
        bound); ``infeasible`` with the lifted Frobenius solver's Farkas certificate.
    """
    start = time.perf_counter()

    # feasibility does not depend on the norm: the exact Frobenius solver decides it
    fro = solve_lifted_fro(problem, tol=1e-9)
    if fro.status == "infeasible":
        fro.norm = "nuc"
        fro.info["seconds"] = time.perf_counter() - start
        return fro
    red, (U, V, U0, V0) = reduce_problem(problem)
    # start the interior point at the size of a known feasible point's objective
    assert fro.M is not None
    upper = group_nuclear(fro.M, fro.W0)
    n_cone = red.F * (red.A.shape[2] + red.Zc.shape[1]) + (
        0 if red.A0 is None or red.Z0 is None else red.A0.shape[1] + red.Z0.shape[1])
    info: dict[str, Any] = {"reduced_shape": (int(U.shape[1]), int(V.shape[1]))}
    status = "not run"
    if sdp == "ipm":
        # the working set starts at the lifted Frobenius SVM's support
        support = np.flatnonzero(fro.dual != 0)
        status, Mr, W0r, lam, ipm_info = _ipm(red, max(upper / max(n_cone, 1), 1e-8), support)
        info.update(solver="block interior point (rank-two Schur), certified from its dual",
                    sdp_status=status, **ipm_info)
    if sdp == "clarabel" or (status != "optimal" and red.m * red.F <= CLARABEL_MAX):
        # fall back on the dense SDP (cvxpy + Clarabel) where it is small enough
        status, Mr, W0r, lam = _sdp(red)
        info.update(solver="cvxpy + Clarabel, embedded block SDP, certified from its dual",
                    sdp_status=status)

    def certify(Mr: np.ndarray, W0r: np.ndarray | None, y: np.ndarray,
                how: str) -> RotarySolution:
        Mr, W0r = _onto_rows(red, Mr, W0r)
        M = np.einsum("ai,fij,bj->fab", U, Mr, V.conj())
        W0 = None if W0r is None or U0 is None or V0 is None else U0 @ W0r @ V0.T
        M, W0, vals = feasible_rescale(problem, M, W0)
        return finish(problem, "nuc", M, W0, y, tol, {**info, "polish": how}, vals=vals)

    sol = certify(Mr, W0r, lam, "none")
    starts = [(Mr, W0r, lam)]

    def better(cand: RotarySolution) -> bool:
        return bool(cand.info["kkt"]["primal"] <= PRIMAL_TOL and cand.info["kkt"]["dual"] == 0
                    and cand.info["certified_gap"] < sol.info["certified_gap"])

    # the tangent polish with face-corrected multipliers, kept when it certifies better; not
    # tried when the interior point's answer certifies to POLISH_ABOVE already (the polish
    # and the Newton step cost dense systems in the face's unknowns)
    polish = sol.info["certified_gap"] > POLISH_ABOVE or red.m * red.F <= POLISH_SMALL
    for Mc, W0c, y in face_candidates(red, Mr, W0r, lam) if polish else ():
        cand = certify(Mc, W0c, y, "tangent")
        starts.insert(0, (Mc, W0c, y))
        if better(cand):
            sol = cand
        if sol.info["certified_gap"] <= 1e-12:
            break
    # Newton on the face's optimality system (_rotary_newton) from each point so far
    for (Ms, W0s, ys), rtol, share in itertools.product(starts, (1e-6, 1e-4), (1e-6, 1e-4)):
        if not polish or sol.info["certified_gap"] <= 1e-12:
            break
        nt = newton_candidate(red, Ms, W0s if red.A0 is not None else None, ys, rtol, share)
        if nt is not None:
            cand = certify(nt[0], nt[1], nt[2], "newton")
            if better(cand):
                sol = cand
    blocks = [] if sol.M is None else list(sol.M)
    sol.info["ranks"] = [int(np.sum(np.linalg.svd(Mf, compute_uv=False)
                                    > 1e-7 * max(1e-300, np.abs(Mf).max()))) for Mf in blocks]
    sol.info["seconds"] = time.perf_counter() - start
    return sol
