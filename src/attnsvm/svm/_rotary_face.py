"""Polish of a nearly optimal group nuclear answer: tangent step, then multipliers on its face.

The interior point leaves the rows satisfied to ~1e-8 and its dual matrices ``G_f`` of
spectral norm ``1 + 1e-8``.  For a guess of the ranks ``r_f`` and the active rows ``S``:

* primal: ``M_f += U_f X_f^H + Y_f V_f^H`` (the tangent space of the rank-``r_f`` matrices),
  the least-norm step onto the rows ``S``, then truncation to rank ``r_f``, a few times;
* dual: on the polished face ``M_f = U_f C_f V_f^H`` (``C_f`` Hermitian positive definite)
  ``||M_f||_* = tr C_f``, and ``sum_S y_k b_k = sum_f tr C_f`` holds exactly once
  ``Herm(U_f^H G_f V_f) = I``: ``A^T y = e`` with ``A_kj = Re(zh_k^T B_j ah_k)``
  (``ah = U^H a``, ``zh = V^T z``, ``B_j`` a real basis of the Hermitian matrices,
  ``e_j = tr B_j``), solved as the least change of the interior point's multipliers.

The certificate (:func:`~._rotary_certify.finish`) then only asks ``y >= 0``, the rows and
``max_f ||G_f||_2``, so a wrong guess only costs its solve.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .rotary import RotaryConstraintSet

__all__ = ["face_candidates"]


def _herm_basis(r: int, real: bool) -> np.ndarray:
    """A basis of the (real or complex) Hermitian r x r matrices, shape (p, r, r)."""
    out = []
    for i in range(r):
        E = np.zeros((r, r), complex)
        E[i, i] = 1
        out.append(E)
        for j in range(i + 1, r):
            S = np.zeros((r, r), complex)
            S[i, j] = S[j, i] = 1
            out.append(S)
            if not real:
                K = np.zeros((r, r), complex)
                K[i, j], K[j, i] = -1j, 1j
                out.append(K)
    return np.array(out).reshape(-1, r, r)


def _face(A: np.ndarray, Z: np.ndarray, U: np.ndarray, V: np.ndarray, real: bool
          ) -> tuple[np.ndarray, np.ndarray]:
    """Row map ``(m, p)`` of ``C -> <a z^T, U C V^H>`` and the Hermitian basis ``(p, r, r)``."""
    B = _herm_basis(U.shape[1], real)
    ah = A @ np.conj(U)            # rows a^T conj(U) = (U^H a)^T, (m, r)
    zh = Z @ V                     # (V^T z)^T, (m, r)
    return np.einsum("ka,jab,kb->kj", zh, B, ah).real, B


def _top(M: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    U, sv, Vh = np.linalg.svd(M)
    return U[:, :r], sv[:r], Vh[:r].conj().T


def _tangent_rows(A: np.ndarray, Z: np.ndarray, U: np.ndarray, V: np.ndarray,
                  real: bool) -> np.ndarray:
    """Rows of ``(X, Y) -> <a_k z_k^T, U X^H + Y V^H>`` in real coordinates, (m, p)."""
    al = np.conj(A) @ U                     # conj(a)^T U, (m, r)
    be = Z @ np.conj(V)                     # V^H z, (m, r)
    m = A.shape[0]
    jx = Z[:, :, None] * al[:, None, :]     # d/dX_lj: z_l alpha_j (real part), (m, d2, r)
    jy = np.conj(A)[:, :, None] * be[:, None, :]   # d/dY_lj: conj(a_l) beta_j, (m, d1, r)
    parts = [jx.real.reshape(m, -1), jy.real.reshape(m, -1)]
    if not real:
        parts += [jx.imag.reshape(m, -1), -jy.imag.reshape(m, -1)]
    return np.concatenate(parts, axis=1)


def _tangent_step(A: np.ndarray, Z: np.ndarray, U: np.ndarray, V: np.ndarray, real: bool,
                  theta: np.ndarray) -> np.ndarray:
    """``U X^H + Y V^H`` from the real coordinates of :func:`_tangent_rows`."""
    d1, d2, r = A.shape[1], Z.shape[1], U.shape[1]
    nx, ny = d2 * r, d1 * r
    X = theta[:nx].reshape(d2, r).astype(complex)
    Y = theta[nx: nx + ny].reshape(d1, r).astype(complex)
    if not real:
        X = X + 1j * theta[nx + ny: 2 * nx + ny].reshape(d2, r)
        Y = Y + 1j * theta[2 * nx + ny:].reshape(d1, r)
    return np.asarray(U @ np.conj(X).T + Y @ np.conj(V).T)


def _subgradient_fit(blocks: list, tops: list, S: np.ndarray, As: np.ndarray, y0: np.ndarray
                     ) -> np.ndarray | None:
    """Multipliers on ``S`` closest (least squares) to ``G_f V_f = U_f``, ``U_f^H G_f = V_f^H``
    for every block, among those that keep ``As^T y = As^T y0`` (the face equations)."""
    cols, target = [], []
    for (A, Z, _, _), (U, _, V) in zip(blocks, tops, strict=True):
        a, zz = A[S], Z[S].astype(complex)
        gv = np.einsum("ki,kj->kij", a, zz @ V).reshape(S.size, -1)          # G V
        ug = np.einsum("ki,kj->kij", a @ np.conj(U), zz).reshape(S.size, -1)  # U^H G
        cols.append(np.concatenate([gv, ug], axis=1))
        target.append(np.concatenate([U.ravel(), np.conj(V).T.ravel()]))
    Rc, tc = np.concatenate(cols, axis=1).T, np.concatenate(target)
    R = np.concatenate([Rc.real, Rc.imag])
    t = np.concatenate([tc.real, tc.imag])
    from scipy.linalg import null_space

    N = null_space(As.T)
    if N.shape[1] == 0:
        return None
    s = np.linalg.lstsq(R @ N, t - R @ y0, rcond=None)[0]
    return np.asarray(y0 + N @ s)


#: Newton steps of the tangent polish
_STEPS = 4
#: largest tangent system (rows x parameters) the polish forms; larger problems keep the
#: interior point's answer
_MAX_ENTRIES = 4_000_000


def face_candidates(red: RotaryConstraintSet, M: np.ndarray, W0: np.ndarray | None,
                    lam: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray | None,
                                                       np.ndarray]]:
    """Candidates ``(M, W0, y)`` from a few guesses of ranks and active rows.

    Primal: tangent polish, ``M_f += U_f X_f^H + Y_f V_f^H`` (least-norm step onto the
    active rows ``S``) then truncation to rank ``r_f``, a few times (this fixes the rows, not
    the optimality: the polished point is as good as the interior point's dual).  Dual: the
    least change of the interior point's multipliers that makes ``Herm(U_f^H G_f V_f) = I``
    (then ``<G, M> = sum ||M_f||_*`` exactly and the gap is ``max_f ||G_f||_2 - 1``).
    """
    F = M.shape[0]
    blocks = [(red.A[:, f], red.Zc, M[f], False) for f in range(F)]
    if W0 is not None and red.A0 is not None and red.Z0 is not None:
        blocks.append((red.A0, red.Z0, W0, True))
    peak = float(np.max(lam)) if lam.size else 0.0
    if peak <= 0:
        return
    b = red.rhs
    tried: set[tuple[tuple[int, ...], bytes]] = set()
    for rtol in (1e-6, 1e-4):
        ranks = []
        for _, _, Mb, _ in blocks:
            sv = np.linalg.svd(Mb, compute_uv=False)
            ranks.append(int(np.sum(sv > rtol * max(sv[0], 1e-300))) if sv.size else 0)
        for share in (1e-6, 1e-4):
            S = np.flatnonzero((np.arange(red.m) < red.n_eq) | (lam > share * peak))
            n_par = sum((1 if real else 2) * r * (A.shape[1] + Z.shape[1])
                        for (A, Z, _, real), r in zip(blocks, ranks, strict=True))
            key = (tuple(ranks), S.tobytes())
            if S.size == 0 or S.size * n_par > _MAX_ENTRIES or key in tried:
                continue
            tried.add(key)
            Ms = [Mb.astype(complex) for _, _, Mb, _ in blocks]
            tops = [_top(Mb, r) for Mb, r in zip(Ms, ranks, strict=True)]
            Ms = [U @ np.diag(sv) @ V.conj().T for U, sv, V in tops]
            for _ in range(_STEPS):
                Mn = np.stack(Ms[:F])
                W0n = Ms[-1].real if len(blocks) > F else None
                resid = b[S] - red.subset(S).values(Mn, W0n)
                J = np.concatenate([_tangent_rows(A[S], Z[S], U, V, real) for
                                    (A, Z, _, real), (U, _, V) in zip(blocks, tops, strict=True)],
                                   axis=1)
                # least-norm step through the |S| x |S| normal equations (J is wide)
                theta = J.T @ np.linalg.lstsq(J @ J.T, resid, rcond=1e-14)[0]
                off = 0
                for j, ((A, Z, _, real), (U, _, V)) in enumerate(zip(blocks, tops, strict=True)):
                    n_p = (1 if real else 2) * U.shape[1] * (A.shape[1] + Z.shape[1])
                    Ms[j] = Ms[j] + _tangent_step(A, Z, U, V, real, theta[off: off + n_p])
                    off += n_p
                tops = [_top(Mb, r) for Mb, r in zip(Ms, ranks, strict=True)]
                Ms = [U @ np.diag(sv) @ V.conj().T for U, sv, V in tops]
            # dual: the least change that makes Herm(U_f^H G_f V_f) = I (exact <G, M>)
            faces = [_face(A, Z, U, V, real)
                     for (A, Z, _, real), (U, _, V) in zip(blocks, tops, strict=True)]
            As = np.concatenate([f[0] for f in faces], axis=1)[S]
            e = np.concatenate([np.trace(f[1], axis1=1, axis2=2).real for f in faces])
            y = np.zeros(red.m)
            y[S] = lam[S] + np.linalg.lstsq(As.T, e - As.T @ lam[S], rcond=None)[0]
            Mout = np.stack(Ms[:F]), (Ms[-1].real if len(blocks) > F else None)
            yield Mout[0], Mout[1], y
            # the whole subgradient, G_f V_f = U_f and U_f^H G_f = V_f^H, in least squares
            # with the face equations kept: ||G_f||_2 - 1 then falls to the square of the
            # residual (the least change above leaves the off-face parts of G_f at ~1e-5)
            z = _subgradient_fit(blocks, tops, S, As, y[S])
            if z is not None:
                y2 = np.zeros(red.m)
                y2[S] = z
                yield Mout[0], Mout[1], y2
