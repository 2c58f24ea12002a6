"""Token-priority graphs, the Graph-SVM and W^fin against independent formulations.

SCCs against networkx, W^svm against cvxpy written from the raw (duplicated) edges of the
official code, W^fin against scipy's BFGS on a redundant parametrization of S_fin.
"""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from attnsvm.ntp import (
    NTPDataset,
    fin_subspace,
    priority_graphs,
    random_ntp_dataset,
    solve_graph_svm,
    solve_w_fin,
    strongly_connected_components,
)
from references import cvxpy_graph_svm, tarjan_order

nx = pytest.importorskip("networkx")


def nx_sccs(n_nodes, edges):
    G = nx.DiGraph()
    G.add_nodes_from(range(n_nodes))
    G.add_edges_from(map(tuple, edges))
    return {frozenset(c) for c in nx.strongly_connected_components(G)}


@pytest.mark.parametrize("seed", range(8))
def test_sccs_match_networkx(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    m = int(rng.integers(0, 3 * n))
    edges = rng.integers(0, n, size=(m, 2))
    comp = strongly_connected_components(n, edges)
    ours = {frozenset(np.flatnonzero(comp == c).tolist()) for c in np.unique(comp)}
    assert ours == nx_sccs(n, edges)
    assert np.all(comp[edges[:, 0]] <= comp[edges[:, 1]])  # topological (priority) order
    assert sorted(np.unique(comp).tolist()) == list(range(len(ours)))


def test_scc_numbering_is_reversed_tarjan_order():
    """The numbering W^fin and the JSON follow: Tarjan's emission order, reversed, for sorted,
    unsorted and repeated edges (an independent recursive Tarjan in references.py)."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(1, 25))
        edges = rng.integers(0, n, size=(int(rng.integers(0, 3 * n + 1)), 2))
        for e in (edges, np.unique(edges, axis=0).reshape(-1, 2)):
            assert strongly_connected_components(n, e).tolist() == tarjan_order(n, e)
    assert strongly_connected_components(0, np.zeros((0, 2), dtype=int)).tolist() == []


def test_sccs_iterative_on_deep_graphs():
    n = 20000  # far beyond Python's recursion limit
    chain = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    assert strongly_connected_components(n, chain).tolist() == list(range(n))
    ring = np.concatenate([chain, [[n - 1, 0]]])
    assert set(strongly_connected_components(n, ring).tolist()) == {0}


def datasets():
    out = []
    for seed in range(3):
        out.append(random_ntp_dataset(10, 4, 6, 5, cyclic=True, seed=seed))
        out.append(random_ntp_dataset(10, 4, 6, 5, cyclic=False, seed=seed))
    return out


@pytest.mark.parametrize("ds", datasets(), ids=lambda d: f"{d!r}")
def test_graphs_match_networkx(ds):
    graphs = priority_graphs(ds)
    for k, g in graphs.items():
        rows = np.flatnonzero(ds.queries == k)
        raw = [(ds.labels[i], x) for i in rows for x in ds.tokens[i] if x != ds.labels[i]]
        G = nx.DiGraph()
        G.add_nodes_from(np.unique(ds.tokens[rows]).tolist())
        G.add_edges_from(raw)
        assert {frozenset(c) for c in g.sccs} == {frozenset(c) for c in
                                                  nx.strongly_connected_components(G)}
        assert sorted(map(tuple, g.edges.tolist())) == sorted(G.edges)
        assert all(g.component[y] <= g.component[x] for y, x in raw)


@pytest.mark.parametrize("ds", datasets(), ids=lambda d: f"{d!r}")
def test_graph_svm_matches_cvxpy(ds):
    g = solve_graph_svm(ds)
    status, W_ref = cvxpy_graph_svm(ds)
    assert status == "optimal" and g.status == "optimal"
    assert g.solution.is_optimal(1e-8)
    np.testing.assert_allclose(g.W, W_ref, atol=1e-6 * max(1.0, np.abs(W_ref).max()))
    # equalities hold exactly; no duplicate rows
    v = g.solution.values
    assert np.abs(v[:g.n_eq]).max(initial=0.0) < 1e-9
    assert len({tuple(r) for r in g.edges.tolist()}) == g.edges.shape[0]
    # W^svm is orthogonal to S_fin
    B = fin_subspace(ds, g.graphs)
    assert np.abs(np.einsum("bij,ij->b", B, g.W)).max(initial=0.0) < 1e-9
    assert (g.n_eq > 0) == g.cyclic == (B.shape[0] > 0)


def test_graph_svm_invariances():
    ds = random_ntp_dataset(12, 4, 7, 5, cyclic=True, seed=4)
    g = solve_graph_svm(ds)
    f = solve_w_fin(ds, g.graphs)
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    rot = NTPDataset(ds.E @ Q, ds.tokens, ds.labels)  # rotated embeddings
    gr, fr = solve_graph_svm(rot), None
    fr = solve_w_fin(rot, gr.graphs)
    np.testing.assert_allclose(gr.W, Q.T @ g.W @ Q, atol=1e-8)
    np.testing.assert_allclose(fr.W_fin, Q.T @ f.W_fin @ Q, atol=1e-7)
    perm = rng.permutation(ds.K)  # relabel the vocabulary: new id perm[old id]
    inv = np.argsort(perm)
    rel = NTPDataset(ds.E[inv], perm[ds.tokens], perm[ds.labels])
    gp = solve_graph_svm(rel)
    np.testing.assert_allclose(gp.W, g.W, atol=1e-8)
    np.testing.assert_allclose(solve_w_fin(rel, gp.graphs).W_fin, f.W_fin, atol=1e-7)


def test_infeasible_with_certificate():
    # e_2 is the midpoint of e_0 and e_1: 0 and 1 cannot both beat 2 by a margin under query 3
    E = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.3, -1.0]])
    ds = NTPDataset(E, [[0, 2, 3], [1, 2, 3]], [0, 1])
    g = solve_graph_svm(ds)
    assert g.status == "infeasible" and g.W is None
    assert g.solution.is_certified_infeasible(1e-10)


def fin_loss_reference(ds, graphs, W):
    """The top-SCC loss from its definition, on the full W."""
    total = 0.0
    for i in range(ds.n):
        k, y, row = ds.queries[i], ds.labels[i], ds.tokens[i]
        comp = graphs[int(k)].component
        top = comp[row] == comp[y]
        a = ds.E[row] @ W @ ds.E[k]
        a_top = a[top]
        total += np.logaddexp.reduce(a_top) - np.logaddexp.reduce(a[row == y])
    return total / ds.n


@pytest.mark.parametrize("seed", range(4))
def test_w_fin_matches_scipy(seed):
    from scipy.optimize import minimize

    ds = random_ntp_dataset(14, 4, 6, 5, cyclic=True, seed=seed)
    graphs = priority_graphs(ds)
    fin = solve_w_fin(ds, graphs)
    assert fin.grad_norm <= 1e-10
    # redundant generators (e_i - e_j) e_k^T over all ordered pairs of every SCC
    gens = np.array([np.outer(ds.E[i] - ds.E[j], ds.E[k]) for k, g in graphs.items()
                     for c in g.sccs for i in c for j in c if i != j])
    res = minimize(lambda c: fin_loss_reference(ds, graphs, np.tensordot(c, gens, 1)),
                   np.zeros(len(gens)), method="BFGS", options={"gtol": 1e-11, "maxiter": 5000})
    W_ref = np.tensordot(res.x, gens, 1)
    assert fin_loss_reference(ds, graphs, fin.W_fin) <= res.fun + 1e-12
    assert fin.loss == pytest.approx(fin_loss_reference(ds, graphs, fin.W_fin), abs=1e-12)
    np.testing.assert_allclose(fin.W_fin, W_ref, atol=1e-5)
    np.testing.assert_allclose(fin.project(fin.W_fin), fin.W_fin, atol=1e-12)


def test_acyclic_has_no_finite_part():
    ds = random_ntp_dataset(10, 4, 6, 5, cyclic=False, seed=1)
    g = solve_graph_svm(ds)
    fin = solve_w_fin(ds, g.graphs)
    assert g.n_eq == 0 and fin.dim == 0 and not fin.W_fin.any()


@pytest.mark.parametrize("name", ["attnsvm.ntp.graph", "attnsvm.ntp.svm", "attnsvm.ntp.dataset"])
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_nuclear_graph_svm_matches_cvxpy():
    import cvxpy as cp

    ds = random_ntp_dataset(8, 4, 6, 4, cyclic=True, seed=1)
    g = solve_graph_svm(ds, norm="nuc")
    assert g.status == "optimal" and g.solution.is_optimal(1e-6)
    cons = g.solution.constraints
    W = cp.Variable((ds.d, ds.d))
    vals = cp.sum(cp.multiply(cons.A @ W, cons.Zc), axis=1)
    prob = cp.Problem(cp.Minimize(cp.normNuc(W)), [vals[:g.n_eq] == 0, vals[g.n_eq:] >= 1])
    prob.solve(solver="CLARABEL")
    assert g.solution.objective == pytest.approx(prob.value, rel=1e-5)


def test_kept_token_graphs_and_local_svm():
    from attnsvm.ntp import kept_token_graphs, kept_tokens, local_graph_svm

    ds = random_ntp_dataset(8, 4, 6, 6, cyclic=True, seed=3)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(ds.T, 0.3), size=ds.n)
    kept = kept_tokens(probs, ds, threshold=0.05)
    assert kept[np.arange(ds.n), probs.argmax(1)].all()
    np.testing.assert_array_equal(kept, (probs > 0.05) | (probs == probs.max(1, keepdims=True)))
    graphs = kept_token_graphs(ds, kept)
    for k, g in graphs.items():
        rows = np.flatnonzero(ds.queries == k)
        G = nx.DiGraph()
        G.add_nodes_from(np.unique(ds.tokens[rows]).tolist())
        G.add_edges_from((c, x) for i in rows for c in ds.tokens[i][kept[i]]
                         for x in ds.tokens[i] if x != c)
        assert {frozenset(c) for c in g.sccs} == {frozenset(c) for c in
                                                  nx.strongly_connected_components(G)}
        for i in rows:  # the kept tokens of a sequence share one SCC
            assert len({int(g.component[c]) for c in ds.tokens[i][kept[i]]}) == 1
    loc = local_graph_svm(ds, probs, threshold=0.05)
    if loc.svm.W is not None:
        assert loc.svm.solution.is_optimal(1e-8)
        eq = {(k, *sorted(e)) for k, g in graphs.items() for e in g.edges.tolist()
              if g.component[e[0]] == g.component[e[1]]}
        assert loc.svm.n_eq == len(eq)  # one row per unordered pair inside an SCC
        assert sorted(map(tuple, loc.svm.edges[:loc.svm.n_eq].tolist())) == sorted(eq)
        assert loc.corr_perp(loc.svm.W) == pytest.approx(1.0, abs=1e-9)
    else:
        assert loc.svm.solution.is_certified_infeasible(1e-8)


@pytest.mark.slow
def test_benchmark_size_matches_cvxpy():
    ds = random_ntp_dataset(200, 6, 40, 24, seed=0)
    g = solve_graph_svm(ds)
    status, W_ref = cvxpy_graph_svm(ds)
    assert status == "optimal" and g.solution.is_optimal(1e-8)
    np.testing.assert_allclose(g.W, W_ref, atol=1e-5 * np.abs(W_ref).max())


def repeated_token_dataset(seed):
    """Sequences drawn with replacement: repeated tokens, labels with several copies."""
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((5, 4))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    tok = rng.integers(0, 5, size=(12, 5))
    return NTPDataset(E, tok, tok[np.arange(12), rng.integers(0, 5, 12)])


@pytest.mark.parametrize("seed", range(3))
def test_repeated_tokens_svm_and_w_fin(seed):
    from scipy.optimize import minimize

    ds = repeated_token_dataset(seed)
    g = solve_graph_svm(ds)
    status, W_ref = cvxpy_graph_svm(ds)
    assert status == "optimal" and g.solution.is_optimal(1e-8)
    np.testing.assert_allclose(g.W, W_ref, atol=1e-6 * np.abs(W_ref).max())
    fin = solve_w_fin(ds, g.graphs)
    assert fin.dim > 0 and np.linalg.norm(fin.W_fin) > 0.1
    gens = np.array([np.outer(ds.E[i] - ds.E[j], ds.E[k]) for k, gr in g.graphs.items()
                     for c in gr.sccs for i in c for j in c if i != j])
    res = minimize(lambda c: fin_loss_reference(ds, g.graphs, np.tensordot(c, gens, 1)),
                   np.zeros(len(gens)), method="BFGS", options={"gtol": 1e-11, "maxiter": 5000})
    np.testing.assert_allclose(fin.W_fin, np.tensordot(res.x, gens, 1), atol=1e-5)
