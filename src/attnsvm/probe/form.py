"""The analysed form of a head: its exact scores from the extracted pieces.

For one head (a :class:`~attnsvm.probe.capture.HeadForm`) and one captured sequence with layer
input ``X`` (T, d), the features in which the head is bilinear are

- query side ``z_p = [x_p; 1] * qs_p`` (T, d + 1),
- key side ``x_r = x_r * ks_r`` (T, d), or ``[x_r; 1] * ks_r`` when ``key_aug``,

with ``qs = ks = 1`` unless the head normalizes q and k (QK-norm: the factor ``1 / rms`` of the
token's projection; the norm's gain is folded into the maps).  Then ``q_p = [W_Q | b_Q] z_p``,
``k_r = W_K' x_r`` and, with the rotation ``R(p)`` of the first ``rot_dims`` dimensions by the
angles ``p * omega`` (HF rotate_half pairing, the model's ``inv_freq``),

    s(p, r) = scale * (R(p) q_p)^T (R(r) k_r),

the pre-cap score.  The logits the softmax receives are ``c tanh(s / c)`` (soft-capping, when the
model applies it), ``-inf`` outside the causal triangle and the sliding window.
"""

from __future__ import annotations

import numpy as np

from .capture import Capture, HeadForm

__all__ = ["head_features", "head_scores", "head_logits", "head_probs", "form_key_mask",
           "rope_rotate", "key_map", "query_map"]


def query_map(form: HeadForm) -> np.ndarray:
    """``[W_Q | b_Q]``, shape (d_head, d + 1)."""
    return np.concatenate([form.Wq, form.bq[:, None]], axis=1)


def key_map(form: HeadForm) -> np.ndarray:
    """``W_K`` (d_head, d), or ``[W_K | b_K]`` (d_head, d + 1) with ``key_aug``."""
    if form.key_aug:
        return np.concatenate([form.Wk, form.bk[:, None]], axis=1)
    return form.Wk


def head_features(form: HeadForm, cap: Capture) -> tuple[np.ndarray, np.ndarray]:
    """Key-side and query-side features of one sequence.

    Returns
    -------
    (K, Q) : numpy.ndarray, shapes (T, d_k) and (T, d + 1)
        ``d_k`` is d, or d + 1 with ``key_aug``.
    """
    X = np.asarray(cap.X[form.layer], dtype=np.float64)
    ones = np.ones((X.shape[0], 1))
    Q = np.concatenate([X, ones], axis=1)
    K = np.concatenate([X, ones], axis=1) if form.key_aug else X.copy()
    if form.qk_norm:
        Q = Q * cap.qs[form.layer][form.head][:, None]
        K = K * cap.ks[form.layer][form.head][:, None]
    return K, Q


def rope_rotate(v: np.ndarray, pos: np.ndarray, omega: np.ndarray, rot_dims: int,
                gain: float = 1.0) -> np.ndarray:
    """Rotate the first ``rot_dims`` dimensions of each row of ``v`` (T, d_head) by
    ``pos[t] * omega`` (rotate_half pairing ``j <-> j + rot_dims / 2``), times ``sqrt(gain)``."""
    F = rot_dims // 2
    ang = np.asarray(pos, dtype=np.float64)[:, None] * np.asarray(omega)[None, :]  # (T, F)
    c, s = np.cos(ang) * np.sqrt(gain), np.sin(ang) * np.sqrt(gain)
    a, b = v[:, :F], v[:, F:2 * F]
    out = v.copy()
    out[:, :F] = a * c - b * s
    out[:, F:2 * F] = b * c + a * s
    return out


def head_scores(form: HeadForm, cap: Capture) -> np.ndarray:
    """The head's pre-cap scores, shape (T, T): entry (p, r) for query p and key r.

    The key bias is included even where it cancels, so the numbers are the model's own.
    """
    K, Q = head_features(form, cap)
    q = Q @ query_map(form).T
    k = K @ key_map(form).T
    if not form.key_aug:
        scale_k = cap.ks[form.layer][form.head][:, None] if form.qk_norm else 1.0
        k = k + scale_k * form.bk[None, :]
    if form.rot_dims:
        if form.omega is None:  # pragma: no cover - adapters always set it
            raise ValueError("a rotary head needs its frequencies")
        pos = np.arange(q.shape[0])
        q = rope_rotate(q, pos, form.omega, form.rot_dims, form.rope_gain)
        k = rope_rotate(k, pos, form.omega, form.rot_dims, form.rope_gain)
    return float(form.scale) * (q @ k.T)


def form_key_mask(form: HeadForm, T: int) -> np.ndarray:
    """Which keys each query sees, shape (T, T) bool: all, or causal, within the window."""
    p = np.arange(T)[:, None]
    r = np.arange(T)[None, :]
    mask = np.ones((T, T), dtype=bool)
    if form.causal:
        mask &= r <= p
    if form.window is not None:
        mask &= r > p - int(form.window)
    return mask


def head_logits(form: HeadForm, cap: Capture) -> np.ndarray:
    """What the model's softmax receives, shape (T, T): soft-capped scores, ``-inf`` masked."""
    s = head_scores(form, cap)
    if form.softcap is not None:
        s = float(form.softcap) * np.tanh(s / float(form.softcap))
    return np.where(form_key_mask(form, s.shape[0]), s, -np.inf)


def head_probs(form: HeadForm, cap: Capture) -> np.ndarray:
    """Row-wise softmax of :func:`head_logits`, shape (T, T)."""
    s = head_logits(form, cap)
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)
