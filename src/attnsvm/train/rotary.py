"""Gradient descent on a one-layer rotary attention: lifted parameters or per-frequency factors.

Scores (SPEC.md "Rotary instances"): ``a_it = sum_f Re(c_itf x_it^T M_f z_i)`` with
``c_itf = exp(1j freqs[f] (qpos_i - pos_it))``, probabilities ``s_i = softmax(a_i)``, linear
head ``f_i = v^T X_i^T s_i``, logistic loss ``L = (1/n) sum_i log(1 + exp(-Y_i f_i))``.
With ``<A, B> = Re tr(A^H B)``, ``a_it = <conj(c_itf) x_it z_i^T, M_f>``, so

    -dL/dM_f = sum_it C_it conj(c_itf) x_it z_i^T,    C = -dL/da

(``C`` by :func:`score_direction_np`, the arithmetic of :func:`attnsvm.train.score_direction`
in NumPy: exact after the softmax saturates, up to a positive factor, which normalized GD
ignores).

* ``param="lifted"``: ``Theta = (M_1..M_F)``, ``M <- M + lr D / ||D||`` (D over all blocks).
* ``param="factors"``: ``M_f = P_f Q_f^H`` (complex (d, k) factors, as a real head's
  ``conj(V_f)^T U_f``), ``-dL/dP_f = D_f Q_f``, ``-dL/dQ_f = D_f^H P_f``, each factor's
  step normalized over all blocks separately (the papers' convention for (K, Q); no
  ``eps ||.||^2`` term: the exact direction never underflows).

All in float64.

Examples
--------
>>> import numpy as np
>>> from attnsvm.instance import random_instance
>>> b = random_instance(3, 4, 4, seed=0)
>>> run = train_rotary(b.X, b.Z, np.tile(np.arange(4), (3, 1)), np.full(3, 4),
...                    np.array([1.0, 0.1]), b.Y, b.v, steps=50)
>>> run.M.shape, run.M.dtype
((2, 4, 4), dtype('complex128'))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .._validation import as_float_array, as_int_array, check_choice, check_positive

__all__ = ["RotaryRun", "train_rotary", "rotary_phases", "score_direction_np"]

PARAMS = ("lifted", "factors")


def rotary_phases(pos: np.ndarray, qpos: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """``c[i, t, f] = exp(1j freqs[f] (qpos[i] - pos[i, t]))``, shape (n, T, F)."""
    dp = (np.asarray(qpos)[:, None] - np.asarray(pos)).astype(np.float64)
    return np.asarray(np.exp(1j * dp[..., None] * np.asarray(freqs, dtype=np.float64)))


@dataclass
class RotaryRun:
    """A training run.

    Attributes
    ----------
    M : ndarray of complex128, shape (F, d, d)
        Final lifted parameter (``P_f Q_f^H`` for factors).
    steps : ndarray of int, shape (K,)
        Recorded steps; ``path`` (K, F, d, d) the lifted parameter there.
    selected : ndarray of int, shape (n,)
        Token of largest final probability per sequence.
    max_prob : ndarray, shape (n,)
        That probability.
    loss : float
        Final loss.
    P, Q : ndarray of complex128, shape (F, d, k), or None
        Final factors (``param="factors"``).
    """

    M: np.ndarray
    steps: np.ndarray
    path: np.ndarray
    selected: np.ndarray
    max_prob: np.ndarray
    loss: float
    P: np.ndarray | None = field(default=None)
    Q: np.ndarray | None = field(default=None)


def score_direction_np(a: np.ndarray, H: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
    """``-dL/da`` up to a positive factor, exact after saturation, and the loss ``L``.

    The arithmetic of :func:`attnsvm.train.score_direction` (linear head, logistic loss) for
    one instance in NumPy: with ``a_i`` the selected token, ``e_iu = s_iu / s_i(2nd)`` and
    ``Dt_i = sum_{u != a} e_iu (h_ia - h_iu)``, ``h_ia - f_i = s_i(2nd) Dt_i`` without
    cancellation.

    Parameters
    ----------
    a : ndarray, shape (n, T)
        Scores.
    H : ndarray, shape (n, T)
        ``h_it = v^T x_it``.
    Y : ndarray, shape (n,)

    Returns
    -------
    C : ndarray, shape (n, T)
    loss : float
    """
    n, T = a.shape
    rows = np.arange(n)
    sel = a.argmax(1)
    y = a - a[rows, sel][:, None]
    ym = y.copy()
    ym[rows, sel] = -np.inf
    m2y = ym.max(1)
    e = np.exp(ym - m2y[:, None])                     # 0 at the selected token
    L1 = np.log1p(np.exp(m2y) * e.sum(1))             # -log s_ia
    m2 = m2y - L1                                     # log s_i(2nd)
    em2 = np.exp(m2)
    h_a = H[rows, sel]
    dh = h_a[:, None] - H
    Dt = np.sum(e * dh, axis=1)
    u = Y * (h_a - em2 * Dt)
    lw = -np.logaddexp(0.0, u)                        # log(-l'(u)), logistic
    q = lw + m2
    cc = Y * np.exp(q - q.max())
    C = e * ((em2 * Dt)[:, None] - dh) * cc[:, None]
    C[rows, sel] = cc * np.exp(-L1) * Dt
    return C, float(np.mean(np.logaddexp(0.0, -u)))


def train_rotary(X: np.ndarray, Z: np.ndarray, pos: np.ndarray, qpos: np.ndarray,
                 freqs: np.ndarray, Y: np.ndarray, v: np.ndarray, *, param: str = "lifted",
                 steps: int = 4000, lr: float = 0.1, width: int | None = None,
                 init_scale: float = 0.01, seed: int = 0,
                 record: Sequence[int] | None = None) -> RotaryRun:
    """Normalized GD on a one-layer rotary attention, float64, exact directions.

    Parameters
    ----------
    X : ndarray, shape (n, T, d); Z : (n, d); pos : (n, T) int; qpos : (n,) int;
    freqs : (F,); Y : (n,) in {-1, +1}; v : (d,)
    param : {"lifted", "factors"}
    steps : int
    lr : float
        Step length of normalized GD.
    width : int, optional
        Factor width ``k`` (default d).
    init_scale : float
        Lifted: start at 0 (``init_scale`` unused); factors: complex Gaussian entries of
        standard deviation ``init_scale``.
    seed : int
        Seed of the factors' initialization.
    record : sequence of int, optional
        Steps at which ``M`` is kept (default: the last one).

    Returns
    -------
    RotaryRun
    """
    check_choice("param", param, PARAMS)
    check_positive("steps", steps, integer=True, allow_zero=True)
    check_positive("lr", lr)
    Xa = as_float_array("X", X, 3)
    n, T, d = Xa.shape
    Za = as_float_array("Z", Z, 2, (n, d))
    c = rotary_phases(as_int_array("pos", pos, 2, (n, T)), as_int_array("qpos", qpos, 1, (n,)),
                      as_float_array("freqs", freqs, 1))
    F = c.shape[2]
    Ya = as_float_array("Y", Y, 1, (n,))
    va = as_float_array("v", v, 1, (d,))
    H = Xa @ va                                                        # (n, T): v^T x_it
    feat = np.conj(c)[..., None] * Xa[:, :, None, :]                    # (n, T, F, d)
    featc = np.ascontiguousarray(np.conj(feat))
    k = d if width is None else int(width)
    rng = np.random.default_rng(seed)
    P = Q = None
    if param == "factors":
        def gauss() -> np.ndarray:
            g = rng.standard_normal((F, d, k)) + 1j * rng.standard_normal((F, d, k))
            return np.asarray(g * init_scale / np.sqrt(2))
        P, Q = gauss(), gauss()
        M = P @ np.conj(Q).transpose(0, 2, 1)
    else:
        M = np.zeros((F, d, d), dtype=np.complex128)
    keep = {int(s) for s in (record if record is not None else [steps])}
    rec_steps, path = [], []

    def scores(M: np.ndarray) -> np.ndarray:
        MZ = np.einsum("fij,nj->nfi", M, Za)                            # (n, F, d)
        return np.asarray(np.einsum("ntfi,nfi->nt", featc, MZ).real)    # (n, T)

    for step in range(steps + 1):
        if step in keep:
            rec_steps.append(step)
            path.append(M.copy())
        if step == steps:
            break
        C, _ = score_direction_np(scores(M), H, Ya)
        D = np.einsum("nfi,nj->fij", np.einsum("nt,ntfi->nfi", C, feat), Za)  # -dL/dM, scaled
        if P is None or Q is None:
            nd = np.linalg.norm(D)
            if nd > 0:
                M = M + lr * D / nd
        else:
            gP = D @ Q
            gQ = np.conj(D).transpose(0, 2, 1) @ P
            nP, nQ = np.linalg.norm(gP), np.linalg.norm(gQ)
            if nP > 0:
                P = P + lr * gP / nP
            if nQ > 0:
                Q = Q + lr * gQ / nQ
            M = P @ np.conj(Q).transpose(0, 2, 1)
    a = scores(M)
    _, loss = score_direction_np(a, H, Ya)
    logp = a - a.max(1, keepdims=True)
    logp -= np.log(np.sum(np.exp(logp), axis=1, keepdims=True))
    return RotaryRun(
        M=M.copy(), steps=np.array(rec_steps, dtype=np.int64), path=np.array(path),
        selected=np.argmax(a, axis=1).astype(np.int64), max_prob=np.exp(logp.max(axis=1)),
        loss=loss,
        P=None if P is None else P.copy(), Q=None if Q is None else Q.copy())
