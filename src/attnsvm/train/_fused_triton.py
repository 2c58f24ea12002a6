r"""Fused Triton trainer: every step of the exact update in one kernel launch.

One program owns one instance.  It loads ``X`` (n, T, d), ``Z`` (n, d), ``Y`` (n,), ``v`` (d,)
and the trainable block(s) once, runs ``steps`` updates with all of them held on chip (the
padded tiles are (NP, TP, DP) with NP, TP, DP the next powers of two), and writes back the
blocks, the optimizer state and the statistics of the final iterate (loss, selected tokens,
``log max_t s_it``).  The arithmetic is the one of
:func:`attnsvm.train._direction.score_direction` (linear head, log-domain, underflow-free) and of
:class:`attnsvm.train.optim.Optimizer` (``gd``, ``ngd``, ``polyak``, ``md``), term by term, so
the iterates equal those of the torch trainer up to the order of floating-point sums.

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

__all__ = ["fused_steps", "interpreter_active", "compile_for_gpu", "FUSED_OPTIMIZERS",
           "FUSED_LOSSES"]

FUSED_OPTIMIZERS = ("gd", "ngd", "polyak", "md")
FUSED_LOSSES = ("logistic", "exponential", "correlation")
_OPT_CODE = {name: k for k, name in enumerate(FUSED_OPTIMIZERS)}
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
def _block_norm(G, OPT: tl.constexpr, MD_Q):
    """Norm used by the optimizer: l_2 (l_q for mirror descent) over the whole block."""
    if OPT == 3:
        s = tl.sum(tl.sum(_pow(tl.abs(G), MD_Q), axis=1), axis=0)
        return _pow(s, 1.0 / MD_Q)
    else:
        return tl.sqrt(tl.sum(tl.sum(G * G, axis=1), axis=0))


@triton.jit(do_not_specialize=["steps"])  # one compiled kernel for every step count
def _w_kernel(X_ptr, Z_ptr, Y_ptr, V_ptr, P1_ptr, P2_ptr, S1_ptr, S2_ptr,
              loss_ptr, sel_ptr, mlp_ptr, PRM_ptr, steps,
              N: tl.constexpr, T: tl.constexpr, D: tl.constexpr, M: tl.constexpr,
              NP: tl.constexpr, TP: tl.constexpr, DP: tl.constexpr, MP: tl.constexpr,
              KQ: tl.constexpr, HAS_EPS: tl.constexpr, OPT: tl.constexpr, LOSS: tl.constexpr):
    """``steps`` updates of instance ``program_id`` (``W``: block P1 (D, D); ``KQ``: P1 = K,
    P2 = Q (D, M)); S1/S2 are the mirror-descent states.  The real settings come as a tensor
    ``PRM`` of the data's dtype (a Python float argument would be compiled as float32):
    ``lr, md_p, md_q, log(polyak_max_step), log(2 eps), log(n)``."""
    b = tl.program_id(0).to(tl.int64)
    lr = tl.load(PRM_ptr + 0)
    md_p = tl.load(PRM_ptr + 1)
    md_q = tl.load(PRM_ptr + 2)
    log_max_step = tl.load(PRM_ptr + 3)
    log_2eps = tl.load(PRM_ptr + 4)
    log_n = tl.load(PRM_ptr + 5)
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
        if OPT == 3:
            S1 = tl.load(S1_ptr + poff, mask=pmask, other=0.0)
            S2 = tl.load(S2_ptr + poff, mask=pmask, other=0.0)
        else:
            S1 = P1
            S2 = P2
    else:
        c2 = tl.arange(0, DP)[None, :]
        poff = b * (D * D) + r2 * D + c2
        pmask = (r2 < D) & (c2 < D)
        P1 = tl.load(P1_ptr + poff, mask=pmask, other=0.0)
        P2 = P1
        if OPT == 3:
            S1 = tl.load(S1_ptr + poff, mask=pmask, other=0.0)
        else:
            S1 = P1
        S2 = S1
    inv_pm1 = 1.0 / (md_p - 1.0)
    for _k in range(steps):
        if KQ:
            zq = tl.sum(Z[:, :, None] * P2[None, :, :], axis=1)  # (NP, MP): Q^T z_i
            Wz = tl.sum(zq[:, None, :] * P1[None, :, :], axis=2)  # (NP, DP): K Q^T z_i
        else:
            Wz = tl.sum(Z[:, None, :] * P1[None, :, :], axis=2)  # (NP, DP): W z_i
        C, ls, loss, sel, mlp = _direction(X, Z, Y, H, Wz, mNT, mN, tmask, log_n, N, LOSS)
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
            else:
                S1 = S1 + lr * G1 / tl.where(n1 > 0.0, n1, 1.0)
                S2 = S2 + lr * G2 / tl.where(n2 > 0.0, n2, 1.0)
                P1 = _sign(S1) * _pow(tl.abs(S1), inv_pm1)
                P2 = _sign(S2) * _pow(tl.abs(S2), inv_pm1)
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
            else:
                S1 = S1 + lr * G / tl.where(n1 > 0.0, n1, 1.0)
                P1 = _sign(S1) * _pow(tl.abs(S1), inv_pm1)
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
    if OPT == 3:
        tl.store(S1_ptr + poff, S1, mask=pmask)
        if KQ:
            tl.store(S2_ptr + poff, S2, mask=pmask)
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
        Mirror-descent variables ``psi`` like ``blocks`` (``md`` only), updated in place.
    steps : int
    optimizer : {"gd", "ngd", "polyak", "md"}
    lr, loss, md_p, polyak_max_step, kq_eps : as in :func:`attnsvm.train.train`.
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
    out_loss = torch.empty(B, dtype=X.dtype, device=X.device)
    out_sel = torch.empty(B, n, dtype=torch.int64, device=X.device)
    out_mlp = torch.empty(B, n, dtype=X.dtype, device=X.device)
    P1 = blocks[0]
    P2 = blocks[1] if kq else blocks[0]
    S1 = states[0] if states else P1
    S2 = states[1] if states and kq else S1
    prm = torch.tensor([lr, md_p, md_p / (md_p - 1.0), math.log(polyak_max_step),
                        math.log(2.0 * kq_eps) if kq_eps > 0 else 0.0, math.log(n)],
                       dtype=X.dtype, device=X.device)
    _w_kernel[(B,)](
        X, Z, Y, v, P1, P2, S1, S2, out_loss, out_sel, out_mlp, prm, int(steps),
        N=n, T=T, D=d, M=m, NP=_p2(n), TP=_p2(T), DP=_p2(d), MP=_p2(m), KQ=kq,
        HAS_EPS=bool(kq and kq_eps > 0), OPT=opt, LOSS=_LOSS_CODE[loss],
        num_warps=num_warps or num_warps_default(), enable_fp_fusion=True,
        **_reg_cap(maxnreg))
    return out_loss, out_sel, out_mlp


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
             "OPT": _OPT_CODE[optimizer], "LOSS": 0}
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
