"""A decoder head as next-token-shaped data: its token-priority graphs and Graph-SVM.

In a decoder the same token often occurs twice in a row's keys; at layer 0 (and wherever the
normalized inputs coincide) its copies are the *same* vector, so the Att-SVM constraint of the
selected copy against the other one reads ``0 >= 1`` and the head's instance is infeasible.  The
next-token view (THEORY.md, Li et al. 2024) handles exactly this: tokens are nodes, and a
row's selection is a priority statement.

For one head:

- a *key class* is a distinct key vector (byte-identical rows of the layer's input are one
  class: repeated tokens are one node); a *query class* is a distinct augmented query
  ``[x_q; 1]``; each query class ``g`` has one token-priority graph ``G^(g)``;
- every row (a query position) adds edges ``i -> j`` from each key class ``i`` the head selects
  (its largest probability; several on ties) to every other key class ``j`` the row sees;
  tied selections get edges both ways, i.e. one class of equal priority;
- the strongly connected components (SCCs) of each graph are its classes of equal priority;
- the Graph-SVM: ``min ||W||_F`` s.t. ``(x_i - x_j)^T W z_g = 0`` for ``i, j`` in one SCC of
  ``G^(g)`` and ``>= 1`` for every edge ``i -> j`` across SCCs (duplicate edges once).  The
  equalities are written as ``x_{s_0} - x_{s_r}`` for the members ``s_r`` of each SCC (the
  same span as its edges), placed first (``n_eq``) as the solver expects.

The head's form ``W_h`` is then compared with ``W^svm`` with the same controls as the other
targets (``corr_graph``, ``corr_graph_control``, ...), and the record says how many
constraints are equalities and how large the SCCs are.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..constraints import ConstraintSet
from ..exceptions import ConvergenceWarning
from ..ntp.graph import strongly_connected_components
from ..ntp.svm import graph_rows
from ..svm import solve_fro_constraints, solve_nuc_constraints
from .capture import Capture
from .compare import compare, constraint_values

__all__ = ["HeadGraphs", "build_graphs", "graph_block", "strong_components", "GRAPH_FIELDS"]

#: Fields of a head's record filled by :func:`graph_block`.
GRAPH_FIELDS = (
    "graph_status", "graph_feasible", "graph_queries", "graph_nodes", "graph_n_eq",
    "graph_n_ineq", "graph_scc_max", "graph_scc_sizes", "graph_cyclic", "graph_objective",
    "graph_gap", "graph_violated_share", "graph_seconds", "corr_graph", "corr_graph_control",
    "corr_graph_control_max", "corr_graph_random", "graph_nuc_status", "corr_graph_nuc",
    "corr_graph_nuc_control", "corr_graph_nuc_control_max", "corr_graph_nuc_random",
    "rank_graph_nuc", "graph_nuc_objective", "graph_nuc_seconds",
)


def strong_components(n_nodes: int, edges: np.ndarray) -> np.ndarray:
    """Strongly connected component label of every node of a directed graph.

    :func:`attnsvm.ntp.graph.strongly_connected_components` (scipy's components, labels in
    its fixed topological order of the condensation, which orders the equality rows).

    Parameters
    ----------
    n_nodes : int
        Nodes ``0 .. n_nodes - 1``.
    edges : numpy.ndarray of int, shape (E, 2)
        Directed edges ``(u, v)``.

    Returns
    -------
    numpy.ndarray of int64, shape (n_nodes,)
        Equal labels exactly for nodes of one component.
    """
    return strongly_connected_components(n_nodes, np.asarray(edges, dtype=np.int64))


@dataclass
class HeadGraphs:
    """The token-priority graphs of one head and their Graph-SVM constraints.

    Attributes
    ----------
    A : numpy.ndarray, shape (m, d)
        ``x_i - x_j`` per constraint (key side).
    Zc : numpy.ndarray, shape (m, d + 1)
        ``z_g = [x_q; 1]`` of the constraint's graph.
    index : numpy.ndarray of int64, shape (m, 2)
        (graph, running number) per constraint.
    b : numpy.ndarray, shape (m,)
        0 on the first ``n_eq`` rows (equalities), 1 after.
    n_eq : int
        Number of equality rows.
    edges : numpy.ndarray of int64, shape (E, 3)
        Every distinct edge ``(graph, i, j)`` with global key-class ids.
    comp : numpy.ndarray of int64, shape (E, 2)
        SCC label of ``i`` and of ``j`` within the edge's graph.
    keys : numpy.ndarray, shape (n_nodes, d)
        The distinct key vectors (node ``i`` is ``keys[i]``).
    queries : numpy.ndarray, shape (n_graphs, d + 1)
        The distinct augmented queries (graph ``g`` belongs to ``queries[g]``).
    n_graphs, n_nodes : int
        Query classes (graphs) and key classes (nodes).
    scc_sizes : list of int
        Sizes of the SCCs with two or more nodes, over all graphs.
    cyclic : int
        Graphs with an SCC of two or more nodes.
    """

    A: np.ndarray
    Zc: np.ndarray
    index: np.ndarray
    b: np.ndarray
    n_eq: int
    edges: np.ndarray
    comp: np.ndarray
    keys: np.ndarray
    queries: np.ndarray
    n_graphs: int
    n_nodes: int
    scc_sizes: list[int]
    cyclic: int

    @property
    def m(self) -> int:
        """Number of constraints."""
        return int(self.A.shape[0])


def _class_ids(table: dict[bytes, int], vecs: list[np.ndarray], rows: np.ndarray) -> list[int]:
    """Ids of the rows of ``rows`` in a table of distinct vectors (new ones appended)."""
    out = []
    for r in rows:
        key = r.tobytes()
        cid = table.get(key)
        if cid is None:
            cid = table[key] = len(vecs)
            vecs.append(r)
        out.append(cid)
    return out


def build_graphs(captures: list[Capture], layer: int, head: int, causal: bool) -> HeadGraphs:
    """Build the token-priority graphs of one head and their Graph-SVM constraints.

    Parameters
    ----------
    captures : list of Capture
        One per sequence, with ``X[layer]`` (T, d) and ``P[layer]`` (H, T, T).
    layer, head : int
    causal : bool
        Query q sees keys 0..q only.

    Returns
    -------
    HeadGraphs
    """
    keys: dict[bytes, int] = {}
    key_vecs: list[np.ndarray] = []
    queries: dict[bytes, int] = {}
    query_vecs: list[np.ndarray] = []
    edge_set: set[tuple[int, int, int]] = set()
    for cap in captures:
        X = np.asarray(cap.X[layer], dtype=np.float64)
        P = cap.P[layer][head]
        T = X.shape[0]
        node = _class_ids(keys, key_vecs, X)
        Z = np.concatenate([X, np.ones((T, 1))], axis=1)
        qid = _class_ids(queries, query_vecs, Z)
        for q in range(T):
            nk = q + 1 if causal else T
            p = P[q, :nk]
            seen = {node[t] for t in range(nk)}
            for i in {node[t] for t in np.flatnonzero(p == p.max())}:
                edge_set.update((qid[q], i, j) for j in seen if j != i)
    d = key_vecs[0].shape[0] if key_vecs else 0
    Xk = np.asarray(key_vecs).reshape(len(key_vecs), d)
    Zq = np.asarray(query_vecs).reshape(len(query_vecs), d + 1)
    edges = np.array(sorted(edge_set), dtype=np.int64).reshape(-1, 3)
    comp = np.zeros((len(edges), 2), dtype=np.int64)
    eq_rows: list[tuple[int, int, int]] = []  # (graph, s0, s)
    ineq: list[int] = []  # edge numbers across components
    scc_sizes: list[int] = []
    cyclic = 0
    bounds = np.searchsorted(edges[:, 0], np.arange(len(query_vecs) + 1))
    for g in range(len(query_vecs)):
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        if lo == hi:
            continue
        nodes, local = np.unique(edges[lo:hi, 1:], return_inverse=True)
        labels = strong_components(len(nodes), local.reshape(-1, 2))
        comp[lo:hi] = labels[local.reshape(-1, 2)]
        ineq.extend(lo + np.flatnonzero(comp[lo:hi, 0] != comp[lo:hi, 1]))
        big = False
        for c in np.unique(labels):
            members = nodes[labels == c]
            if members.size > 1:
                big = True
                scc_sizes.append(int(members.size))
                eq_rows.extend((g, int(members[0]), int(s)) for s in members[1:])
        cyclic += big
    rows = graph_rows(np.asarray(eq_rows, dtype=np.int64).reshape(-1, 3),
                      edges[np.asarray(ineq, dtype=np.int64)], Xk, Zq)
    return HeadGraphs(
        A=rows.A,
        Zc=rows.Zc,
        index=rows.index,
        b=rows.rhs,
        n_eq=rows.n_eq,
        edges=edges,
        comp=comp,
        keys=Xk,
        queries=Zq,
        n_graphs=len(query_vecs),
        n_nodes=len(key_vecs),
        scc_sizes=sorted(scc_sizes, reverse=True),
        cyclic=int(cyclic),
    )


def graph_block(
    captures: list[Capture],
    layer: int,
    head: int,
    causal: bool,
    W_layer: list[np.ndarray],
    W_rand: np.ndarray,
    tol: float,
    arrays: dict[str, np.ndarray],
    nuclear: bool = False,
) -> dict[str, Any]:
    """Solve one head's Graph-SVM (Frobenius, exact) and compare it with the head.

    Parameters
    ----------
    captures : list of Capture
    layer, head : int
    causal : bool
    W_layer : list of numpy.ndarray, each shape (d, d + 1)
        The layer's heads; ``W_layer[head]`` is this one, the others are controls.
    W_rand : numpy.ndarray, shape (d, d + 1)
    tol : float
        Feasibility tolerance of the Frobenius solver.
    arrays : dict
        Receives ``W_graph`` (float64) and ``dual_graph``, or ``certificate_graph``; with
        ``nuclear`` also ``W_graph_nuc``.
    nuclear : bool
        Also solve the nuclear-norm Graph-SVM (the target of a factored head) when the
        Frobenius one is feasible: ``corr_graph_nuc`` with its controls and ``rank_graph_nuc``.

    Returns
    -------
    dict
        The fields of :data:`GRAPH_FIELDS` (and ``graph_certified`` when infeasible).
    """
    t0 = time.perf_counter()
    G = build_graphs(captures, layer, head, causal)
    out: dict[str, Any] = dict.fromkeys(GRAPH_FIELDS)
    sizes, counts = np.unique(np.asarray(G.scc_sizes, dtype=np.int64), return_counts=True)
    out.update(
        graph_queries=G.n_graphs,
        graph_nodes=G.n_nodes,
        graph_n_eq=G.n_eq,
        graph_n_ineq=G.m - G.n_eq,
        graph_scc_max=max(G.scc_sizes, default=1),
        graph_scc_sizes={str(int(s)): int(c) for s, c in zip(sizes, counts, strict=True)},
        graph_cyclic=G.cyclic,
    )
    W_head = W_layer[head]
    vals = constraint_values(W_head, G.A[G.n_eq :], G.Zc[G.n_eq :])
    out["graph_violated_share"] = float(np.mean(vals <= 0)) if vals.size else 0.0
    if G.m == G.n_eq:  # no inequality: W = 0 is optimal, nothing to compare
        out.update(graph_status="empty", graph_seconds=time.perf_counter() - t0)
        return out
    cset = ConstraintSet.from_arrays(G.A, G.Zc, G.index, G.b, G.n_eq)
    sol = solve_fro_constraints(cset, tol=tol)
    out["graph_status"] = sol.status
    out["graph_feasible"] = sol.status != "infeasible"
    if sol.W is None or sol.status == "infeasible":
        out["graph_certified"] = bool(sol.is_certified_infeasible())
        if sol.certificate is not None:
            arrays["certificate_graph"] = np.asarray(sol.certificate, dtype=np.float64)
    else:
        W = np.asarray(sol.W, dtype=np.float64)
        out.update(compare(W, W_layer, head, W_rand, "graph"))
        out.update(graph_objective=float(np.linalg.norm(W)), graph_gap=float(sol.duality_gap()))
        arrays["W_graph"] = W.astype(np.float64)
        arrays["dual_graph"] = np.asarray(sol.dual, dtype=np.float64)
    out["graph_seconds"] = time.perf_counter() - t0
    if nuclear and out["graph_feasible"]:
        out.update(_graph_nuclear(cset, sol, W_layer, head, W_rand, arrays))
    return out


def _graph_nuclear(cset: Any, fro_sol: Any, W_layer: list[np.ndarray], head: int,
                   W_rand: np.ndarray, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The nuclear-norm Graph-SVM, seeded by the Frobenius one (not solved twice)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the status says it
        sol = solve_nuc_constraints(cset, frobenius=fro_sol)
    out: dict[str, Any] = {"graph_nuc_status": sol.status,
                           "graph_nuc_seconds": time.perf_counter() - t0}
    if sol.W is not None and sol.status != "infeasible":
        W = np.asarray(sol.W, dtype=np.float64)
        c = compare(W, W_layer, head, W_rand, "graph_nuc")
        out.update(c, rank_graph_nuc=int(sol.rank),
                   graph_nuc_objective=float(np.linalg.svd(W, compute_uv=False).sum()))
        arrays["W_graph_nuc"] = W.astype(np.float64)
    return out
