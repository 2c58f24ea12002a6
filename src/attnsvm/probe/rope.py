"""The exact target of a rotary head: its lifted Att-SVM (THEORY.md, "Rotary position
embeddings"), through :mod:`attnsvm.svm.rotary` (the only module of the probe that calls it).

A rotary head's pre-cap score of key ``x_r`` (position r) for query ``z_p`` (position p) is

    s = sum_f Re(exp(1j omega_f (p - r)) x_r^T M_f z_p) + x_r^T W_0 z_p,
    M_f = g * scale * conj(v_f) u_f^T,   W_0 = scale * W_K[pass]^T W_Q[pass],

with ``u_f = W_Q[f] + 1j W_Q[f + F]``, ``v_f`` the same of ``W_K`` (the head's maps on its
features, :mod:`attnsvm.probe.form`), ``g`` the model's ``attention_scaling`` squared.  The
head's own selections give the rows ``s(alpha) - s(t) >= 1``; :func:`rope_block` solves the
lifted Frobenius Att-SVM (and, unless ``--no-nuclear``, the group-nuclear one) on them in
reduced coordinates: keys and queries are expressed on orthonormal bases ``B``, ``C`` of the
span of the head's features (padded to one width ``r``), which changes neither the optimum
nor any inner product with a parameter living in that span.  Record fields:

- ``corr_rope``: ``<Theta_h, Theta_svm> / (|Theta_h| |Theta_svm|)`` (real inner product over
  all blocks, the head's full norm); ``corr_rope_control`` (mean over the layer's other
  heads) and ``corr_rope_control_max``; ``corr_rope_nuc`` and ``corr_rope_nuc_control``;
- ``freq_share_head`` / ``freq_share_svm`` (/ ``freq_share_svm_nuc``): per frequency f,
  ``||M_f||_F^2 / (sum_f ||M_f||_F^2 + ||W_0||_F^2)``; ``w0_share_*`` the rest;
- ``rope_form_error``: the largest gap between the lifted head's row values and its own score
  differences, relative to their scale (an exactness check of the lifted form);
- ``rope_seconds`` (all of the lifted target's work: features, tables, solve, certificate)
  and ``rope_solve_seconds`` (the solve and its certificate);
- ``rope_status``, ``rope_objective``, ``rope_gap`` (certified), ``rope_margin_ratio``, ...
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from ..exceptions import ConvergenceWarning
from ..svm.rotary import RotaryTables, lifted_norm, rotary_table_rows, solve_lifted
from .capture import Capture, HeadForm
from .form import head_features, head_scores, key_map, query_map
from .instance import HeadInstance

__all__ = ["lifted_head", "LiftedFactors", "rope_block", "rope_skipped", "ROPE_FIELDS",
           "lifted_inner"]

ROPE_FIELDS = (
    "corr_rope", "corr_rope_control", "corr_rope_control_max", "corr_rope_nuc",
    "corr_rope_nuc_control", "corr_rope_nuc_control_max", "freq_share_head", "freq_share_svm",
    "freq_share_svm_nuc",
    "w0_share_head", "w0_share_svm", "rope_status", "rope_objective", "rope_gap",
    "rope_margin_ratio", "rope_violated_share", "rope_support", "rope_seconds",
    "rope_solve_seconds", "rope_rank",
    "rope_form_error", "rope_nuc_status", "rope_nuc_objective", "rope_nuc_gap",
    "rope_nuc_seconds", "rope_F", "rows_rope_nuc",
)


def lifted_head(form: HeadForm) -> tuple[np.ndarray, np.ndarray | None]:
    """The lifted parameter of a rotary head on its features.

    Returns
    -------
    M : numpy.ndarray of complex128, shape (F, d_k, d_q)
    W0 : numpy.ndarray, shape (d_k, d_q), or None when every dimension rotates
    """
    WQ, WK = query_map(form), key_map(form)
    R, F = int(form.rot_dims), int(form.rot_dims) // 2
    u = WQ[:F] + 1j * WQ[F:R]
    v = WK[:F] + 1j * WK[F:R]
    M = (form.rope_gain * form.scale) * np.einsum("fi,fj->fij", np.conj(v), u)
    W0 = form.scale * (WK[R:].T @ WQ[R:]) if R < WQ.shape[0] else None
    return M, W0


class LiftedFactors:
    """A rotary head's lifted parameter in factored form (never formed at full size).

    ``M_f = c * conj(v_f) u_f^T`` with ``c = gain * scale`` and ``W_0 = scale * K0^T Q0``.

    Attributes
    ----------
    u : numpy.ndarray of complex128, shape (F, d_q)
    v : numpy.ndarray of complex128, shape (F, d_k)
    c : float
    Q0 : numpy.ndarray, shape (d_head - rot_dims, d_q)
    K0 : numpy.ndarray, shape (d_head - rot_dims, d_k)
    scale : float
    """

    def __init__(self, form: HeadForm) -> None:
        WQ, WK = query_map(form), key_map(form)
        R, F = int(form.rot_dims), int(form.rot_dims) // 2
        self.u = WQ[:F] + 1j * WQ[F:R]
        self.v = WK[:F] + 1j * WK[F:R]
        self.c = float(form.rope_gain * form.scale)
        self.Q0, self.K0 = WQ[R:], WK[R:]
        self.scale = float(form.scale)

    @property
    def has_w0(self) -> bool:
        """Whether some dimensions pass through unrotated."""
        return self.Q0.shape[0] > 0

    def block_norms2(self) -> tuple[np.ndarray, float]:
        """``||M_f||_F^2`` (F,) and ``||W_0||_F^2``."""
        per = self.c**2 * np.sum(np.abs(self.v) ** 2, 1) * np.sum(np.abs(self.u) ** 2, 1)
        w0 = 0.0
        if self.has_w0:
            w0 = self.scale**2 * float(np.sum((self.K0 @ self.K0.T) * (self.Q0 @ self.Q0.T)))
        return per, w0

    def norm(self) -> float:
        """``sqrt(sum_f ||M_f||_F^2 + ||W_0||_F^2)``."""
        per, w0 = self.block_norms2()
        return float(np.sqrt(per.sum() + w0))

    def _factors(self, B: np.ndarray, C: np.ndarray, r: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``conj(v) B``, ``u C`` (F, r) and ``K0 B``, ``Q0 C`` (d_head - rot_dims, r),
        zero-padded to width r."""
        vb = np.zeros((self.u.shape[0], r), dtype=np.complex128)
        uc = np.zeros((self.u.shape[0], r), dtype=np.complex128)
        # real products (a complex @ real product would first copy B and C to complex)
        vb[:, : B.shape[1]] = self.v.real @ B - 1j * (self.v.imag @ B)
        uc[:, : C.shape[1]] = self.u.real @ C + 1j * (self.u.imag @ C)
        kb = np.zeros((self.K0.shape[0], r))
        qc = np.zeros((self.Q0.shape[0], r))
        kb[:, : B.shape[1]], qc[:, : C.shape[1]] = self.K0 @ B, self.Q0 @ C
        return vb, uc, kb, qc

    def inner(self, B: np.ndarray, C: np.ndarray, M: np.ndarray, W0: np.ndarray | None
              ) -> float:
        """``sum_f Re tr(Mh_f^H M_f) + <W0h, W0>`` of the reduced head ``(Mh, W0h)`` (as
        :meth:`reduced` gives it) with ``(M, W0)`` (F, r, r), without forming ``Mh``."""
        vb, uc, kb, qc = self._factors(B, C, M.shape[1])
        ip = self.c * float(np.einsum("fi,fij,fj->", np.conj(vb), M, np.conj(uc),
                                      optimize=True).real)
        if W0 is not None and self.has_w0:
            ip += self.scale * float(np.sum((kb @ W0) * qc))
        return ip

    @staticmethod
    def inners(facs: list[LiftedFactors], B: np.ndarray, C: np.ndarray, M: np.ndarray,
               W0: np.ndarray | None) -> np.ndarray:
        """:meth:`inner` of every head in ``facs`` with ``(M, W0)`` at once, shape (H,): one
        batched product ``M_f [conj(uc_1f) ... conj(uc_Hf)]`` instead of H passes over M."""
        r = M.shape[1]
        parts = [f._factors(B, C, r) for f in facs]
        P = np.stack([np.conj(p[0]) for p in parts], axis=2)        # (F, r, H)
        Q = np.stack([np.conj(p[1]) for p in parts], axis=2)        # (F, r, H)
        ip = np.einsum("fih,fih->h", P, np.matmul(M, Q)).real * np.array([f.c for f in facs])
        if W0 is not None:
            for h, (f, p) in enumerate(zip(facs, parts, strict=True)):
                if f.has_w0:
                    ip[h] += f.scale * float(np.sum((p[2] @ W0) * p[3]))
        return np.asarray(ip)

    def row_values(self, tables: Any, B: np.ndarray, C: np.ndarray, r: int) -> np.ndarray:
        """The reduced head's lifted row values on ``tables`` (a
        :class:`~attnsvm.svm.rotary.RotaryTables` in the reduced coordinates), (m,)."""
        vb, uc, kb, qc = self._factors(B, C, r)
        kv, qu = tables.Xk @ vb.T, tables.Zq @ uc.T          # (nk, F), (nq, F)
        cs, co = tables.phases()
        qq = qu[tables.q]
        v = self.c * np.sum((cs * kv[tables.ks] - co * kv[tables.ko]) * qq, axis=1).real
        if self.has_w0:
            k0, q0 = tables.Xk @ kb.T, tables.Zq @ qc.T
            v = v + self.scale * np.sum((k0[tables.ks] - k0[tables.ko]) * q0[tables.q], axis=1)
        return np.asarray(v)

    def reduced(self, B: np.ndarray, C: np.ndarray, r: int
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """``B^T M_f C`` (F, r, r) and ``B^T W_0 C`` (r, r), zero-padded to width r."""
        vb, uc = np.conj(self.v) @ B, self.u @ C  # (F, r_k), (F, r_q)
        M = np.zeros((self.u.shape[0], r, r), dtype=np.complex128)
        M[:, : B.shape[1], : C.shape[1]] = self.c * vb[:, :, None] * uc[:, None, :]
        W0 = None
        if self.has_w0:
            W0 = np.zeros((r, r))
            W0[: B.shape[1], : C.shape[1]] = self.scale * (self.K0 @ B).T @ (self.Q0 @ C)
        return M, W0


def lifted_inner(M1: np.ndarray, W01: np.ndarray | None, M2: np.ndarray,
                 W02: np.ndarray | None) -> float:
    """``sum_f Re tr(M1_f^H M2_f) + <W01, W02>``."""
    ip = float(np.sum(np.conj(M1) * M2).real)
    if W01 is not None and W02 is not None:
        ip += float(np.sum(W01 * W02))
    return ip


def _shares(M: np.ndarray | LiftedFactors, W0: np.ndarray | None = None
            ) -> tuple[list[float], float]:
    if isinstance(M, LiftedFactors):
        per, w0 = M.block_norms2()
    else:
        per = np.sum(np.abs(M) ** 2, axis=(1, 2))
        w0 = float(np.sum(W0**2)) if W0 is not None else 0.0
    tot = float(per.sum()) + w0
    if tot <= 0:
        return [0.0] * len(per), 0.0
    return [float(x) for x in per / tot], w0 / tot


def _basis(V: np.ndarray) -> np.ndarray:
    """Orthonormal basis (columns) of the row span of V, shape (V.shape[1], r).

    Rank-revealing QR of ``V^T`` (column pivoting; ``|R_ii|`` non-increasing): the first r
    columns of Q with ``|R_ii| > 1e-12 |R_00|``; every row of V is then in their span to
    about ``1e-12 ||V||`` (the rank and tolerance of a truncated SVD, at a third of its cost).
    """
    from scipy.linalg import qr

    if V.size == 0:
        return np.zeros((V.shape[1], 0))
    Q, R, _ = qr(V.T, mode="economic", pivoting=True, check_finite=False)
    d = np.abs(np.diag(R))
    r = int(np.sum(d > d[0] * 1e-12)) if d.size and d[0] > 0 else 0
    return np.asarray(Q[:, :r])


def rope_skipped() -> dict[str, Any]:
    """The record fields of a head without rotary embeddings (all None)."""
    return dict.fromkeys(ROPE_FIELDS)


def rope_block(
    inst: HeadInstance,
    captures: list[Capture],
    forms: list[HeadForm],
    head: int,
    nuclear_rows: int,
    arrays: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Solve the lifted Att-SVM(s) of one rotary head and compare them with the head.

    Parameters
    ----------
    inst : HeadInstance
        The head's selections (``index``, ``alpha``, ``qpos``, ``seq_of``).
    captures : list of Capture
        The sequences the instance was built from.
    forms : list of HeadForm
        The layer's heads (``forms[head]`` is this one; the others are controls).
    head : int
    nuclear_rows : int
        Also solve the group-nuclear lifted Att-SVM on the first ``nuclear_rows`` query rows
        (0: not at all; a block SDP whose cost grows fast with the reduced width).
    arrays : dict
        Receives ``rope_basis_key`` (d_k, r_k), ``rope_basis_query`` (d_q, r_q), ``M_rope``
        (F, r, r) complex, ``W0_rope``, ``dual_rope`` (and the nuclear ones).
    """
    out = rope_skipped()
    form = forms[head]
    F = form.rot_dims // 2
    out["rope_F"] = F
    if inst.m == 0 or inst.qpos is None or inst.seq_of is None:
        out["rope_status"] = "empty"
        return out
    t0 = time.perf_counter()
    feats = [head_features(form, c) for c in captures]
    fac = LiftedFactors(form)
    norm_h = fac.norm()
    others = [(fo, fo.norm()) for fo in (LiftedFactors(f) for i, f in enumerate(forms)
                                         if i != head)]
    S = [head_scores(form, c) for c in captures]
    seq_of, qpos = inst.seq_of, inst.qpos

    def problem(keep: np.ndarray) -> tuple[Any, tuple[np.ndarray, np.ndarray], np.ndarray,
                                           np.ndarray]:
        """The lifted rows of the constraints ``keep`` in reduced coordinates (as tables), the
        bases, the reduced head's row values and the head's own score differences."""
        idx = inst.index[keep]
        rows, t = idx[:, 0], idx[:, 1]
        seq, p, a = seq_of[rows], qpos[rows], inst.alpha[rows]
        used_k = np.unique(np.concatenate([np.stack([seq, a], 1), np.stack([seq, t], 1)]),
                           axis=0)
        used_q = np.unique(np.stack([seq, p], 1), axis=0)
        B = _basis(np.stack([feats[i][0][j] for i, j in used_k]))
        C = _basis(np.stack([feats[i][1][j] for i, j in used_q]))
        r = max(B.shape[1], C.shape[1])
        Kr = np.concatenate([np.pad(k @ B, ((0, 0), (0, r - B.shape[1]))) for k, _ in feats])
        Qr = np.concatenate([np.pad(q @ C, ((0, 0), (0, r - C.shape[1]))) for _, q in feats])
        koff = np.cumsum([0] + [k.shape[0] for k, _ in feats])[:-1]
        qoff = np.cumsum([0] + [q.shape[0] for _, q in feats])[:-1]
        tab = RotaryTables(Xk=Kr, ks=koff[seq] + a, ko=koff[seq] + t, Zq=Qr, q=qoff[seq] + p,
                           ds=(p - a).astype(float), do=(p - t).astype(float),
                           freqs=np.asarray(form.omega, dtype=np.float64))
        free = (Kr[tab.ks] - Kr[tab.ko], Qr[tab.q]) if fac.has_w0 else None
        prob = rotary_table_rows(tab, free=free, index=idx)
        vals = fac.row_values(tab, B, C, r)
        want = np.array([S[i][q, j] - S[i][q, k] for i, q, j, k in zip(seq, p, a, t,
                                                                       strict=True)])
        return prob, (B, C), vals, want

    prob, (B, C), vals, want = problem(np.ones(inst.m, dtype=bool))
    scale = max(1.0, float(np.abs(want).max()))
    out["rope_form_error"] = float(np.abs(vals - want).max() / scale)
    out["rope_violated_share"] = float(np.mean(vals <= 0))
    out["rope_rank"] = max(B.shape[1], C.shape[1])
    out["freq_share_head"], out["w0_share_head"] = _shares(fac)

    def corr_with(M: np.ndarray, W0: np.ndarray | None, B: np.ndarray, C: np.ndarray
                  ) -> tuple[float, list[float]]:
        n = lifted_norm(M, W0)
        oth = [(fo, no) for fo, no in others if no > 0]
        ips = LiftedFactors.inners([fac] + [fo for fo, _ in oth], B, C, M, W0)
        c_head = float(ips[0]) / (norm_h * n)
        c_oth = [float(ip) / (no * n) for ip, (_, no) in zip(ips[1:], oth, strict=True)]
        return c_head, c_oth

    t_solve = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sol = solve_lifted(prob, "fro")
    out["rope_seconds"] = time.perf_counter() - t0
    out["rope_solve_seconds"] = time.perf_counter() - t_solve
    out["rope_status"] = sol.status
    arrays.update(rope_basis_key=B, rope_basis_query=C, dual_rope=np.asarray(sol.dual))
    if sol.M is None or sol.status == "infeasible":
        if sol.certificate is not None:
            arrays["certificate_rope"] = np.asarray(sol.certificate)
        return out
    c_head, c_oth = corr_with(sol.M, sol.W0, B, C)
    out.update(
        corr_rope=c_head,
        corr_rope_control=float(np.mean(c_oth)) if c_oth else None,
        corr_rope_control_max=float(np.max(c_oth)) if c_oth else None,
        rope_objective=float(sol.objective),
        rope_gap=float(sol.info.get("certified_gap", np.nan)),
        rope_margin_ratio=float(vals.min() / norm_h * sol.objective) if norm_h > 0 else None,
        rope_support=int(np.sum(np.asarray(sol.dual) != 0)),
    )
    out["freq_share_svm"], out["w0_share_svm"] = _shares(sol.M, sol.W0)
    arrays["M_rope"] = np.asarray(sol.M)
    if sol.W0 is not None:
        arrays["W0_rope"] = np.asarray(sol.W0)
    if nuclear_rows:
        keep = inst.index[:, 0] < int(nuclear_rows)
        out["rows_rope_nuc"] = int(min(int(nuclear_rows), inst.n))
        if not keep.any():
            out["rope_nuc_status"] = "empty"
            return out
        t1 = time.perf_counter()
        prob_n, (B_n, C_n), _, _ = problem(keep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            nuc = solve_lifted(prob_n, "nuc")
        out["rope_nuc_seconds"] = time.perf_counter() - t1
        out["rope_nuc_status"] = nuc.status
        if nuc.M is not None and nuc.status != "infeasible":
            cn, cno = corr_with(nuc.M, nuc.W0, B_n, C_n)
            out.update(corr_rope_nuc=cn,
                       corr_rope_nuc_control=float(np.mean(cno)) if cno else None,
                       corr_rope_nuc_control_max=float(np.max(cno)) if cno else None,
                       rope_nuc_objective=float(nuc.objective),
                       rope_nuc_gap=float(nuc.info.get("certified_gap", np.nan)))
            out["freq_share_svm_nuc"] = _shares(nuc.M, nuc.W0)[0]
            arrays["M_rope_nuc"] = np.asarray(nuc.M)
            arrays["dual_rope_nuc"] = np.asarray(nuc.dual)
    return out
