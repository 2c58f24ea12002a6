"""Independent references and standard problems shared by the tests.

The references are written directly in cvxpy (never through attnsvm's own conic module), at
tight Clarabel tolerances: the Frobenius and nuclear-norm Att-SVMs of a constraint set, the
Graph-SVM of a next-token dataset in the official code's formulation (one row per sample and
token, SCCs from networkx) and that of a probe head's graphs.  :func:`tarjan_order` is Tarjan's
SCC numbering, written recursively; :func:`check_nuclear_certificate` checks what every
nuclear-norm answer must satisfy.
"""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np

from attnsvm.constraints import ConstraintSet
from attnsvm.instance import Instance, TiedTokensError
from attnsvm.svm.norms import row_scale
from attnsvm.svm.nuclear._presolve import Reduced  # the interior point's coordinates

__all__ = ["tarjan_order", "cvxpy_fro", "cvxpy_nuc", "cvxpy_graph_svm", "cvxpy_head_graph_svm",
           "check_nuclear_certificate", "with_equality_rows", "optimal_or_first",
           "reduced_problem"]


def tarjan_order(n_nodes: int, edges: np.ndarray) -> list[int]:
    """Independent reference for the SCC numbering: Tarjan's algorithm, written recursively
    (roots ``0 .. n_nodes - 1`` in turn, a node's edges in the given order), components
    numbered in the reverse of the order Tarjan emits them."""
    adj: list[list[int]] = [[] for _ in range(n_nodes)]
    for u, v in np.asarray(edges, dtype=np.int64).reshape(-1, 2).tolist():
        adj[u].append(v)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    emitted: list[list[int]] = []

    def visit(v: int) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while not comp or comp[-1] != v:
                comp.append(stack.pop())
            emitted.append(comp)

    for r in range(n_nodes):
        if r not in index:
            visit(r)
    out = [0] * n_nodes
    for j, comp in enumerate(reversed(emitted)):
        for v in comp:
            out[v] = j
    return out


def cvxpy_fro(A: np.ndarray, Zc: np.ndarray) -> tuple[str, np.ndarray | None]:
    """Independent reference: min ||W||_F^2 s.t. a_k^T W z_k >= 1, written entry by entry."""
    import cvxpy as cp

    d1, d2 = A.shape[1], Zc.shape[1]
    W = cp.Variable((d1, d2))
    cons = [cp.sum(cp.multiply(W, np.outer(a, z))) >= 1 for a, z in zip(A, Zc, strict=True)]
    prob = cp.Problem(cp.Minimize(cp.sum_squares(W)), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return prob.status, W.value


def cvxpy_nuc(c: ConstraintSet) -> float:
    """Independent reference: min ||W||_* s.t. a_k^T W z_k >= b_k (= b_k on equality rows),
    the vectorized cvxpy formulation, Clarabel at tight tolerances; the optimal value."""
    import cvxpy as cp

    W = cp.Variable((c.A.shape[1], c.Zc.shape[1]))
    vals = cp.sum(cp.multiply(c.A @ W, c.Zc), axis=1)
    b = c.rhs
    cons = []
    if c.n_eq:
        cons.append(vals[: c.n_eq] == b[: c.n_eq])
    if c.n_eq < c.m:
        cons.append(vals[c.n_eq:] >= b[c.n_eq:])
    prob = cp.Problem(cp.Minimize(cp.normNuc(W)), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "may be inaccurate": its value is compared to 1e-6
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status in ("optimal", "optimal_inaccurate")
    return float(prob.value)


def cvxpy_graph_svm(ds):
    """The official formulation: one row per sample and token, SCCs from networkx."""
    import cvxpy as cp

    W = cp.Variable((ds.d, ds.d))
    cons = []
    E = ds.E
    for k in np.unique(ds.queries):
        rows = np.flatnonzero(ds.queries == k)
        G = nx.DiGraph()
        G.add_edges_from((ds.labels[i], x) for i in rows for x in ds.tokens[i]
                         if x != ds.labels[i])
        comp = {v: j for j, c in enumerate(nx.strongly_connected_components(G)) for v in c}
        for i in rows:
            y = ds.labels[i]
            for x in ds.tokens[i]:
                if x == y:
                    continue
                expr = cp.sum(cp.multiply(W, np.outer(E[y] - E[x], E[k])))
                cons.append(expr == 0 if comp[x] == comp[y] else expr >= 1)
    prob = cp.Problem(cp.Minimize(cp.sum_squares(W)), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return prob.status, W.value


def cvxpy_head_graph_svm(G: object, norm: str = "fro") -> tuple[float, np.ndarray]:
    """Independent reference for a probe head's Graph-SVM (:class:`attnsvm.probe.graph.HeadGraphs`):
    every edge a constraint, equality inside its component; (optimal value, W (d, d + 1))."""
    import cvxpy as cp

    d = G.keys.shape[1]  # type: ignore[attr-defined]
    W = cp.Variable((d, d + 1))
    cons = []
    for (g, i, j), (ci, cj) in zip(G.edges, G.comp, strict=True):  # type: ignore[attr-defined]
        a = G.keys[i] - G.keys[j]  # type: ignore[attr-defined]
        expr = cp.sum(cp.multiply(W, np.outer(a, G.queries[g])))  # type: ignore[attr-defined]
        cons.append(expr == 0 if ci == cj else expr >= 1)
    obj = cp.sum_squares(W) if norm == "fro" else cp.normNuc(W)
    prob = cp.Problem(cp.Minimize(obj), cons)
    if norm == "fro":
        prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    else:  # the semidefinite form stalls at tighter settings; defaults reach ~1e-8
        prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    value = float(np.sqrt(prob.value)) if norm == "fro" else float(prob.value)
    return value, np.asarray(W.value)


def check_nuclear_certificate(sol, tol=1e-9):
    """The conditions every nuclear answer must meet: optimal, certified gap at most ``tol``,
    feasible, ``mu >= 0`` on inequalities with ``||sum mu_k G_k||_op <= 1``, and weak duality
    ``sum mu b <= ||W||_*`` closing to ``tol``."""
    assert sol.status == "optimal"
    assert sol.info["certified_gap"] <= tol
    assert sol.margin >= 1 - tol or sol.n_eq == sol.constraints.m
    mu = sol.dual
    assert mu[sol.n_eq:].min() >= 0
    G = sol.constraints.combine(mu)
    assert np.linalg.norm(G, 2) <= 1 + 1e-12
    # weak duality makes sum(mu b) a lower bound; the gap closes to tol
    lower = float(mu @ sol.b)
    assert lower <= sol.objective * (1 + 1e-12)
    assert sol.objective - lower <= tol * sol.objective
    assert sol.is_optimal(1e-7)


def with_equality_rows(inst: Instance) -> ConstraintSet:
    """``inst``'s constraints with the first row of each of the first three sequences made an
    equality with ``b = 0`` (Graph-SVM style), equalities first."""
    c = inst.constraints()
    eq = np.flatnonzero(np.isin(c.index[:, 1], [1]) & (c.index[:, 0] < 3))
    order = np.concatenate([eq, np.setdiff1d(np.arange(c.m), eq)])
    b = np.concatenate([np.zeros(eq.size), np.ones(c.m - eq.size)])
    return ConstraintSet(c.A[order], c.Zc[order], c.index[order], b=b, n_eq=eq.size)


def optimal_or_first(inst: Instance) -> np.ndarray:
    """The optimal tokens, or where scores tie (e.g. d = 1) the first argmax of each row."""
    try:
        return inst.optimal_tokens()
    except TiedTokensError:
        return np.argmax(inst.token_scores(), axis=1).astype(np.int64)


def reduced_problem(c: ConstraintSet, rows: np.ndarray | None = None) -> Reduced:
    """The rows ``rows`` (default all; sorted indices) of ``c`` at unit scale, in the interior
    point's reduced coordinates (inequalities only)."""
    unit = c.scaled(row_scale(c.A), row_scale(c.Zc))
    Zq, ginv = unit.groups
    return Reduced.build(unit, np.arange(c.m) if rows is None else rows, Zq, ginv, 0)
