r"""Fused Triton trainer: every step of the exact update in one kernel launch.

One program owns one instance.  It loads ``X`` (n, T, d), ``Z`` (n, d), ``Y`` (n,), ``v`` (d,)
and the trainable block(s) once, runs ``steps`` updates with all of them held on chip (the
padded tiles are (NP, TP, DP) with NP, TP, DP the next powers of two), and writes back the
blocks, the optimizer state and the statistics of the final iterate (loss, selected tokens,
``log max_t s_it``).  The arithmetic is the one of
:func:`attnsvm.train._direction.score_direction` (linear head, log-domain, underflow-free) and of
:class:`attnsvm.train.optim.Optimizer` (``gd``, ``ngd``, ``polyak``, ``md``, and the elementwise
``sign``, ``signum``, ``adam`` of :mod:`attnsvm.train._geometry` with their log-scaled moments),
term by term, so the iterates equal those of the torch trainer up to the order of
floating-point sums.  ``spectral`` and ``muon`` need an SVD per step: the kernel returns the
exact block gradients (:func:`fused_gradient`, one launch per step) and the engine takes the
polar factor with torch, as the torch trainer does.

Parametrizations: ``W`` (d, d) and ``K, Q`` (d, m) (with the optional ``eps`` of the official
``(K, Q)`` protocol).  Float64 (default) or float32.

This module imports :mod:`triton`; it is imported only when the fused path is requested.  On a
machine without a GPU the kernel runs in Triton's interpreter when ``TRITON_INTERPRET=1`` was set
before :mod:`triton` was first imported (slow; for tests), and :func:`compile_for_gpu` compiles
it for an NVIDIA architecture (checks lowering and register use).  Real settings reach the
kernel as a tensor of the data's dtype: Triton compiles Python float arguments and literals as
float32, which the interpreter does not show.

On a GPU machine: ``python -m pytest tests/test_fused_triton.py`` (the kernel against the torch
trainer, on CUDA) and ``python benchmarks/bench_train.py --sections cuda`` (speed beside the
card's roofline, warps per program, equality checks).
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import triton
import triton.language as tl

__all__ = ["fused_steps", "fused_gradient", "interpreter_active", "compile_for_gpu",
           "FUSED_OPTIMIZERS", "GRADIENT_OPTIMIZERS", "FUSED_LOSSES"]

#: every step in the kernel (sign, signum and adam are elementwise: the rules of
#: :mod:`attnsvm.train._geometry`, term by term)
FUSED_OPTIMIZERS = ("gd", "ngd", "polyak", "md", "sign", "signum", "adam")
#: the kernel computes the exact block gradients, the polar factor is taken outside (torch's
#: SVD, as the torch trainer): one launch per step
GRADIENT_OPTIMIZERS = ("spectral", "muon")
FUSED_LOSSES = ("logistic", "exponential", "correlation")
_OPT_CODE = {name: k for k, name in enumerate(FUSED_OPTIMIZERS + ("grad",))}
_LOSS_CODE = {name: k for k, name in enumerate(FUSED_LOSSES)}


def interpreter_active() -> bool:
    """True when :mod:`triton` runs kernels in its CPU interpreter (``TRITON_INTERPRET=1`` at
    import time)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_w_kernel, InterpretedFunction)


@triton.jit
def _log1p(x):
    """``log(1 + x)`` to a few ulp (Kahan: ``log(u) * x / (u - 1)``, ``u = 1 + x``)."""
    u = 1.0 + x
    um1 = u - 1.0
    return tl.where(um1 == 0.0, x, tl.log(u) * (x / tl.where(um1 == 0.0, 1.0, um1)))


@triton.jit
def _softplus(x):
    """torch's ``softplus`` (beta 1, threshold 20): ``x`` above 20, else ``log1p(exp(x))``."""
    return tl.where(x > 20.0, x, _log1p(tl.exp(tl.minimum(x, 20.0))))


@triton.jit
def _pow(x, y):
    """``x ** y`` for ``x >= 0`` (0 at 0)."""
    return tl.where(x > 0.0, tl.exp(y * tl.log(tl.where(x > 0.0, x, 1.0))), 0.0)


@triton.jit
def _sign(x):
    return tl.where(x > 0.0, 1.0, tl.where(x < 0.0, -1.0, 0.0)).to(x.dtype)


@triton.jit
def _direction(X, Z, Y, H, Wz, mNT, mN, tmask, log_n, N: tl.constexpr, LOSS: tl.constexpr):
    """Exact scaled score direction (see ``_direction.py``); returns
    ``C (NP, TP), logscale, loss, selected (NP,), log max prob (NP,)``."""
    NEG_INF = float("-inf")
    t2 = tl.arange(0, X.shape[1])[None, :]
    a = tl.sum(X * Wz[:, None, :], axis=2)  # (NP, TP): x_it^T W z_i
    a = tl.where(tmask, a, NEG_INF)
    amax, sel = tl.max(a, axis=1, return_indices=True, return_indices_tie_break_left=True)
    y = a - amax[:, None]
    is_sel = t2 == sel[:, None]
    ym = tl.where(is_sel, NEG_INF, y)
    m2y = tl.max(ym, axis=1)
    e = tl.exp(ym - m2y[:, None])  # 0 at the selected token and at padded tokens
    em2y = tl.exp(m2y)
    L1 = _log1p(em2y * tl.sum(e, axis=1))
    m2 = m2y - L1
    em2 = tl.exp(m2)
    h_a = tl.sum(tl.where(is_sel, H, 0.0), axis=1)
    dh = h_a[:, None] - H
    Dt = tl.sum(e * dh, axis=1)
    f = h_a - em2 * Dt
    u = Y * f
    if LOSS == 0:
        lw = -_softplus(u)
        lval = _softplus(-u)
    elif LOSS == 1:
        lw = -u
        lval = tl.exp(-u)
    else:
        lw = u * 0.0
        lval = -u
    loss = tl.sum(tl.where(mN, lval, 0.0), axis=0) / N
    M = tl.max(tl.where(mN, lw + m2, NEG_INF), axis=0)
    c = Y * tl.exp(lw + m2 - M)  # 0 on padded rows (Y = 0)
    ca = c * tl.exp(-L1) * Dt
    C = e * ((em2 * Dt)[:, None] - dh) * c[:, None]
    C = C + tl.where(is_sel, ca[:, None], 0.0)
    C = tl.where(mNT, C, 0.0)
    logscale = M - log_n
    return C, logscale, loss, sel, -L1


@triton.jit
def _moment(M, L, log_a, log_c, G, ls):
    """``m <- a m + c exp(ls) G`` on ``m = exp(L) M`` (:class:`._geometry.LogMoment`)."""
    la = L + log_a
    lc = ls + log_c
    Ln = tl.maximum(la, lc)
    w_old = tl.where(la > float("-inf"), tl.exp(la - Ln), 0.0)
    return w_old * M + tl.exp(lc - Ln) * G, Ln


@triton.jit
def _adam_ratio(Mm, Lm, Vm, Lv, c1, c2, eps):
    """Adam's ``m_hat / (sqrt(v_hat) + eps)`` from log-scaled moments (0 where not finite)."""
    half = 0.5 * Lv
    den = tl.sqrt(Vm / c2)
    den = den + tl.where(eps > 0.0, eps * tl.exp(-half), 0.0)
    coef = tl.exp(Lm - half) / c1
    ratio = coef * Mm / tl.where(den > 0.0, den, 1.0)
    return tl.where(tl.abs(ratio) < float("inf"), ratio, 0.0)


@triton.jit
def _block_grads(C, X, Z, P1, P2, ls, log_2eps, KQ: tl.constexpr, HAS_EPS: tl.constexpr):
    """``(G1, G2, logscale)`` with ``-grad_k = exp(logscale) G_k`` (W: G1 = G2 = G)."""
    Xc = tl.sum(C[:, :, None] * X, axis=1)  # (NP, DP)
    G = tl.sum(Xc[:, :, None] * Z[:, None, :], axis=0)  # (DP, DP): -grad_W / exp(ls)
    if KQ:
        G1 = tl.sum(G[:, :, None] * P2[None, :, :], axis=1)  # G Q
        G2 = tl.sum(G[:, :, None] * P1[:, None, :], axis=0)  # G^T K
        if HAS_EPS:
            mx = tl.maximum(ls, log_2eps)
            cg = tl.exp(ls - mx)
            cr = tl.exp(log_2eps - mx)
            G1 = cg * G1 - cr * P1
            G2 = cg * G2 - cr * P2
            ls = mx
    else:
        G1 = G
        G2 = G
    return G1, G2, ls


@triton.jit
def _block_norm(G, OPT: tl.constexpr, MD_Q):
    """Norm used by the optimizer: l_2 (l_q for mirror descent) over the whole block."""
    if OPT == 3:
        s = tl.sum(tl.sum(_pow(tl.abs(G), MD_Q), axis=1), axis=0)
        return _pow(s, 1.0 / MD_Q)
    else:
        return tl.sqrt(tl.sum(tl.sum(G * G, axis=1), axis=0))


@triton.jit(do_not_specialize=["steps"])  # one compiled kernel for every step count
def _w_kernel(X_ptr, Z_ptr, Y_ptr, V_ptr, P1_ptr, P2_ptr, S1_ptr, S2_ptr, V1_ptr, V2_ptr,
              LG_ptr, G1_ptr, G2_ptr, LS_ptr, loss_ptr, sel_ptr, mlp_ptr, PRM_ptr, steps,
              N: tl.constexpr, T: tl.constexpr, D: tl.constexpr, M: tl.constexpr,
              NP: tl.constexpr, TP: tl.constexpr, DP: tl.constexpr, MP: tl.constexpr,
              KQ: tl.constexpr, HAS_EPS: tl.constexpr, OPT: tl.constexpr, LOSS: tl.constexpr,
              HAS_S: tl.constexpr, HAS_V: tl.constexpr, GRAD: tl.constexpr):
    """``steps`` updates of instance ``program_id`` (``W``: block P1 (D, D); ``KQ``: P1 = K,
    P2 = Q (D, M)).  S1/S2: the mirror-descent states, or the first moments ``M`` of Signum
    and Adam (``HAS_S``); V1/V2: Adam's second moments (``HAS_V``); LG (B, 4): their
    log-scales ``L`` (m1, v1, m2, v2).  ``GRAD``: store the block gradients of the final
    iterate in G1/G2 and their log-scale in LS.  The real settings come as a tensor ``PRM``
    of the data's dtype (a Python float argument would be compiled as float32): ``lr, md_p,
    md_q, log(polyak_max_step), log(2 eps), log(n), b1, b2, log b1, log(1 - b1), log b2,
    log(1 - b2), adam_eps, b1^t0, b2^t0``."""
    b = tl.program_id(0).to(tl.int64)
    lr = tl.load(PRM_ptr + 0)
    md_p = tl.load(PRM_ptr + 1)
    md_q = tl.load(PRM_ptr + 2)
    log_max_step = tl.load(PRM_ptr + 3)
    log_2eps = tl.load(PRM_ptr + 4)
    log_n = tl.load(PRM_ptr + 5)
    b1 = tl.load(PRM_ptr + 6)
    b2 = tl.load(PRM_ptr + 7)
    log_b1 = tl.load(PRM_ptr + 8)
    log_1mb1 = tl.load(PRM_ptr + 9)
    log_b2 = tl.load(PRM_ptr + 10)
    log_1mb2 = tl.load(PRM_ptr + 11)
    adam_eps = tl.load(PRM_ptr + 12)
    pw1 = tl.load(PRM_ptr + 13)  # b1^t, b2^t (Adam's bias corrections)
    pw2 = tl.load(PRM_ptr + 14)
    i1 = tl.arange(0, NP)
    i2 = i1[:, None]
    i3 = i1[:, None, None]
    t2 = tl.arange(0, TP)[None, :]
    t3 = tl.arange(0, TP)[None, :, None]
    e2 = tl.arange(0, DP)[None, :]
    e3 = tl.arange(0, DP)[None, None, :]
    X = tl.load(X_ptr + b * (N * T * D) + (i3 * T + t3) * D + e3,
                mask=(i3 < N) & (t3 < T) & (e3 < D), other=0.0)
    Z = tl.load(Z_ptr + b * (N * D) + i2 * D + e2, mask=(i2 < N) & (e2 < D), other=0.0)
    mN = i1 < N
    tmask = t2 < T
    mNT = (i2 < N) & tmask
    Y = tl.load(Y_ptr + b * N + i1, mask=mN, other=0.0)
    v = tl.load(V_ptr + b * D + tl.arange(0, DP), mask=tl.arange(0, DP) < D, other=0.0)
    H = tl.sum(X * v[None, None, :], axis=2)  # (NP, TP): h_it = v^T x_it, computed here so
    # that every instance's numbers depend on its own data only
    r2 = tl.arange(0, DP)[:, None]
    if KQ:
        c2 = tl.arange(0, MP)[None, :]
        poff = b * (D * M) + r2 * M + c2
        pmask = (r2 < D) & (c2 < M)
        P1 = tl.load(P1_ptr + poff, mask=pmask, other=0.0)
        P2 = tl.load(P2_ptr + poff, mask=pmask, other=0.0)
        if HAS_S:
            S1 = tl.load(S1_ptr + poff, mask=pmask, other=0.0)
            S2 = tl.load(S2_ptr + poff, mask=pmask, other=0.0)
        else:
            S1 = P1
            S2 = P2
        if HAS_V:
            V1 = tl.load(V1_ptr + poff, mask=pmask, other=0.0)
            V2 = tl.load(V2_ptr + poff, mask=pmask, other=0.0)
        else:
            V1 = P1
            V2 = P2
    else:
        c2 = tl.arange(0, DP)[None, :]
        poff = b * (D * D) + r2 * D + c2
        pmask = (r2 < D) & (c2 < D)
        P1 = tl.load(P1_ptr + poff, mask=pmask, other=0.0)
        P2 = P1
        if HAS_S:
            S1 = tl.load(S1_ptr + poff, mask=pmask, other=0.0)
        else:
            S1 = P1
        S2 = S1
        if HAS_V:
            V1 = tl.load(V1_ptr + poff, mask=pmask, other=0.0)
        else:
            V1 = P1
        V2 = V1
    if HAS_S:
        Lm1 = tl.load(LG_ptr + b * 4 + 0)
        Lv1 = tl.load(LG_ptr + b * 4 + 1)
        Lm2 = tl.load(LG_ptr + b * 4 + 2)
        Lv2 = tl.load(LG_ptr + b * 4 + 3)
    else:
        Lm1 = log_n * 0.0
        Lv1 = Lm1
        Lm2 = Lm1
        Lv2 = Lm1
    inv_pm1 = 1.0 / (md_p - 1.0)
    for _k in range(steps):
        if KQ:
            zq = tl.sum(Z[:, :, None] * P2[None, :, :], axis=1)  # (NP, MP): Q^T z_i
            Wz = tl.sum(zq[:, None, :] * P1[None, :, :], axis=2)  # (NP, DP): K Q^T z_i
        else:
            Wz = tl.sum(Z[:, None, :] * P1[None, :, :], axis=2)  # (NP, DP): W z_i
        C, ls, loss, sel, mlp = _direction(X, Z, Y, H, Wz, mNT, mN, tmask, log_n, N, LOSS)
        G1, G2, ls = _block_grads(C, X, Z, P1, P2, ls, log_2eps, KQ, HAS_EPS)
        G = G1
        pw1 = pw1 * b1
        pw2 = pw2 * b2
        if KQ:
            n1 = _block_norm(G1, OPT, md_q)
            n2 = _block_norm(G2, OPT, md_q)
            if OPT == 0:
                g = lr * tl.exp(ls)
                P1 = P1 + g * G1
                P2 = P2 + g * G2
            elif OPT == 1:
                P1 = P1 + G1 * (lr / tl.where(n1 > 0.0, n1, 1.0))
                P2 = P2 + G2 * (lr / tl.where(n2 > 0.0, n2, 1.0))
            elif OPT == 2:
                q1 = 2.0 * (ls + tl.log(n1))
                q2 = 2.0 * (ls + tl.log(n2))
                qm = tl.maximum(q1, q2)
                qm0 = tl.where(tl.abs(qm) == float("inf"), 0.0, qm)
                lg2 = tl.log(tl.exp(q1 - qm0) + tl.exp(q2 - qm0)) + qm0
                lL = tl.log(tl.maximum(loss, 0.0))
                step_len = tl.exp(tl.minimum(lL - 0.5 * lg2, log_max_step))
                coef = step_len * tl.exp(ls - 0.5 * lg2)
                coef = tl.where(tl.abs(coef) < float("inf"), coef, 0.0)
                P1 = P1 + coef * G1
                P2 = P2 + coef * G2
            elif OPT == 3:
                S1 = S1 + lr * G1 / tl.where(n1 > 0.0, n1, 1.0)
                S2 = S2 + lr * G2 / tl.where(n2 > 0.0, n2, 1.0)
                P1 = _sign(S1) * _pow(tl.abs(S1), inv_pm1)
                P2 = _sign(S2) * _pow(tl.abs(S2), inv_pm1)
            elif OPT == 4:
                P1 = P1 + lr * _sign(G1)
                P2 = P2 + lr * _sign(G2)
            elif OPT == 5:
                S1, Lm1 = _moment(S1, Lm1, log_b1, log_1mb1, G1, ls)
                S2, Lm2 = _moment(S2, Lm2, log_b1, log_1mb1, G2, ls)
                P1 = P1 + lr * _sign(S1)
                P2 = P2 + lr * _sign(S2)
            elif OPT == 6:
                S1, Lm1 = _moment(S1, Lm1, log_b1, log_1mb1, G1, ls)
                V1, Lv1 = _moment(V1, Lv1, log_b2, log_1mb2, G1 * G1, 2.0 * ls)
                S2, Lm2 = _moment(S2, Lm2, log_b1, log_1mb1, G2, ls)
                V2, Lv2 = _moment(V2, Lv2, log_b2, log_1mb2, G2 * G2, 2.0 * ls)
                P1 = P1 + lr * _adam_ratio(S1, Lm1, V1, Lv1, 1.0 - pw1, 1.0 - pw2, adam_eps)
                P2 = P2 + lr * _adam_ratio(S2, Lm2, V2, Lv2, 1.0 - pw1, 1.0 - pw2, adam_eps)
        else:
            n1 = _block_norm(G, OPT, md_q)
            if OPT == 0:
                P1 = P1 + (lr * tl.exp(ls)) * G
            elif OPT == 1:
                P1 = P1 + G * (lr / tl.where(n1 > 0.0, n1, 1.0))
            elif OPT == 2:
                lg2 = 2.0 * (ls + tl.log(n1))
                lL = tl.log(tl.maximum(loss, 0.0))
                step_len = tl.exp(tl.minimum(lL - 0.5 * lg2, log_max_step))
                coef = step_len * tl.exp(ls - 0.5 * lg2)
                coef = tl.where(tl.abs(coef) < float("inf"), coef, 0.0)
                P1 = P1 + coef * G
            elif OPT == 3:
                S1 = S1 + lr * G / tl.where(n1 > 0.0, n1, 1.0)
                P1 = _sign(S1) * _pow(tl.abs(S1), inv_pm1)
            elif OPT == 4:
                P1 = P1 + lr * _sign(G)
            elif OPT == 5:
                S1, Lm1 = _moment(S1, Lm1, log_b1, log_1mb1, G, ls)
                P1 = P1 + lr * _sign(S1)
            elif OPT == 6:
                S1, Lm1 = _moment(S1, Lm1, log_b1, log_1mb1, G, ls)
                V1, Lv1 = _moment(V1, Lv1, log_b2, log_1mb2, G * G, 2.0 * ls)
                P1 = P1 + lr * _adam_ratio(S1, Lm1, V1, Lv1, 1.0 - pw1, 1.0 - pw2, adam_eps)
    # statistics of the final iterate
    if KQ:
        zq = tl.sum(Z[:, :, None] * P2[None, :, :], axis=1)
        Wz = tl.sum(zq[:, None, :] * P1[None, :, :], axis=2)
    else:
        Wz = tl.sum(Z[:, None, :] * P1[None, :, :], axis=2)
    C, ls, loss, sel, mlp = _direction(X, Z, Y, H, Wz, mNT, mN, tmask, log_n, N, LOSS)
    tl.store(P1_ptr + poff, P1, mask=pmask)
    if KQ:
        tl.store(P2_ptr + poff, P2, mask=pmask)
    if HAS_S:
        tl.store(S1_ptr + poff, S1, mask=pmask)
        if KQ:
            tl.store(S2_ptr + poff, S2, mask=pmask)
        tl.store(LG_ptr + b * 4 + 0, Lm1)
        tl.store(LG_ptr + b * 4 + 1, Lv1)
        tl.store(LG_ptr + b * 4 + 2, Lm2)
        tl.store(LG_ptr + b * 4 + 3, Lv2)
    if HAS_V:
        tl.store(V1_ptr + poff, V1, mask=pmask)
        if KQ:
            tl.store(V2_ptr + poff, V2, mask=pmask)
    if GRAD:
        G1, G2, ls = _block_grads(C, X, Z, P1, P2, ls, log_2eps, KQ, HAS_EPS)
        tl.store(G1_ptr + poff, G1, mask=pmask)
        if KQ:
            tl.store(G2_ptr + poff, G2, mask=pmask)
        tl.store(LS_ptr + b, ls)
    tl.store(loss_ptr + b, loss)
    tl.store(sel_ptr + b * N + i1, sel.to(tl.int64), mask=mN)
    tl.store(mlp_ptr + b * N + i1, mlp, mask=mN)


def _p2(k: int) -> int:
    return 1 << max(0, int(k) - 1).bit_length()


def num_warps_default() -> int:
    """Warps per program (``ATTNSVM_TRITON_WARPS``; default 2).

    Measured on an H100 (n=6, T=8, d=10, float64, NGD on W, B=1e5, triton 3.6, launch sweep of
    ``benchmarks/bench_train.py --sections cuda``): 2 warps with registers capped at 128
    (:func:`maxnreg_default`) gave 1.89e8 instance-steps/s, against 1.48e8 for 2 warps uncapped
    (196 registers, no spills), 1.52e8 for 1 warp and 1.07e8 for 4 warps: the cap spills a few
    registers but fits more programs on each SM.  Other Triton versions allocate registers
    differently (3.9 uses 225 at 4 warps where 3.6 uses 156): rerun the sweep after an upgrade."""
    return int(os.environ.get("ATTNSVM_TRITON_WARPS", "2"))


def maxnreg_default() -> int:
    """Registers per thread the kernel is compiled for (``ATTNSVM_TRITON_MAXNREG``; default
    128; 0: no cap).  See :func:`num_warps_default` for the measurement."""
    return int(os.environ.get("ATTNSVM_TRITON_MAXNREG", "128"))


def fused_steps(X: torch.Tensor, Z: torch.Tensor, Y: torch.Tensor, v: torch.Tensor,
                blocks: list[torch.Tensor], states: list[torch.Tensor] | None, steps: int, *,
                optimizer: str, lr: float, loss: str = "logistic", md_p: float = 3.0,
                polyak_max_step: float = 1e3, kq_eps: float = 0.0,
                betas: tuple[float, float] = (0.9, 0.999), adam_eps: float = 1e-8,
                t0: int = 0, second: list[torch.Tensor] | None = None,
                logs: torch.Tensor | None = None, grads: list[torch.Tensor] | None = None,
                grad_logscale: torch.Tensor | None = None,
                num_warps: int | None = None, maxnreg: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``steps`` exact updates of every instance in place (one program per instance).

    Parameters
    ----------
    X : Tensor (B, n, T, d); Z : Tensor (B, n, d); Y : Tensor (B, n); v : Tensor (B, d)
        Contiguous, one dtype, one device.
    blocks : list of Tensor
        ``[W]`` (B, d, d) or ``[K, Q]`` (B, d, m), contiguous; updated in place.
    states : list of Tensor or None
        Like ``blocks``, updated in place: the mirror-descent variables ``psi`` (``md``), the
        first moments ``M`` (``signum``, ``adam``).
    steps : int
    optimizer : {"gd", "ngd", "polyak", "md", "sign", "signum", "adam", "grad"}
        ``"grad"``: no update (``steps`` must be 0); the block gradients of the iterate go to
        ``grads`` and ``grad_logscale``.
    lr, loss, md_p, polyak_max_step, kq_eps, betas, adam_eps : as in
        :func:`attnsvm.train.train`.
    t0 : int
        Steps taken before (Adam's bias correction ``1 - b^t``).
    second : list of Tensor, optional
        Adam's second moments ``V`` like ``blocks`` (updated in place).
    logs : Tensor (B, 4), optional
        Log-scales ``L`` of the moments (m1, v1, m2, v2; ``-inf`` at the start), updated in
        place (``signum``, ``adam``).
    grads : list of Tensor, optional; grad_logscale : Tensor (B,), optional
        Outputs of ``"grad"``: ``-grad_k = exp(grad_logscale) grads[k]``.
    num_warps, maxnreg : int, optional
        Warps per program and registers per thread (0: no cap); defaults
        :func:`num_warps_default` and :func:`maxnreg_default`.

    Returns
    -------
    loss : Tensor (B,)
        Loss of the final iterate.
    selected : Tensor (B, n) int64
    max_logprob : Tensor (B, n)
        ``log max_t s_it`` of the final iterate.
    """
    B, n, T, d = X.shape
    kq = len(blocks) == 2
    m = blocks[0].shape[2]
    opt = _OPT_CODE[optimizer]
    has_s = optimizer in ("md", "signum", "adam")
    has_v = optimizer == "adam"
    grad = optimizer == "grad"
    if (has_s and not states) or (has_v and not second) or (
            optimizer in ("signum", "adam") and logs is None) or (
            grad and (grads is None or grad_logscale is None or steps)):
        raise ValueError(f"fused_steps: missing state or outputs for {optimizer!r}")
    out_loss = torch.empty(B, dtype=X.dtype, device=X.device)
    out_sel = torch.empty(B, n, dtype=torch.int64, device=X.device)
    out_mlp = torch.empty(B, n, dtype=X.dtype, device=X.device)
    P1 = blocks[0]
    P2 = blocks[1] if kq else blocks[0]
    S1 = states[0] if states else P1
    S2 = states[1] if states and kq else S1
    V1 = second[0] if second else P1
    V2 = second[1] if second and kq else V1
    G1 = grads[0] if grads else P1
    G2 = grads[1] if grads and kq else G1
    # md keeps no log-scales: a scratch (B, 4) (the kernel reads and writes LG with HAS_S)
    LG = logs if logs is not None else (
        torch.zeros(B, 4, dtype=X.dtype, device=X.device) if has_s else out_loss)
    LS = grad_logscale if grad_logscale is not None else out_loss
    b1, b2 = (float(x) for x in betas)

    def lg(x: float) -> float:
        return math.log(x) if x > 0 else -math.inf

    prm = torch.tensor([lr, md_p, md_p / (md_p - 1.0), math.log(polyak_max_step),
                        math.log(2.0 * kq_eps) if kq_eps > 0 else 0.0, math.log(n),
                        b1, b2, lg(b1), lg(1.0 - b1), lg(b2), lg(1.0 - b2), adam_eps,
                        b1 ** t0, b2 ** t0], dtype=X.dtype, device=X.device)
    _w_kernel[(B,)](
        X, Z, Y, v, P1, P2, S1, S2, V1, V2, LG, G1, G2, LS, out_loss, out_sel, out_mlp, prm,
        int(steps), N=n, T=T, D=d, M=m, NP=_p2(n), TP=_p2(T), DP=_p2(d), MP=_p2(m), KQ=kq,
        HAS_EPS=bool(kq and kq_eps > 0), OPT=opt, LOSS=_LOSS_CODE[loss], HAS_S=has_s,
        HAS_V=has_v, GRAD=grad, num_warps=num_warps or num_warps_default(),
        enable_fp_fusion=True, **_reg_cap(maxnreg))
    return out_loss, out_sel, out_mlp


def fused_gradient(X: torch.Tensor, Z: torch.Tensor, Y: torch.Tensor, v: torch.Tensor,
                   blocks: list[torch.Tensor], *, loss: str = "logistic", kq_eps: float = 0.0,
                   **launch: Any
                   ) -> tuple[list[torch.Tensor], torch.Tensor, tuple[torch.Tensor, ...]]:
    """The exact block gradients of the current iterate from the kernel (no update).

    Returns
    -------
    grads : list of Tensor like ``blocks``
        ``-grad_k = exp(logscale) grads[k]`` per instance.
    logscale : Tensor (B,)
    stats : (loss (B,), selected (B, n), max_logprob (B, n)) of the iterate.
    """
    grads = [torch.empty_like(b) for b in blocks]
    ls = torch.empty(X.shape[0], dtype=X.dtype, device=X.device)
    stats = fused_steps(X, Z, Y, v, blocks, None, 0, optimizer="grad", lr=1.0, loss=loss,
                        kq_eps=kq_eps, grads=grads, grad_logscale=ls, **launch)
    return grads, ls, stats


def _reg_cap(maxnreg: int | None) -> dict[str, int]:
    """The launch option capping registers per thread (none for 0)."""
    cap = maxnreg_default() if maxnreg is None else int(maxnreg)
    return {"maxnreg": cap} if cap > 0 else {}


def compile_for_gpu(param: str = "W", optimizer: str = "ngd",
                    shape: tuple[int, int, int] = (6, 8, 10),
                    m: int | None = None, dtype: str = "fp64", arch: int = 90,
                    num_warps: int | None = None, maxnreg: int | None = None
                    ) -> dict[str, Any]:
    """Compile the kernel for an NVIDIA GPU of compute capability ``arch`` without one.

    Checks that the kernel lowers to machine code (which the interpreter does not) and reports
    its resource use.  Needs Triton without the interpreter.

    Returns
    -------
    dict
        ``ptx_lines``, ``fma_f64`` (double FMA instructions in the PTX), ``local_memory``
        (PTX local loads and stores: register spills), ``registers`` and ``stack`` when
        ``cuobjdump`` is available.
    """
    import re
    import subprocess
    import tempfile

    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    n, T, d = shape
    mm = d if m is None else m
    names = _w_kernel.arg_names
    sig: dict[str, str] = {k: f"*{dtype}" for k in names if k.endswith("_ptr")}
    sig["sel_ptr"] = "*i64"
    sig["steps"] = "i32"
    const = {"N": n, "T": T, "D": d, "M": mm, "NP": _p2(n), "TP": _p2(T), "DP": _p2(d),
             "MP": _p2(mm), "KQ": param == "KQ", "HAS_EPS": False,
             "OPT": _OPT_CODE[optimizer], "LOSS": 0,
             "HAS_S": optimizer in ("md", "signum", "adam"), "HAS_V": optimizer == "adam",
             "GRAD": optimizer == "grad"}
    sig.update({k: "constexpr" for k in const})
    src = ASTSource(fn=_w_kernel, signature=sig,
                    constexprs={(names.index(k),): v for k, v in const.items()})
    k = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                       options={"num_warps": num_warps or num_warps_default(),
                                "enable_fp_fusion": True, **_reg_cap(maxnreg)})
    ptx = k.asm["ptx"]
    out: dict[str, Any] = {"ptx_lines": ptx.count("\n"), "fma_f64": ptx.count("fma.rn.f64"),
                           "local_memory": ptx.count("ld.local") + ptx.count("st.local")}
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin",
                        "cuobjdump")
    if os.path.exists(tool) and "cubin" in k.asm:
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(k.asm["cubin"])
            f.flush()
            res = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True,
                                 text=True, check=False).stdout
        for key, pat in (("registers", r"REG:(\d+)"), ("stack", r"STACK:(\d+)")):
            mt = re.search(pat, res)
            if mt:
                out[key] = int(mt.group(1))
    return out


def describe() -> dict[str, Any]:
    """Triton version and mode (for benchmark reports)."""
    return {"triton": triton.__version__, "interpreter": interpreter_active()}
