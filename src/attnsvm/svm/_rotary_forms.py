"""Forms of the lifted rotary parameter: scores, a real head's lifted form, norms and
correlations (re-exported by :mod:`attnsvm.svm.rotary`)."""

from __future__ import annotations

import numpy as np

from .._validation import as_float_array, check_positive
from ..exceptions import InvalidInputError

__all__ = ["lifted_scores", "head_lifted", "lifted_norm", "lifted_correlation"]


def lifted_scores(M: np.ndarray, W0: np.ndarray | None, X: np.ndarray, Z: np.ndarray,
                  pos: np.ndarray, qpos: np.ndarray, freqs: np.ndarray,
                  X0: np.ndarray | None = None, Z0: np.ndarray | None = None) -> np.ndarray:
    """Rotary scores ``S[i, t] = sum_f Re(exp(1j w_f (qpos_i - pos_it)) X[i,t] @ M_f @ Z[i])``
    (+ ``X0[i,t] @ W0 @ Z0[i]``).

    Parameters
    ----------
    M : ndarray, shape (F, d, d), complex
    W0 : ndarray, shape (d0, d0), or None
    X : ndarray, shape (n, T, d); Z : (n, d); pos : (n, T); qpos : (n,); freqs : (F,)
    X0, Z0 : ndarrays, shapes (n, T, d0), (n, d0), optional (default ``X``, ``Z``)

    Returns
    -------
    ndarray, shape (n, T)
    """
    M = np.asarray(M, dtype=np.complex128)
    X = np.asarray(X, dtype=np.float64)
    Z = np.asarray(Z, dtype=np.float64)
    c = np.exp(1j * (np.asarray(qpos)[:, None] - np.asarray(pos)).astype(np.float64)[..., None]
               * np.asarray(freqs, dtype=np.float64))                 # (n, T, F)
    MZ = np.einsum("fij,nj->nfi", M, Z)                                 # (n, F, d)
    S = np.einsum("ntf,nti,nfi->nt", c, X, MZ).real
    if W0 is not None:
        X0 = X if X0 is None else np.asarray(X0, dtype=np.float64)
        Z0 = Z if Z0 is None else np.asarray(Z0, dtype=np.float64)
        S = S + np.einsum("nti,ij,nj->nt", X0, np.asarray(W0, dtype=np.float64), Z0)
    return np.asarray(S)


def head_lifted(W_Q_rows: np.ndarray, W_K_rows: np.ndarray, rotary_dims: int | None = None,
                scale: float = 1.0) -> tuple[np.ndarray, np.ndarray | None]:
    """The lifted parameter of one real head, Hugging Face ``rotate_half`` pairing.

    With ``F = rotary_dims // 2``, rows ``f`` and ``f + F`` of the head's query/key projections
    form ``u_f = W_Q[f] + 1j W_Q[f+F]`` and ``v_f = W_K[f] + 1j W_K[f+F]``; then
    ``M_f = conj(v_f) u_f^T / scale`` and the unrotated rows ``j >= rotary_dims`` give
    ``W0 = W_K[j:]^T W_Q[j:] / scale``.  The head's score of key ``x`` at ``r`` for query ``z``
    at ``p`` is ``sum_f Re(exp(1j inv_freq_f (p - r)) x^T M_f z) + x^T W0 z``.

    Parameters
    ----------
    W_Q_rows, W_K_rows : ndarray, shape (D, d)
        The head's rows of the query and key projections (``q = W_Q z``).
    rotary_dims : int, optional
        Rotated dimensions (even, <= D; default D).
    scale : float
        The head's score divisor (e.g. ``sqrt(D)``).

    Returns
    -------
    M : ndarray of complex128, shape (F, d, d)
    W0 : ndarray, shape (d, d), or None when every dimension is rotated
    """
    WQ = as_float_array("W_Q_rows", W_Q_rows, 2)
    WK = as_float_array("W_K_rows", W_K_rows, 2, WQ.shape)
    D = WQ.shape[0]
    R = D if rotary_dims is None else int(rotary_dims)
    if R < 0 or R > D or R % 2:
        raise InvalidInputError(
            f"The 'rotary_dims' parameter must be an even number in [0, {D}]. Got {R} instead.")
    check_positive("scale", scale)
    F = R // 2
    u = WQ[:F] + 1j * WQ[F:R]
    v = WK[:F] + 1j * WK[F:R]
    M = np.einsum("fi,fj->fij", np.conj(v), u) / scale
    W0 = WK[R:].T @ WQ[R:] / scale if R < D else None
    return M, W0


def lifted_norm(M: np.ndarray | None, W0: np.ndarray | None = None) -> float:
    """``sqrt(sum_f ||M_f||_F^2 + ||W0||_F^2)``."""
    # vdot: one pass without temporaries (the probe's M is (32, 352, 352) complex)
    s = 0.0 if M is None else float(np.vdot(M, M).real)
    if W0 is not None:
        W = np.asarray(W0, dtype=np.float64)
        s += float(np.vdot(W, W))
    return float(np.sqrt(s))


def lifted_correlation(M1: np.ndarray, W01: np.ndarray | None, M2: np.ndarray,
                       W02: np.ndarray | None) -> float:
    """``<Theta1, Theta2> / (|Theta1| |Theta2|)`` with the real inner product
    ``sum_f Re tr(M1_f^H M2_f) + <W01, W02>`` (a missing ``W0`` counts as zero)."""
    ip = float(np.sum(np.conj(np.asarray(M1)) * np.asarray(M2)).real)
    if W01 is not None and W02 is not None:
        ip += float(np.sum(np.asarray(W01) * np.asarray(W02)))
    den = lifted_norm(M1, W01) * lifted_norm(M2, W02)
    return ip / den if den > 0 else 0.0
