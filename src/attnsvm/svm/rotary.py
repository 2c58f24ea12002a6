"""The lifted Att-SVM of rotary attention heads (THEORY.md, "Rotary position embeddings").

A rotary head scores key ``x`` at position ``r`` against the query ``z`` at position ``p`` as

    score = sum_f Re( exp(i omega_f (p - r)) x^T M_f z )  (+ x0^T W0 z0),

linear in the lifted parameter ``Theta = (M_1..M_F, W0)`` (``M_f`` complex (d, d)).  With the
real inner product ``<A, B> = Re tr(A^H B)`` a score difference is, per block,
``<a_f z^T, M_f>`` with the complex key factor ``a_f = conj(c_sel) x_sel - conj(c_oth) x_oth``,
``c = exp(i omega_f dpos)``: each block's normal is rank one.  :class:`RotaryConstraintSet`
holds these factors; :func:`solve_lifted` solves

* ``norm="fro"``: ``min sum_f ||M_f||_F^2 (+ ||W0||_F^2)`` exactly, by the working-set dual
  of the Frobenius Att-SVM on the stacked real blocks (Gram = sum over blocks of
  ``(a_kf . a_lf)(z_k . z_l)``), with its dual and a Farkas certificate when infeasible;
* ``norm="nuc"``: the group nuclear norm ``min sum_f ||M_f||_* (+ ||W0||_*)`` (complex nuclear
  norm), a block SDP, certified by its own dual (``max_f ||G_f||_2 <= 1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import as_float_array, as_int_array, check_choice, check_positive
from ..exceptions import InvalidInputError
from ._rotary_forms import head_lifted, lifted_correlation, lifted_norm, lifted_scores
from ._rotary_tables import RotaryTables

__all__ = [
    "RotaryConstraintSet",
    "RotarySolution",
    "rotary_constraints",
    "rotary_rows",
    "rotary_table_rows",
    "RotaryTables",
    "solve_lifted",
    "lifted_scores",
    "lifted_values",
    "head_lifted",
    "lifted_correlation",
    "lifted_norm",
]


class RotaryConstraintSet:
    """Lifted Att-SVM rows ``sum_f <A[k, f] Zc[k]^T, M_f> + A0[k]^T W0 Z0[k] (= or >=) b_k``.

    ``<A, B> = Re tr(A^H B)``, so a row's value is
    ``sum_f Re(conj(A[k, f])^T M_f Zc[k]) + A0[k]^T W0 Z0[k]``.  Built either from the
    factors ``A`` and ``Zc`` or, by :func:`rotary_rows` and :func:`rotary_table_rows`, from
    :class:`~._rotary_tables.RotaryTables` (keys, queries, relative positions), in which case
    ``A`` and ``Zc`` are formed only when asked for and the solvers use the tables.

    Attributes
    ----------
    A : ndarray of complex128, shape (m, F, d)
        Per-block key factors ``conj(c_sel) x_sel - conj(c_oth) x_oth``,
        ``c = exp(1j * freqs[f] * dpos)``.
    Zc : ndarray, shape (m, d)
        Query of each row.
    freqs : ndarray, shape (F,)
        Angular frequencies (kept for the record; the rows already hold them).
    index : ndarray of int, shape (m, 2)
        ``(i, t)`` of each row (``(k, 0)`` for generic rows).
    b : ndarray, shape (m,), optional
        Right-hand sides (default ones).
    n_eq : int
        The first ``n_eq`` rows are equalities.
    A0, Z0 : ndarray, shapes (m, d0), optional
        Factors of the position-free block ``W0`` (d0, d0).
    tables : RotaryTables or None
        The rows as tables (None when built from ``A``).
    """

    def __init__(self, A: np.ndarray | None = None, Zc: np.ndarray | None = None,
                 freqs: np.ndarray | None = None, index: np.ndarray | None = None,
                 b: np.ndarray | None = None, n_eq: int = 0, A0: np.ndarray | None = None,
                 Z0: np.ndarray | None = None, tables: RotaryTables | None = None) -> None:
        if tables is None and (A is None or Zc is None):
            raise InvalidInputError("A RotaryConstraintSet needs 'A' and 'Zc' or 'tables'.")
        self._A, self._Zc = A, Zc
        self.tables = tables
        self.freqs = np.asarray(tables.freqs if freqs is None and tables is not None
                                else freqs, dtype=np.float64)
        m = tables.m if tables is not None else int(np.asarray(A).shape[0])
        self.index = (np.stack([np.arange(m), np.zeros(m, dtype=np.int64)], 1)
                      if index is None else index)
        self.b, self.n_eq, self.A0, self.Z0 = b, int(n_eq), A0, Z0

    @property
    def A(self) -> np.ndarray:
        """The key factors (m, F, d) complex (formed from the tables on first use)."""
        if self._A is None:
            assert self.tables is not None
            self._A = self.tables.factors()
        return self._A

    @property
    def Zc(self) -> np.ndarray:
        """The query of each row, (m, d2)."""
        if self._Zc is None:
            assert self.tables is not None
            self._Zc = self.tables.Zq[self.tables.q]
        return self._Zc

    @property
    def m(self) -> int:
        """Number of rows."""
        return self.tables.m if self.tables is not None else int(self.A.shape[0])

    @property
    def F(self) -> int:
        """Number of frequency blocks."""
        return int(self.freqs.size) if self.tables is not None else int(self.A.shape[1])

    @property
    def d(self) -> int:
        """Dimension of the rotary blocks (``M_f`` is (d, d))."""
        return int(self.tables.Xk.shape[1]) if self.tables is not None else int(self.A.shape[2])

    @property
    def d0(self) -> int:
        """Dimension of the free block (0 without one)."""
        return 0 if self.A0 is None else int(self.A0.shape[1])

    @property
    def rhs(self) -> np.ndarray:
        """Right-hand sides, shape (m,)."""
        return np.ones(self.m) if self.b is None else np.asarray(self.b, dtype=np.float64)

    def values(self, M: np.ndarray, W0: np.ndarray | None = None) -> np.ndarray:
        """Row values ``sum_f Re(conj(A[k,f]) @ M_f @ Zc[k]) (+ A0[k] @ W0 @ Z0[k])``, (m,)."""
        if self.tables is not None:
            v = self.tables.values(M)
        else:
            MZ = np.einsum("fij,kj->kfi", np.asarray(M, dtype=np.complex128), self.Zc)
            v = np.einsum("kfi,kfi->k", np.conj(self.A), MZ).real
        if self.A0 is not None and W0 is not None:
            assert self.Z0 is not None
            v = v + np.einsum("ki,ki->k", self.A0 @ W0, self.Z0)
        return np.asarray(v)

    def combine(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``G_f = sum_k w_k A[k, f] Zc[k]^T`` (F, d, d) complex and ``G0`` (d0, d0) or None."""
        w = np.asarray(weights, dtype=np.float64)
        if self.tables is not None:
            G = self.tables.combine(w)
        else:
            G = np.einsum("k,kfi,kj->fij", w, self.A, self.Zc, optimize=True)
        G0 = None
        if self.A0 is not None:
            assert self.Z0 is not None
            G0 = self.A0.T @ (w[:, None] * self.Z0)
        return G, G0

    def subset(self, mask: np.ndarray) -> RotaryConstraintSet:
        """The rows selected by a boolean mask or index array (``n_eq`` recounted)."""
        sel = np.arange(self.m)[mask]
        return RotaryConstraintSet(
            A=None if self._A is None else self._A[sel],
            Zc=None if self._Zc is None else self._Zc[sel], freqs=self.freqs,
            index=self.index[sel], b=self.rhs[sel], n_eq=int(np.sum(sel < self.n_eq)),
            A0=None if self.A0 is None else self.A0[sel],
            Z0=None if self.Z0 is None else self.Z0[sel],
            tables=None if self.tables is None else self.tables.subset(sel))


@dataclass
class RotarySolution:
    """A lifted Att-SVM answer.

    Attributes
    ----------
    status : {"optimal", "infeasible", "inaccurate"}
    norm : {"fro", "nuc"}
    M : ndarray of complex128, shape (F, d, d), or None when infeasible
    W0 : ndarray, shape (d0, d0), or None
    dual : ndarray, shape (m,)
        Multipliers (>= 0 on inequality rows) whose ``G_f = sum_k dual_k A[k,f] Zc[k]^T`` has
        dual norm <= 1 (Frobenius: ``sqrt(sum ||G_f||_F^2) = 1``; nuclear:
        ``max_f ||G_f||_2 <= 1``); ``sum(dual * b)`` is a lower bound on the optimum.
    objective : float
        ``sqrt(sum ||M_f||_F^2 + ||W0||_F^2)`` (fro) or ``sum ||M_f||_* + ||W0||_*`` (nuc).
    certificate : ndarray, shape (m,), or None
        When infeasible: weights (>= 0 on inequalities, not all 0) with ``sum c_k g_k = 0``.
    info : dict
        ``certified_gap`` (relative), ``lower_bound``, ``margin`` (min over rows of
        value / b... see :func:`solve_lifted`), ``kkt`` residuals, ``support``, ``seconds``.
    """

    status: str
    norm: str
    M: np.ndarray | None
    W0: np.ndarray | None
    dual: np.ndarray
    objective: float
    certificate: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- row builders
def rotary_rows(
    keys_sel: np.ndarray,
    keys_other: np.ndarray,
    zq: np.ndarray,
    dpos_sel: np.ndarray,
    dpos_other: np.ndarray,
    freqs: np.ndarray,
    b: np.ndarray | None = None,
    n_eq: int = 0,
    *,
    free: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    index: np.ndarray | None = None,
) -> RotaryConstraintSet:
    """Generic lifted rows: ``score(keys_sel[k]) - score(keys_other[k]) (= or >=) b_k``.

    Parameters
    ----------
    keys_sel, keys_other : ndarray, shape (m, d)
        The two keys of each row.
    zq : ndarray, shape (m, d)
        The query of each row.
    dpos_sel, dpos_other : ndarray, shape (m,)
        Relative positions ``qpos - pos`` of the two keys.
    freqs : ndarray, shape (F,)
    b : ndarray, shape (m,), optional
        Right-hand sides (default ones).
    n_eq : int
        Leading equality rows.
    free : (keys0_sel, keys0_other, z0), shapes (m, d0), (m, d0), (m, d0), optional
        Position-free features; adds the block ``W0``.
    index : ndarray of int, shape (m, 2), optional

    Returns
    -------
    RotaryConstraintSet
    """
    xs = as_float_array("keys_sel", keys_sel, 2)
    m, d = xs.shape
    xo = as_float_array("keys_other", keys_other, 2, (m, d))
    Z = as_float_array("zq", zq, 2, (m, d))
    ds = as_float_array("dpos_sel", dpos_sel, 1, (m,))
    do = as_float_array("dpos_other", dpos_other, 1, (m,))
    fr = as_float_array("freqs", freqs, 1)
    Xk, kinv = np.unique(np.concatenate([xs, xo]), axis=0, return_inverse=True)
    Zq, qinv = np.unique(Z, axis=0, return_inverse=True)
    kinv, qinv = kinv.ravel(), qinv.ravel()
    tables = RotaryTables(Xk=Xk, ks=kinv[:m], ko=kinv[m:], Zq=Zq, q=qinv, ds=ds, do=do,
                          freqs=fr)
    A0 = Z0 = None
    if free is not None:
        k0s = as_float_array("keys0_sel", free[0], 2, (m, None))
        k0o = as_float_array("keys0_other", free[1], 2, (m, k0s.shape[1]))
        Z0 = as_float_array("z0", free[2], 2, (m, None))
        A0 = k0s - k0o
    bb = None if b is None else as_float_array("b", b, 1, (m,))
    if not 0 <= int(n_eq) <= m:
        raise InvalidInputError(f"The 'n_eq' parameter must be in [0, {m}]. Got {n_eq} instead.")
    idx = (np.stack([np.arange(m), np.zeros(m, dtype=np.int64)], 1) if index is None
           else as_int_array("index", index, 2, (m, 2)))
    return RotaryConstraintSet(Zc=Z, freqs=fr, index=idx, b=bb, n_eq=int(n_eq), A0=A0, Z0=Z0,
                               tables=tables)


def rotary_table_rows(tables: RotaryTables, b: np.ndarray | None = None, n_eq: int = 0, *,
                      free: tuple[np.ndarray, np.ndarray] | None = None,
                      index: np.ndarray | None = None) -> RotaryConstraintSet:
    """Lifted rows from tables of keys and queries (no (m, F, d) factors are formed).

    Parameters
    ----------
    tables : RotaryTables
        Key table, query table, the indices of each row's two keys and query, and the
        relative positions.
    b : ndarray, shape (m,), optional
    n_eq : int
    free : (A0, Z0), shapes (m, d0), (m, d0'), optional
        Position-free block factors (key difference and query of each row).
    index : ndarray of int, shape (m, 2), optional

    Returns
    -------
    RotaryConstraintSet
    """
    m = tables.m
    if not 0 <= int(n_eq) <= m:
        raise InvalidInputError(f"The 'n_eq' parameter must be in [0, {m}]. Got {n_eq} instead.")
    A0 = Z0 = None
    if free is not None:
        A0 = as_float_array("A0", free[0], 2, (m, None))
        Z0 = as_float_array("Z0", free[1], 2, (m, None))
    bb = None if b is None else as_float_array("b", b, 1, (m,))
    return RotaryConstraintSet(freqs=tables.freqs, index=index, b=bb, n_eq=int(n_eq), A0=A0,
                               Z0=Z0, tables=tables)


def rotary_constraints(
    X: np.ndarray,
    Z: np.ndarray,
    pos: np.ndarray,
    qpos: np.ndarray,
    freqs: np.ndarray,
    alpha: np.ndarray,
    *,
    free_dims: tuple[np.ndarray, np.ndarray] | None = None,
) -> RotaryConstraintSet:
    """The lifted Att-SVM rows of a rotary instance: ``score_{i,alpha_i} - score_{it} >= 1``.

    Parameters
    ----------
    X : ndarray, shape (n, T, d)
        Keys.
    Z : ndarray, shape (n, d)
        Queries.
    pos : ndarray of int, shape (n, T)
        Key positions.
    qpos : ndarray of int, shape (n,)
        Query positions.
    freqs : ndarray, shape (F,)
        Angular frequencies.
    alpha : ndarray of int, shape (n,)
        Selected token per sequence.
    free_dims : (X0, Z0), shapes (n, T, d0) and (n, d0), optional
        Position-free features, adding the block ``W0`` (d0, d0).

    Returns
    -------
    RotaryConstraintSet
        ``m = n (T - 1)`` rows, ``index`` ``(i, t)`` in row-major order.
    """
    X = as_float_array("X", X, 3)
    n, T, d = X.shape
    Z = as_float_array("Z", Z, 2, (n, d))
    P = as_int_array("pos", pos, 2, (n, T))
    q = as_int_array("qpos", qpos, 1, (n,))
    al = as_int_array("alpha", alpha, 1, (n,), low=0, high=T)
    ii, tt = np.nonzero(np.arange(T)[None, :] != al[:, None])
    dpos = (q[:, None] - P).astype(np.float64)
    free = None
    if free_dims is not None:
        X0 = as_float_array("X0", free_dims[0], 3, (n, T, None))
        Z0 = as_float_array("Z0", free_dims[1], 2, (n, X0.shape[2]))
        free = (X0[ii, al[ii]], X0[ii, tt], Z0[ii])
    return rotary_rows(X[ii, al[ii]], X[ii, tt], Z[ii], dpos[ii, al[ii]], dpos[ii, tt], freqs,
                       free=free, index=np.stack([ii, tt], 1))


def lifted_values(problem: RotaryConstraintSet, M: np.ndarray,
                  W0: np.ndarray | None = None) -> np.ndarray:
    """Row values of ``Theta = (M, W0)`` on ``problem``, shape (m,)."""
    return problem.values(M, W0)


# --------------------------------------------------------------------------- solve
def solve_lifted(problem: RotaryConstraintSet, norm: str = "fro", *,
                 tol: float | None = None) -> RotarySolution:
    """Solve the lifted Att-SVM ``min ||Theta|| s.t. the rows of ``problem``.

    Parameters
    ----------
    problem : RotaryConstraintSet
    norm : {"fro", "nuc"}
        ``fro``: ``sqrt(sum ||M_f||_F^2 + ||W0||_F^2)`` (limit of GD on Theta), solved exactly;
        ``nuc``: ``sum_f ||M_f||_* + ||W0||_*`` (complex nuclear norm; target of per-frequency
        factors), a block SDP certified by its dual.
    tol : float, optional
        Certified relative gap required for status ``optimal`` (default 1e-9 for ``fro``,
        1e-6 for ``nuc``; the Frobenius working-set tolerance is ``min(tol, 1e-10)``).

    Returns
    -------
    RotarySolution
        ``info``: ``certified_gap`` ((objective - lower bound) / objective), ``lower_bound``,
        ``margin`` (min_k value_k / b_k over inequality rows with b_k > 0, of Theta as
        returned), ``kkt`` (``primal``, ``complementarity``, ``stationarity``, ``dual``),
        ``support`` (rows with nonzero multiplier), ``seconds``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X, Z = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 5))
    >>> pos, qpos = np.tile(np.arange(4), (3, 1)), np.full(3, 4)
    >>> rows = rotary_constraints(X, Z, pos, qpos, np.array([1.0, 0.1]), np.zeros(3, int))
    >>> sol = solve_lifted(rows)
    >>> sol.status, bool(sol.info["certified_gap"] <= 1e-9)
    ('optimal', True)
    """
    check_choice("norm", norm, ("fro", "nuc"))
    if not isinstance(problem, RotaryConstraintSet):
        raise InvalidInputError(
            f"The 'problem' must be a RotaryConstraintSet. Got {type(problem).__name__} instead.")
    if problem.m == 0:
        raise InvalidInputError("The constraint set must hold at least one row. Got m=0.")
    if tol is not None:
        check_positive("tol", tol)
    if norm == "fro":
        from ._rotary_fro import solve_lifted_fro

        return solve_lifted_fro(problem, tol=1e-9 if tol is None else tol)
    from ._rotary_nuc import solve_lifted_nuc

    return solve_lifted_nuc(problem, tol=1e-6 if tol is None else tol)
