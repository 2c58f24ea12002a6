"""Token-priority graphs, their strongly connected components and the priority order.

For every last token ``k`` the graph ``G^(k)`` has the tokens of the sequences ending in ``k`` as
nodes and an edge ``y -> x`` ("y has priority over x") for each such sequence with label ``y``
and each token ``x != y`` of it.  Its strongly connected components (SCCs) are classes of equal
priority; the condensation is acyclic and its topological order is the priority order.  The
local version (:func:`kept_token_graphs`) puts an edge ``c -> x`` from every token ``c`` that
gradient descent keeps to every other token ``x`` of the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components, depth_first_order

from .._validation import as_int_array
from ..exceptions import InvalidInputError

if TYPE_CHECKING:  # annotations only: the dataset module builds graphs (label_graphs)
    from .dataset import NTPDataset

__all__ = ["PriorityGraph", "priority_graphs", "kept_token_graphs",
           "strongly_connected_components"]


def strongly_connected_components(n_nodes: int, edges: np.ndarray) -> np.ndarray:
    """SCCs of a directed graph, numbered in a fixed topological order of the condensation.

    The components are :func:`scipy.sparse.csgraph.connected_components` with
    ``connection="strong"``.  Their order is the reverse postorder of one depth-first search
    (:func:`scipy.sparse.csgraph.depth_first_order`): the search starts from the nodes
    ``0, 1, ..., n_nodes - 1`` in turn and follows the edges of a node in the order given;
    components are numbered by decreasing finishing time of their first visited node.  That
    is the order Tarjan's algorithm emits, reversed (the order of earlier versions, kept because
    ``W^fin``, the ``ntp`` JSON and the probe's equality rows follow it).

    Parameters
    ----------
    n_nodes : int
        Nodes are ``0 .. n_nodes - 1``.
    edges : array_like of int, shape (m, 2)
        Directed edges ``(u, v)``.

    Returns
    -------
    ndarray of int, shape (n_nodes,)
        Component of every node, numbered in a topological order of the condensation: every
        edge ``u -> v`` has ``comp[u] <= comp[v]`` (equal exactly inside a component).

    Examples
    --------
    >>> strongly_connected_components(4, np.array([[0, 1], [1, 0], [1, 2], [3, 2]])).tolist()
    [1, 1, 2, 0]
    """
    edges = as_int_array("edges", np.asarray(edges).reshape(-1, 2), 2, (None, 2), low=0,
                         high=max(n_nodes, 1))
    if n_nodes == 0:
        return np.zeros(0, dtype=np.int64)
    ones = np.ones(len(edges))
    ncomp, labels = connected_components(
        csr_array((ones, (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes)),
        directed=True, connection="strong")
    # one search over the whole graph: a super-root n_nodes with edges to 0 .. n_nodes - 1
    src = np.concatenate([edges[:, 0], np.full(n_nodes, n_nodes)])
    dst = np.concatenate([edges[:, 1], np.arange(n_nodes)])
    by_src = np.argsort(src, kind="stable")  # a node's edges keep their given order
    indptr = np.searchsorted(src[by_src], np.arange(n_nodes + 2))
    forest = csr_array((np.ones(len(src)), dst[by_src], indptr), shape=(n_nodes + 1,) * 2)
    pre, parent = depth_first_order(forest, n_nodes, directed=True, return_predecessors=True)
    pre = pre[1:]  # preorder of the real nodes
    rank = np.empty(n_nodes, dtype=np.int64)
    rank[pre] = np.arange(n_nodes)
    size = np.ones(n_nodes + 1, dtype=np.int64)  # subtree sizes
    depth = np.full(n_nodes + 1, -1, dtype=np.int64)  # the super-root at depth -1
    par = parent.tolist()
    for v in pre.tolist():
        depth[v] = depth[par[v]] + 1
    for v in pre[::-1].tolist():
        size[par[v]] += size[v]
    # nodes finished before v: those visited earlier and not its ancestors, plus its subtree
    finish = rank + size[:n_nodes] - 1 - depth[:n_nodes]
    first = np.full(ncomp, n_nodes, dtype=np.int64)
    np.minimum.at(first, labels, rank)  # the first visited node of each component
    number = np.empty(ncomp, dtype=np.int64)
    number[np.argsort(-finish[pre[first]], kind="stable")] = np.arange(ncomp)
    return number[labels]


@dataclass(frozen=True, eq=False)
class PriorityGraph:
    """The token-priority graph of one last token.

    Attributes
    ----------
    query : int
        The last token ``k``.
    nodes : ndarray of int, shape (p,)
        Sorted token ids of the graph.
    edges : ndarray of int, shape (m, 2)
        Distinct edges ``(y, x)``: ``y`` has priority over ``x``.
    component : ndarray of int, shape (K,)
        SCC of every token (``-1`` off the graph), numbered in priority order: 0 is a top SCC
        and every edge ``y -> x`` has ``component[y] <= component[x]``.
    sccs : list of list of int
        The SCCs in that order, each a sorted list of token ids.
    """

    query: int
    nodes: np.ndarray
    edges: np.ndarray
    component: np.ndarray
    sccs: list[list[int]]

    @property
    def cyclic(self) -> bool:
        """True when some SCC holds two or more tokens."""
        return any(len(c) > 1 for c in self.sccs)

    def same_scc(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether tokens ``a[j]`` and ``b[j]`` lie in one SCC (bool, broadcast shape)."""
        ca, cb = self.component[np.asarray(a)], self.component[np.asarray(b)]
        return (ca == cb) & (ca >= 0)


def _graphs(queries: np.ndarray, src: np.ndarray, dst: np.ndarray, node_q: np.ndarray,
            node_t: np.ndarray, K: int) -> dict[int, PriorityGraph]:
    """Graphs from edge lists ``(queries[e], src[e] -> dst[e])`` and node pairs ``(q, token)``."""
    out: dict[int, PriorityGraph] = {}
    for k in np.unique(node_q).tolist():
        nodes = np.unique(node_t[node_q == k])
        sel = queries == k
        edges = np.unique(np.stack([src[sel], dst[sel]], 1).reshape(-1, 2), axis=0)
        local = np.full(K, -1, dtype=np.int64)
        local[nodes] = np.arange(nodes.size)
        comp_local = strongly_connected_components(nodes.size, local[edges])
        component = np.full(K, -1, dtype=np.int64)
        component[nodes] = comp_local
        sccs = [sorted(nodes[comp_local == c].tolist()) for c in range(int(comp_local.max()) + 1)]
        out[int(k)] = PriorityGraph(query=int(k), nodes=nodes, edges=edges, component=component,
                                    sccs=sccs)
    return out


def priority_graphs(dataset: NTPDataset) -> dict[int, PriorityGraph]:
    """The token-priority graph ``G^(k)`` of every last token ``k`` of the dataset.

    Returns
    -------
    dict of int to PriorityGraph
        Keyed by last-token id, in increasing order.
    """
    return label_graphs(dataset.tokens, dataset.labels, dataset.K)


def label_graphs(tokens: np.ndarray, labels: np.ndarray, K: int) -> dict[int, PriorityGraph]:
    """The graphs of :func:`priority_graphs` from raw ``tokens`` (n, T), ``labels`` (n,) in
    ``[0, K)``."""
    n, T = tokens.shape
    q = np.repeat(tokens[:, -1], T)
    y = np.repeat(labels, T)
    x = tokens.ravel()
    keep = x != y
    return _graphs(q[keep], y[keep], x[keep], q, x, K)


def kept_token_graphs(dataset: NTPDataset, kept: np.ndarray) -> dict[int, PriorityGraph]:
    """Local graphs: an edge ``c -> x`` for every kept token ``c`` and other token ``x`` of
    a sequence (the tokens GD keeps share priority; they beat the rest).

    Parameters
    ----------
    dataset : NTPDataset
    kept : array_like of bool, shape (n, T)
        Positions whose token GD keeps; every sequence must keep one.

    Returns
    -------
    dict of int to PriorityGraph
    """
    kept = np.asarray(kept)
    if kept.shape != dataset.tokens.shape or kept.dtype != bool:
        raise InvalidInputError(
            f"The 'kept' array must be boolean of shape {dataset.tokens.shape}. Got "
            f"{kept.dtype} of shape {kept.shape} instead.")
    empty = np.flatnonzero(~kept.any(axis=1))
    if empty.size:
        raise InvalidInputError(
            f"The 'kept' array must keep at least one token per sequence. Sequence "
            f"{int(empty[0])} keeps none.")
    tok = dataset.tokens
    n, T = tok.shape
    i, t = np.nonzero(kept)  # kept positions
    c = tok[i, t]
    # every kept token c of row i against every token of row i
    q = np.repeat(tok[i, -1], T)
    src = np.repeat(c, T)
    dst = tok[i].ravel()
    ok = dst != src
    return _graphs(q[ok], src[ok], dst[ok], np.repeat(tok[:, -1], T), tok.ravel(), dataset.K)
