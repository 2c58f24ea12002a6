"""Newton refinement of a group nuclear lifted answer on its face (ranks and active rows fixed).

With ``M_f = P_f Q_f^H`` (``P_f`` (d1, r_f), ``Q_f`` (d2, r_f) complex) and multipliers ``y`` on
the active rows ``S``, the optimality conditions of ``min sum_f ||M_f||_*`` are the polynomial
system

    G_f(y) Q_f = P_f,   G_f(y)^H P_f = Q_f,   <g_k, P Q^H> = b_k  (k in S),

``G_f(y) = sum_k y_k a_kf z_k^T`` (at a solution ``P_f = U_f S_f^(1/2)``, ``Q_f = V_f S_f^(1/2)``
up to a unitary, ``G_f V_f = U_f`` and ``U_f^H G_f = V_f^H``: ``G_f`` is a subgradient).  The
interior point leaves its primal singular vectors ~1e-5 off (its objective is accurate to the
square of that), which bounds any certificate built on them near 1e-8; Newton steps on this
system (least-norm steps: the unitary gauge leaves the Jacobian singular) converge
quadratically from there.  The system has degree two, so a central difference with unit step
gives each Jacobian column exactly (up to rounding); :func:`_jacobian` forms it analytically
(the tests hold the two against each other).  The certificate is recomputed from the
result by :func:`~._rotary_certify.finish`; this step only proposes a candidate.
"""

from __future__ import annotations

import numpy as np

from .rotary import RotaryConstraintSet

__all__ = ["newton_candidate"]

#: largest number of real unknowns refined (the Jacobian is formed densely)
MAX_UNKNOWNS = 2500
#: Newton steps
STEPS = 6


def _unpack(x: np.ndarray, shapes: list[tuple[int, int, int, bool]], ns: int
            ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    Ps, Qs, off = [], [], 0
    for d1, d2, r, real in shapes:
        parts = []
        for n in (d1 * r, d2 * r):
            v = x[off: off + n].astype(complex)
            off += n
            if not real:
                v = v + 1j * x[off: off + n]
                off += n
            parts.append(v)
        Ps.append(parts[0].reshape(d1, r))
        Qs.append(parts[1].reshape(d2, r))
    return Ps, Qs, x[off: off + ns]


def residual(blocks: list, shapes: list[tuple[int, int, int, bool]], x: np.ndarray, ns: int,
             b: np.ndarray) -> np.ndarray:
    """The system at ``x``: per block ``Re(G Q - P)``, ``Re(G^H P - Q)`` (then the imaginary
    parts for complex blocks), then the active rows' values minus ``b``."""
    Ps, Qs, ys = _unpack(x, shapes, ns)
    out, vals = [], np.zeros(ns)
    for (A, Z, _, real), P, Q in zip(blocks, Ps, Qs, strict=True):
        G = A.T @ (ys[:, None] * Z)
        e1, e2 = G @ Q - P, G.conj().T @ P - Q
        out += [e1.real.ravel(), e2.real.ravel()]
        if not real:
            out += [e1.imag.ravel(), e2.imag.ravel()]
        vals += np.einsum("ki,ij,kj->k", np.conj(A), P @ Q.conj().T, Z).real
    out.append(vals - b)
    return np.concatenate(out)


def _real_map(L: np.ndarray, real: bool) -> np.ndarray:
    """The real matrix of ``X -> L X`` on row-major ``[Re X; Im X]`` ((d, r) -> (e, r)) is
    built by the caller with ``kron``; this returns ``[[Lr, -Li], [Li, Lr]]`` (or ``Lr``)."""
    if real:
        return np.asarray(L.real)
    return np.block([[L.real, -L.imag], [L.imag, L.real]])


def _jacobian(blocks: list, shapes: list[tuple[int, int, int, bool]], x: np.ndarray,
              ns: int) -> np.ndarray:
    """The Jacobian of the system at ``x`` (rows and columns in the layout of ``res``)."""
    Ps, Qs, ys = _unpack(x, shapes, ns)
    n_res = sum((1 if real else 2) * r * (d1 + d2) for d1, d2, r, real in shapes) + ns
    J = np.zeros((n_res, x.size))
    ro = co = 0
    yc = x.size - ns
    vrow = n_res - ns
    for (A, Z, _, real), P, Q, (d1, d2, r, _) in zip(blocks, Ps, Qs, shapes, strict=True):
        c = 1 if real else 2
        G = A.T @ (ys[:, None] * Z)
        I_r = np.eye(r)
        # residual rows: [e1 (d1 r), e2 (d2 r)] per part (Re, then Im); unknowns [P, Q] parts
        e1 = [ro + p * r * (d1 + d2) for p in range(c)]
        e2 = [e + d1 * r for e in e1]
        cp = [co + p * d1 * r for p in range(c)]
        cq = [co + c * d1 * r + p * d2 * r for p in range(c)]
        for p in range(c):
            J[e1[p]: e1[p] + d1 * r, cp[p]: cp[p] + d1 * r] = -np.eye(d1 * r)
            J[e2[p]: e2[p] + d2 * r, cq[p]: cq[p] + d2 * r] = -np.eye(d2 * r)
        for L, rows, cols, dout, din in ((G, e1, cq, d1, d2), (G.conj().T, e2, cp, d2, d1)):
            R = _real_map(L, real)
            for pi in range(c):
                for pj in range(c):
                    blk = R[pi * dout:(pi + 1) * dout, pj * din:(pj + 1) * din]
                    J[rows[pi]: rows[pi] + dout * r, cols[pj]: cols[pj] + din * r] += np.kron(
                        blk, I_r)
        # d/dy_k: e1 += a_k (Q^T z_k)^T, e2 += z_k (P^T conj(a_k))^T
        u = np.conj(A) @ P                                   # (s, r): P^T conj(a_k)
        qz = Z @ Q                                           # (s, r): Q^T z_k
        d_e1 = np.einsum("ki,kj->kij", A, qz).reshape(ns, -1)
        d_e2 = np.einsum("ki,kj->kij", Z.astype(complex), u).reshape(ns, -1)
        J[e1[0]: e1[0] + d1 * r, yc:] = d_e1.real.T
        J[e2[0]: e2[0] + d2 * r, yc:] = d_e2.real.T
        if not real:
            J[e1[1]: e1[1] + d1 * r, yc:] = d_e1.imag.T
            J[e2[1]: e2[1] + d2 * r, yc:] = d_e2.imag.T
        # row values: d/dP = conj(a_k) w_k^T (w = Q^H z), d/dQ = z_k u_k^T (conjugated)
        w = Z @ np.conj(Q)                                   # (s, r): Q^H z_k
        gp = np.einsum("ki,kj->kij", np.conj(A), w).reshape(ns, -1)
        gq = np.einsum("ki,kj->kij", Z.astype(complex), u).reshape(ns, -1)
        J[vrow:, cp[0]: cp[0] + d1 * r] = gp.real
        J[vrow:, cq[0]: cq[0] + d2 * r] = gq.real
        if not real:
            J[vrow:, cp[1]: cp[1] + d1 * r] = -gp.imag
            J[vrow:, cq[1]: cq[1] + d2 * r] = gq.imag
        ro += c * r * (d1 + d2)
        co += c * r * (d1 + d2)
    return J


def _top(Mb: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    U, sv, Vh = np.linalg.svd(Mb)
    r = int(np.sum(sv > rtol * max(sv[0], 1e-300))) if sv.size else 0
    root = np.sqrt(sv[:r])
    return U[:, :r] * root, Vh[:r].conj().T * root


def newton_candidate(red: RotaryConstraintSet, M: np.ndarray, W0: np.ndarray | None,
                     y: np.ndarray, rtol: float = 1e-6, share: float = 1e-6
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray] | None:
    """Refine ``(M, W0, y)`` (reduced problem) on the face of the numerical ranks (singular
    values above ``rtol`` times the largest) and the rows: the equalities and the inequalities
    with ``y`` above ``share`` times its largest entry.  The free block ``W0`` (real) is one
    more block with real factors.

    Returns
    -------
    (M, W0, y) or None
        The refined point, or None when the system is too large or the steps diverge.
    """
    ne = red.n_eq
    peak = float(np.max(y[ne:])) if y.size > ne else 0.0
    S = np.flatnonzero((np.arange(red.m) < ne) | (y > share * max(peak, 0.0)))
    F = M.shape[0]
    blocks = [(red.A[S][:, f], red.Zc[S], M[f], False) for f in range(F)]
    if W0 is not None and red.A0 is not None and red.Z0 is not None:
        blocks.append((red.A0[S], red.Z0[S], W0, True))
    tops = [_top(Mb, rtol) for _, _, Mb, _ in blocks]
    shapes = [(Mb.shape[0], Mb.shape[1], P.shape[1], real)
              for (_, _, Mb, real), (P, _) in zip(blocks, tops, strict=True)]
    n_x = sum((1 if real else 2) * r * (d1 + d2) for d1, d2, r, real in shapes) + S.size
    if S.size == 0 or n_x > MAX_UNKNOWNS:
        return None
    b = red.rhs[S]
    x = np.concatenate([np.concatenate([P.real.ravel()] + ([] if real else [P.imag.ravel()])
                                       + [Q.real.ravel()] + ([] if real else [Q.imag.ravel()]))
                        for (P, Q), (_, _, _, real) in zip(tops, shapes, strict=True)]
                       + [y[S]])

    def res(x: np.ndarray) -> np.ndarray:
        return residual(blocks, shapes, x, S.size, b)

    r0 = res(x)
    start = float(np.linalg.norm(r0))
    for _ in range(STEPS):
        J = _jacobian(blocks, shapes, x, S.size)
        # the unitary gauge leaves singular values of the order of the residual: cut them
        x = x - np.linalg.lstsq(J, r0, rcond=1e-7)[0]
        r0 = res(x)
        if not np.all(np.isfinite(r0)) or np.linalg.norm(r0) > 10 * start:
            return None
        if np.linalg.norm(r0) <= 1e-15 * max(1.0, start):
            break
    Ps, Qs, ys = _unpack(x, shapes, S.size)
    Mb = [P @ Q.conj().T for P, Q in zip(Ps, Qs, strict=True)]
    yn = np.zeros(red.m)
    yn[S] = ys
    return np.stack(Mb[:F]), (Mb[F].real if len(Mb) > F else None), yn
