"""The Graph-SVM of next-token prediction (Li, Huang, Ildiz, Rawat, Oymak 2024).

    W^svm = argmin ||W||  s.t.  for every last token k and every edge y -> x of G^(k):
        (e_y - e_x)^T W e_k  = 0   if y and x lie in one SCC of G^(k),
        (e_y - e_x)^T W e_k >= 1   otherwise.

Each row is a rank-one constraint ``<W, (e_y - e_x) e_k^T>`` of a
:class:`~attnsvm.constraints.ConstraintSet` grouped by ``k`` (rows of one group share
``Zc = e_k``), so the exact working-set solver of :func:`~attnsvm.svm.solve_fro_constraints`
(KKT-certified, Farkas certificate when infeasible) solves it.  Duplicate edges are one row;
an equality and its reverse (``x -> y`` in the same SCC) are one row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive
from ..constraints import ConstraintSet
from ..exceptions import InvalidInputError
from ..svm.frobenius import solve_fro_constraints
from ..svm.nuclear import solve_nuc_constraints
from ..svm.solution import INFEASIBLE, SVMSolution
from .dataset import NTPDataset
from .graph import PriorityGraph, priority_graphs

__all__ = ["GraphSVM", "graph_rows", "graph_svm_constraints", "solve_graph_svm"]


def graph_rows(eq: np.ndarray, ineq: np.ndarray, keys: np.ndarray, queries: np.ndarray,
               index: np.ndarray | None = None) -> ConstraintSet:
    """The Graph-SVM's rank-one rows from ``(graph, i, j)`` triples, equalities first.

    Row ``r`` of triple ``(g, i, j)`` is ``(keys[i] - keys[j])^T W queries[g]`` ``= 0`` for the
    ``len(eq)`` equalities (``i``, ``j`` in one SCC of graph ``g``) and ``>= 1`` for the edges
    ``i -> j`` across SCCs.  The next-token Graph-SVM (:func:`graph_svm_constraints`: tokens,
    the last token's embedding) and a decoder head's (:func:`attnsvm.probe.build_graphs`: key
    classes, augmented queries) are both built here.

    Parameters
    ----------
    eq, ineq : ndarray of int, shape (m_eq, 3) and (m_ineq, 3)
        ``(g, i, j)`` of the equality and of the inequality rows.
    keys : ndarray, shape (n_nodes, d1)
        Node ``i``'s vector.
    queries : ndarray, shape (n_graphs, d2)
        Graph ``g``'s query.
    index : ndarray of int, shape (m, 2), optional
        The rows' labels (default ``(g, r)``, ``r`` the row number).

    Returns
    -------
    ConstraintSet
        ``A`` (m, d1), ``Zc`` (m, d2), ``b`` 0 on the first ``n_eq = m_eq`` rows and 1 after.
    """
    rows = np.concatenate([np.asarray(eq, np.int64).reshape(-1, 3),
                           np.asarray(ineq, np.int64).reshape(-1, 3)])
    m, n_eq = rows.shape[0], int(np.shape(eq)[0])
    b = np.ones(m)
    b[:n_eq] = 0.0
    if index is None:
        index = np.column_stack([rows[:, 0], np.arange(m)]).astype(np.int64)
    return ConstraintSet(A=np.ascontiguousarray(keys[rows[:, 1]] - keys[rows[:, 2]]),
                         Zc=np.ascontiguousarray(queries[rows[:, 0]]), index=index, b=b,
                         n_eq=n_eq)


def graph_svm_constraints(dataset: NTPDataset, graphs: dict[int, PriorityGraph]
                          ) -> tuple[ConstraintSet, np.ndarray]:
    """The Graph-SVM rows: equalities first, then ``>= 1`` rows.

    Parameters
    ----------
    dataset : NTPDataset
    graphs : dict of int to PriorityGraph
        From :func:`~attnsvm.ntp.graph.priority_graphs` (or the local graphs).

    Returns
    -------
    constraints : ConstraintSet
        ``A[r] = e_y - e_x`` (m, d), ``Zc[r] = e_k`` (m, d), ``index[r] = (k, x)``,
        ``b = 0`` on the ``n_eq`` equalities and 1 on the rest.
    edges : ndarray of int, shape (m, 3)
        ``(k, y, x)`` of every row.

    Raises
    ------
    InvalidInputError
        When no graph has an edge (every sequence is its label repeated).
    """
    eq: list[np.ndarray] = []
    ineq: list[np.ndarray] = []
    for k, g in graphs.items():
        if g.edges.size == 0:
            continue
        y, x = g.edges[:, 0], g.edges[:, 1]
        same = g.same_scc(y, x)
        pairs = np.unique(np.sort(g.edges[same], axis=1), axis=0).reshape(-1, 2)
        eq.append(np.column_stack([np.full(len(pairs), k), pairs]))
        ineq.append(np.column_stack([np.full(int((~same).sum()), k), g.edges[~same]]))
    edges = np.concatenate(eq + ineq).astype(np.int64) if eq else np.zeros((0, 3), np.int64)
    if edges.shape[0] == 0:
        raise InvalidInputError(
            "The dataset has no priority edge: every sequence consists of its label only, so "
            "the Graph-SVM has no constraint.")
    n_eq = int(sum(len(a) for a in eq))
    cons = graph_rows(edges[:n_eq], edges[n_eq:], dataset.E, dataset.E,
                      index=edges[:, [0, 2]].copy())
    return cons, edges


@dataclass
class GraphSVM:
    """The Graph-SVM of a dataset and its certified solution.

    Attributes
    ----------
    solution : SVMSolution
        KKT-checkable (``solution.is_optimal(tol)``) or infeasible with a certificate.
    graphs : dict of int to PriorityGraph
    edges : ndarray of int, shape (m, 3)
        ``(k, y, x)`` of every constraint row (equalities first).
    n_eq, n_ineq : int
    seconds : float
        Graphs, SCCs, rows and solve together.
    """

    solution: SVMSolution
    graphs: dict[int, PriorityGraph]
    edges: np.ndarray
    n_eq: int
    n_ineq: int
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.solution.status

    @property
    def W(self) -> np.ndarray | None:
        """``W^svm`` (d, d), or None when infeasible."""
        return self.solution.W

    @property
    def cyclic(self) -> bool:
        """True when some SCC holds two or more tokens."""
        return any(g.cyclic for g in self.graphs.values())

    def sccs(self) -> dict[str, list[list[int]]]:
        """Last-token id (as a string) -> its SCCs in priority order (sorted token lists)."""
        return {str(k): [list(c) for c in g.sccs] for k, g in self.graphs.items()}


def solve_graph_svm(dataset: NTPDataset, graphs: dict[int, PriorityGraph] | None = None, *,
                    norm: str = "fro", tol: float = 1e-10) -> GraphSVM:
    """Build the token-priority graphs, their SCCs and solve the Graph-SVM.

    Parameters
    ----------
    dataset : NTPDataset
    graphs : dict, optional
        Precomputed graphs (default :func:`~attnsvm.ntp.graph.priority_graphs`; pass
        :func:`~attnsvm.ntp.graph.kept_token_graphs` for the local version).
    norm : {"fro", "nuc"}
        Frobenius (exact working-set solver) or nuclear norm.
    tol : float
        Solver tolerance (Frobenius feasibility; nuclear KKT).

    Returns
    -------
    GraphSVM

    Examples
    --------
    >>> from attnsvm.ntp import random_ntp_dataset
    >>> g = solve_graph_svm(random_ntp_dataset(6, 4, 6, 8, cyclic=True, seed=0))
    >>> g.status, g.cyclic, g.solution.is_optimal(1e-8)
    ('optimal', True, True)
    """
    t0 = time.perf_counter()
    check_choice("norm", norm, ("fro", "nuc"))
    check_positive("tol", tol)
    if graphs is None:
        graphs = priority_graphs(dataset)
    cons, edges = graph_svm_constraints(dataset, graphs)
    if norm == "fro":
        sol = solve_fro_constraints(cons, tol=tol)
    else:
        sol = solve_nuc_constraints(cons, tol=max(tol, 1e-8))
    out = GraphSVM(solution=sol, graphs=graphs, edges=edges, n_eq=cons.n_eq,
                   n_ineq=cons.m - cons.n_eq)
    out.seconds = time.perf_counter() - t0
    out.info["infeasible"] = sol.status == INFEASIBLE
    return out
