"""Lifted rotary rows held as tables of keys, queries and relative positions.

A lifted row ``k`` is ``score(x_s) - score(x_o)`` for the query ``z`` with relative positions
``ds``, ``do``; its block-``f`` key factor is ``a_kf = conj(c_s) x_s - conj(c_o) x_o``,
``c = exp(1j omega_f dpos)``.  Held as tables (a key table ``Xk``, a query table ``Zq`` and
indices into them), the rows never form the (m, F, d) complex factors, and the Gram matrix of
the stacked real blocks is, with ``phi(D) = sum_f cos(omega_f D)``,

    K_kl = [phi(ds_k - ds_l) (xs_k . xs_l) - phi(ds_k - do_l) (xs_k . xo_l)
            - phi(do_k - ds_l) (xo_k . xs_l) + phi(do_k - do_l) (xo_k . xo_l)] (z_k . z_l)
           (+ (a0_k . a0_l)(z0_k . z0_l) for the position-free block),

since ``sum_f Re(a_kf^H a_lf)`` collects ``Re(c_sk conj(c_sl)) = cos(omega_f (ds_k - ds_l))``.
Each entry costs a few table look-ups instead of ``2 F d`` products, whatever ``F`` and ``d``.
:class:`PhaseKernel` is that Gram matrix as a :class:`~attnsvm.constraints.ConstraintKernel`
whose primal points are coefficient vectors ``c`` (``Theta = sum_k c_k g_k``); the explicit
``M`` is formed once, at the end, by :meth:`RotaryTables.combine`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["RotaryTables", "PhaseKernel"]

#: largest relative-position range tabulated for ``phi`` (else computed entry by entry)
_MAX_TABLE = 1 << 20
#: largest number of cached Gram entries of :class:`PhaseKernel` (8 bytes each)
_CACHE_ENTRIES = 40_000_000


@dataclass(frozen=True, eq=False)
class RotaryTables:
    """The rotary part of lifted rows as tables.

    Attributes
    ----------
    Xk : ndarray, shape (nk, d)
        Key table.
    ks, ko : ndarray of int, shape (m,)
        Rows of ``Xk`` of each row's selected and other key.
    Zq : ndarray, shape (nq, d2)
        Query table.
    q : ndarray of int, shape (m,)
        Row of ``Zq`` of each row's query.
    ds, do : ndarray, shape (m,)
        Relative positions ``qpos - pos`` of the two keys.
    freqs : ndarray, shape (F,)
    """

    Xk: np.ndarray
    ks: np.ndarray
    ko: np.ndarray
    Zq: np.ndarray
    q: np.ndarray
    ds: np.ndarray
    do: np.ndarray
    freqs: np.ndarray

    @property
    def m(self) -> int:
        """Number of rows."""
        return int(self.ks.shape[0])

    def subset(self, sel: np.ndarray) -> RotaryTables:
        """The rows ``sel`` (index array); the tables are shared."""
        return RotaryTables(self.Xk, self.ks[sel], self.ko[sel], self.Zq, self.q[sel],
                            self.ds[sel], self.do[sel], self.freqs)

    def phases(self) -> tuple[np.ndarray, np.ndarray]:
        """``exp(1j omega_f ds)`` and ``exp(1j omega_f do)``, shapes (m, F)."""
        return (np.exp(1j * self.ds[:, None] * self.freqs),
                np.exp(1j * self.do[:, None] * self.freqs))

    def factors(self) -> np.ndarray:
        """The key factors ``A[k, f] = conj(c_s) x_s - conj(c_o) x_o``, (m, F, d) complex."""
        cs, co = self.phases()
        return (np.conj(cs)[:, :, None] * self.Xk[self.ks][:, None, :]
                - np.conj(co)[:, :, None] * self.Xk[self.ko][:, None, :])

    def values(self, M: np.ndarray) -> np.ndarray:
        """Row values ``sum_f Re(cs_kf xs^T M_f z - co_kf xo^T M_f z)``, shape (m,).

        ``Y_f = M_f Zq^T`` over the queries (one matrix product), then ``x_t . Y_f[:, j]``
        only at the (key, query) cells the rows use; real arithmetic.
        """
        M = np.asarray(M, dtype=np.complex128)
        F, d, d2 = M.shape
        nq = self.Zq.shape[0]
        cells, inv = np.unique(np.concatenate([self.ks * nq + self.q, self.ko * nq + self.q]),
                               return_inverse=True)
        kt, qj = cells // nq, cells % nq
        out = np.empty((2, F, cells.size))
        step = max(1, 2_000_000 // max(1, F * d))
        for p, part in enumerate((M.real, M.imag)):
            # Y[j] = (M_f z_j)_f, (nq, F, d): one product, laid out for gathers by query
            Y = (self.Zq @ np.ascontiguousarray(part).reshape(F * d, d2).T).reshape(nq, F, d)
            for s in range(0, cells.size, step):
                c = slice(s, min(cells.size, s + step))
                out[p][:, c] = np.einsum("cd,cfd->fc", self.Xk[kt[c]], Y[qj[c]])
        inv = inv.ravel()
        s_, o_ = inv[: self.m], inv[self.m:]
        cs, co = self.phases()
        vs = cs.real.T * out[0][:, s_] - cs.imag.T * out[1][:, s_]
        vo = co.real.T * out[0][:, o_] - co.imag.T * out[1][:, o_]
        return np.asarray(np.sum(vs - vo, axis=0))

    def combine(self, w: np.ndarray) -> np.ndarray:
        """``G_f = sum_k w_k a_kf z_k^T = Xu^T C_f Qu``, (F, d, d2) complex.

        ``Xu``, ``Qu`` are the keys and queries of the rows with ``w_k != 0`` (only those
        enter); ``C_f[t, j]`` collects ``w_k conj(c_s)`` at ``(ks_k, q_k)`` and
        ``-w_k conj(c_o)`` at ``(ko_k, q_k)``.  ``C_f`` is sparse (two nonzeros per row), so
        it is applied to the smaller of ``Xu`` and ``Qu`` first and each block is one real
        product of width ``n = min(#keys, #queries)``: ``2 F d d2 n`` multiplications
        instead of ``2 F d d2 #keys``.  The blocks are written into one complex array.
        """
        from scipy.sparse import csr_matrix

        w = np.asarray(w, dtype=np.float64)
        nz = np.flatnonzero(w)
        F, d, d2 = self.freqs.size, self.Xk.shape[1], self.Zq.shape[1]
        out = np.zeros((F, d, d2), dtype=np.complex128)
        if nz.size == 0 or F == 0:
            return out
        sub = self.subset(nz)
        cs, co = sub.phases()
        wk = w[nz]
        kused, keys = np.unique(np.concatenate([sub.ks, sub.ko]), return_inverse=True)
        qused, qrow = np.unique(sub.q, return_inverse=True)
        keys, qrow = keys.ravel(), np.tile(qrow.ravel(), 2)
        Xu, Qu = self.Xk[kused], self.Zq[qused]
        nk, nq = kused.size, qused.size
        # conj(c) = cos - i sin: the weights of the cells (rows s then o), per frequency
        wre = np.concatenate([wk[:, None] * cs.real, -wk[:, None] * co.real]).T.ravel()
        wim = np.concatenate([-wk[:, None] * cs.imag, wk[:, None] * co.imag]).T.ravel()
        keys_first = nk <= nq
        inner, outer = (keys, qrow) if keys_first else (qrow, keys)
        n_in = nk if keys_first else nq
        rows = (np.arange(F)[:, None] * n_in + inner[None, :]).ravel()
        cols = np.tile(outer, F)
        shape = (F * n_in, nq if keys_first else nk)
        side = Qu if keys_first else Xu             # applied to C_f (or C_f^T) first
        T = [np.asarray(csr_matrix((wv, (rows, cols)), shape=shape) @ side).reshape(
            F, n_in, -1) for wv in (wre, wim)]
        for f in range(F):
            if keys_first:      # G_f = Xu^T (C_f Qu): one product of [Re | Im]
                R = Xu.T @ np.concatenate([T[0][f], T[1][f]], axis=1)     # (d, 2 d2)
                out[f].real, out[f].imag = R[:, :d2], R[:, d2:]
            else:               # G_f = (C_f^T Xu)^T Qu: one product of [Re; Im]
                R = np.concatenate([T[0][f], T[1][f]], axis=1).T @ Qu     # (2 d, d2)
                out[f].real, out[f].imag = R[:d], R[d:]
        return out


class _Phi:
    """``phi(D) = sum_f cos(omega_f D)``: a table over the integer differences when every
    relative position is an integer, else computed entry by entry."""

    def __init__(self, freqs: np.ndarray, dpos: np.ndarray) -> None:
        self.freqs = np.asarray(freqs, dtype=np.float64)
        lo, hi = (float(dpos.min()), float(dpos.max())) if dpos.size else (0.0, 0.0)
        span = hi - lo
        self.table: np.ndarray | None = None
        self.R = 0
        if np.all(dpos == np.round(dpos)) and span <= _MAX_TABLE:
            self.R = int(span)
            D = np.arange(-self.R, self.R + 1, dtype=np.float64)
            self.table = np.cos(D[:, None] * self.freqs).sum(axis=1)

    @property
    def integer(self) -> bool:
        """Whether relative positions are integers (then :meth:`at` takes int arrays)."""
        return self.table is not None

    def at(self, D: np.ndarray) -> np.ndarray:
        """``phi`` at integer differences ``D`` (int array), from the table."""
        assert self.table is not None
        return np.take(self.table, D + self.R)

    def __call__(self, D: np.ndarray) -> np.ndarray:
        if self.table is not None:
            return self.table[np.rint(D).astype(np.int64) + self.R]
        return np.cos(D[..., None] * self.freqs).sum(axis=-1)


class PhaseKernel:
    """The lifted Gram matrix of :class:`RotaryTables` rows (+ a free block), scaled by
    ``1 / (sA sZ)^2``, as a :class:`~attnsvm.constraints.ConstraintKernel`.

    Primal points are coefficient vectors ``c`` (m,): ``Theta = sum_k c_k g_k`` (scaled rows).
    Columns of ``K`` once computed are kept (up to :data:`_CACHE_ENTRIES` floats), so the
    pricing of every row (``K[:, support] c``) only computes the columns new to the support.

    Parameters
    ----------
    tables : RotaryTables
    A0, Z0 : ndarray, shapes (m, d0), (m, d0'), optional
        Position-free block factors.
    sA, sZ : float
        Scales of the key and query factors.
    """

    def __init__(self, tables: RotaryTables, A0: np.ndarray | None = None,
                 Z0: np.ndarray | None = None, sA: float = 1.0, sZ: float = 1.0) -> None:
        t = tables
        self.t = t
        self.phi = _Phi(t.freqs, np.concatenate([t.ds, t.do]))
        if self.phi.integer:
            self._ds, self._do = np.rint(t.ds).astype(np.int64), np.rint(t.do).astype(np.int64)
        else:
            self._ds, self._do = t.ds, t.do
        self.Gk = (t.Xk @ t.Xk.T) / (sA * sA)
        self.Gq = (t.Zq @ t.Zq.T) / (sZ * sZ)
        self.A0 = None if A0 is None else A0 / sA
        self.Z0 = None if Z0 is None else np.asarray(Z0) / sZ
        self._pos = np.full(t.m, -1, dtype=np.int64)
        # cached columns of K stored as rows (column j of K is the contiguous _colsT[pos[j]]):
        # appending, growing and the products below are then contiguous
        self._colsT = np.zeros((0, t.m))
        self._n = 0

    @property
    def m(self) -> int:
        return self.t.m

    def _phi(self, D: np.ndarray) -> np.ndarray:
        return self.phi.at(D) if self.phi.integer else self.phi(D)

    def _compute(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        t = self.t
        ds, do = self._ds, self._do
        sr, orr = t.ks[rows], t.ko[rows]
        dsr, dor = ds[rows][:, None], do[rows][:, None]
        dsc, doc = ds[cols][None, :], do[cols][None, :]
        # Gk[sr, sc] as two takes (columns, then rows): a gather of whole rows, many times
        # faster than broadcast fancy indexing
        Gs = np.take(self.Gk, t.ks[cols], axis=1)               # (nk, len(cols))
        Go = np.take(self.Gk, t.ko[cols], axis=1)
        key = self._phi(dsr - dsc) * np.take(Gs, sr, axis=0)
        key -= self._phi(dsr - doc) * np.take(Go, sr, axis=0)
        key -= self._phi(dor - dsc) * np.take(Gs, orr, axis=0)
        key += self._phi(dor - doc) * np.take(Go, orr, axis=0)
        key *= np.take(np.take(self.Gq, t.q[cols], axis=1), t.q[rows], axis=0)
        if self.A0 is not None and self.Z0 is not None:
            key += (self.A0[rows] @ self.A0[cols].T) * (self.Z0[rows] @ self.Z0[cols].T)
        return np.asarray(key)

    def _cached(self, cols: np.ndarray) -> np.ndarray | None:
        """Positions of ``cols`` in the column cache (computing the missing ones), or None
        when the cache would outgrow its cap."""
        new = np.unique(cols[self._pos[cols] < 0])
        if new.size:
            size = self._n + new.size
            if size * self.m > _CACHE_ENTRIES:
                return None
            if size > self._colsT.shape[0]:
                buf = np.empty((max(size, 2 * self._colsT.shape[0], 64), self.m))
                buf[: self._n] = self._colsT[: self._n]
                self._colsT = buf
            self._colsT[self._n: size] = self._compute(new, np.arange(self.m))  # K symmetric
            self._pos[new] = np.arange(self._n, size)
            self._n = size
        return self._pos[cols]

    def block(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``K[rows][:, cols]``."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if rows.size < cols.size:
            p = self._cached(rows)
            if p is not None:
                return np.asarray(self._colsT[np.ix_(p, cols)])
        else:
            p = self._cached(cols)
            if p is not None:
                return np.ascontiguousarray(self._colsT[np.ix_(p, rows)].T)
        return self._compute(rows, cols)

    def diag(self) -> np.ndarray:
        """``K_kk``, shape (m,)."""
        t, Gk = self.t, self.Gk
        p0 = float(self.phi(np.zeros(1))[0])
        key = (p0 * (Gk[t.ks, t.ks] + Gk[t.ko, t.ko])
               - 2.0 * self._phi(self._ds - self._do) * Gk[t.ks, t.ko])
        out = key * self.Gq[t.q, t.q]
        if self.A0 is not None and self.Z0 is not None:
            out = out + np.einsum("kd,kd->k", self.A0, self.A0) * np.einsum(
                "kd,kd->k", self.Z0, self.Z0)
        return np.asarray(out)

    def primal(self, idx: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """The coefficient vector of ``sum_j lam_j g_{idx_j}``, shape (m,)."""
        c = np.zeros(self.m)
        np.add.at(c, np.asarray(idx, dtype=np.int64), np.asarray(lam, dtype=np.float64))
        return c

    def values(self, c: np.ndarray) -> np.ndarray:
        """``<Theta, g_k>`` for ``Theta = sum_l c_l g_l``: ``K[:, nz] c[nz]``, shape (m,)."""
        nz = np.flatnonzero(c)
        if nz.size == 0:
            return np.zeros(self.m)
        p = self._cached(nz)
        if p is not None:       # one product with the cached columns, no copy of them
            cc = np.zeros(self._n)
            np.add.at(cc, p, c[nz])
            return np.asarray(cc @ self._colsT[: self._n])
        out = np.empty(self.m)
        step = max(1, 4_000_000 // nz.size)
        for s in range(0, self.m, step):
            rows = np.arange(s, min(self.m, s + step))
            out[rows] = self._compute(rows, nz) @ c[nz]
        return out
