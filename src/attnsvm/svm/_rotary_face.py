"""Face polish of a nearly optimal group nuclear answer: the KKT conditions on its face.

On the face of the candidate ``M_f = U_f C_f V_f^H`` (``U_f``, ``V_f`` its top ``r_f``
singular vectors, ``C_f`` Hermitian positive definite) ``||M_f||_* = tr C_f`` is linear, so
the optimum restricted to the face and its active rows ``S`` solves

    A c = b_S          (active rows, ``A_kj = Re(zh_k^T B_j ah_k)``; least squares)
    A^T y = e          (stationarity on the face: Herm(U_f^H G_f V_f) = I; the least change
                        of the interior point's multipliers, which also fix the part of
                        G_f off the face)

with ``ah = U^H a``, ``zh = V^T z``, ``B_j`` a real basis of the Hermitian matrices and
``e_j = tr B_j``.  Then ``sum_k y_k b_k = sum_f tr C_f`` exactly, and the certificate
(:func:`~._rotary_certify.finish`) only asks ``||G_f||_2 <= 1``, ``y >= 0`` and feasibility
of the other rows; a wrong guess of ``(S, r)`` only costs its solve.
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


def _face(A: np.ndarray, Z: np.ndarray, M: np.ndarray, r: int, real: bool
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row map ``(m, p)``, basis ``(p, r, r)`` and singular bases of one block."""
    U, _, Vh = np.linalg.svd(M)
    U, V = U[:, :r], Vh[:r].conj().T
    B = _herm_basis(r, real)
    ah = A @ np.conj(U)            # rows a^T conj(U) = (U^H a)^T, (m, r)
    zh = Z @ V                     # (V^T z)^T, (m, r)
    rows = np.einsum("ka,jab,kb->kj", zh, B, ah).real
    return rows, B, U, V


def face_candidates(red: RotaryConstraintSet, M: np.ndarray, W0: np.ndarray | None,
                    lam: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray | None,
                                                       np.ndarray]]:
    """Candidates ``(M, W0, y)`` from a few guesses of ranks and active rows."""
    blocks = [(red.A[:, f], red.Zc, M[f], False) for f in range(M.shape[0])]
    if W0 is not None and red.A0 is not None and red.Z0 is not None:
        blocks.append((red.A0, red.Z0, W0, True))
    peak = float(np.max(lam)) if lam.size else 0.0
    if peak <= 0:
        return
    for rtol in (1e-6, 1e-4, 1e-8):
        ranks = []
        for _, _, Mb, _ in blocks:
            s = np.linalg.svd(Mb, compute_uv=False)
            ranks.append(int(np.sum(s > rtol * max(s[0], 1e-300))) if s.size else 0)
        faces = [_face(A, Z, Mb, r, real) for (A, Z, Mb, real), r in zip(blocks, ranks,
                                                                          strict=True)]
        Afull = np.concatenate([f[0] for f in faces], axis=1)
        e = np.concatenate([np.trace(f[1], axis1=1, axis2=2).real for f in faces])
        p = Afull.shape[1]
        for share in (1e-6, 1e-4, 1e-8):
            S = np.flatnonzero((np.arange(red.m) < red.n_eq) | (lam > share * peak))
            if S.size == 0 or S.size + p > 4000:
                continue
            As = Afull[S]
            # primal: the face point on the active rows; dual: the least change of the
            # interior point's multipliers that makes the face part of G exactly I
            c = np.linalg.lstsq(As, red.rhs[S], rcond=None)[0]
            yS = lam[S] + np.linalg.lstsq(As.T, e - As.T @ lam[S], rcond=None)[0]
            y = np.zeros(red.m)
            y[S] = yS
            Ms, off = [], 0
            for (_rows, B, U, V) in faces:
                C = np.einsum("j,jab->ab", c[off: off + B.shape[0]], B)
                off += B.shape[0]
                Ms.append(U @ C @ V.conj().T)
            Mn = np.stack(Ms[: M.shape[0]])
            W0n = Ms[-1].real if len(blocks) > M.shape[0] else None
            yield Mn, W0n, y
