"""The probe's targets on synthetic heads: the nuclear-norm Att-SVM and the decoder Graph-SVM.

Captures are built by hand (token vectors, attention probabilities), so the expected graphs and
SVMs follow from the definitions and are checked against independent formulations: networkx for
strongly connected components, cvxpy (written constraint by constraint, every within-component
edge an equality) for the Graph-SVM, cvxpy's nuclear norm for W_*^mm.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from attnsvm.probe.analysis import ProbeOptions, analyze_head
from attnsvm.probe.capture import Capture
from attnsvm.probe.compare import corr, random_control
from attnsvm.probe.corpus import Sequence
from attnsvm.probe.graph import build_graphs, strong_components
from attnsvm.probe.instance import build_instance
from references import cvxpy_head_graph_svm

RNG = np.random.default_rng(7)
E = RNG.standard_normal((6, 5))  # 6 token vectors, d = 5


def _peaked(T: int, choice: dict[int, list[int]], causal: bool) -> np.ndarray:
    """Probabilities (T, T): row q puts its largest mass on the positions ``choice[q]``."""
    rng = np.random.default_rng(T)
    P = np.zeros((T, T))
    for q in range(T):
        nk = q + 1 if causal else T
        s = rng.uniform(0.0, 1.0, nk)
        s[choice.get(q, [q])] = 3.0  # ties: equal scores
        P[q, :nk] = np.exp(s) / np.exp(s).sum()
    return P


def _cap(ids: list[int], choice: dict[int, list[int]], causal: bool = True) -> Capture:
    T = len(ids)
    X = E[ids]
    seq = Sequence(np.asarray(ids), np.zeros(T, dtype=bool), tuple(str(i) for i in ids))
    return Capture(seq, {0: X}, {0: np.repeat(_peaked(T, choice, causal)[None], 3, axis=0)})


#: Three decoder sequences over tokens 0..5 with repeated tokens, a contradiction (query token
#: 3 prefers 1 over 2 in one sequence and 2 over 1 in another) and a tie.
CAPS = [
    _cap([0, 1, 2, 1, 3], {1: [0], 2: [1], 3: [1], 4: [1]}),  # row 3: 1 twice, copy selected
    _cap([0, 2, 1, 3, 4], {1: [0], 2: [1], 3: [1], 4: [2, 3]}),  # row 3 (query 3): 2 over 1
    _cap([5, 4, 4, 0], {1: [0], 2: [0], 3: [1]}),  # repeated 4; row 3 selects a copy of 4
]
TOKENS = [[0, 1, 2, 1, 3], [0, 2, 1, 3, 4], [5, 4, 4, 0]]


def _expected_graphs(causal: bool = True) -> dict[int, set[tuple[int, int]]]:
    """Token-priority graphs from the token ids, straight from the definition."""
    graphs: dict[int, set[tuple[int, int]]] = {}
    for ids, cap in zip(TOKENS, CAPS, strict=True):
        P = cap.P[0][0]
        for q in range(len(ids)):
            nk = q + 1 if causal else len(ids)
            p = P[q, :nk]
            winners = {ids[t] for t in range(nk) if p[t] == p.max()}
            seen = set(ids[:nk])
            graphs.setdefault(ids[q], set()).update((w, j) for w in winners for j in seen if j != w)
    return graphs


def _token_of(vecs: np.ndarray) -> list[int]:
    return [int(np.flatnonzero(np.all(E == v, axis=1))[0]) for v in vecs]


def test_graphs_and_sccs_match_the_definition_and_networkx() -> None:
    G = build_graphs(CAPS, 0, 0, causal=True)
    key_tok = _token_of(G.keys)
    query_tok = _token_of(G.queries[:, :-1])
    assert sorted(key_tok) == list(range(6)) and G.n_nodes == 6  # repeated tokens: one node
    expected = _expected_graphs()
    got: dict[int, set[tuple[int, int]]] = {}
    for g, i, j in G.edges:
        got.setdefault(query_tok[g], set()).add((key_tok[i], key_tok[j]))
    assert got == {k: v for k, v in expected.items() if v}
    n_big = []
    for k, edges in expected.items():
        if not edges:
            continue
        ref = {frozenset(c) for c in nx.strongly_connected_components(nx.DiGraph(list(edges)))}
        g = query_tok.index(k)
        rows = G.edges[:, 0] == g
        mine: dict[int, set[int]] = {}
        for (_, i, j), (ci, cj) in zip(G.edges[rows], G.comp[rows], strict=True):
            mine.setdefault(int(ci), set()).add(key_tok[i])
            mine.setdefault(int(cj), set()).add(key_tok[j])
        assert {frozenset(c) for c in mine.values()} == ref
        n_big += [len(c) for c in ref if len(c) > 1]
    assert sorted(G.scc_sizes) == sorted(n_big) and max(n_big) >= 2  # the cycles are there
    # constraints: star equalities inside components first, then one row per edge across
    assert G.n_eq == sum(s - 1 for s in n_big) and np.all(G.b[: G.n_eq] == 0)
    across = int(np.sum(G.comp[:, 0] != G.comp[:, 1]))
    assert G.m == G.n_eq + across and np.all(G.b[G.n_eq :] == 1)


def test_strong_components_on_random_digraphs() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 5, 30):
        edges = rng.integers(0, n, size=(2 * n, 2))
        labels = strong_components(n, edges)
        g = nx.DiGraph()
        g.add_nodes_from(range(n))
        g.add_edges_from(map(tuple, edges))
        ref = {frozenset(c) for c in nx.strongly_connected_components(g)}
        mine = {frozenset(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)}
        assert mine == ref


def test_decoder_head_graph_svm_matches_cvxpy_where_att_svm_is_infeasible() -> None:
    inst = build_instance(CAPS, 0, 1, causal=True)
    assert inst.identical_keys > 0  # the repeated tokens: the Att-SVM cannot be feasible
    W_layer = [RNG.standard_normal((5, 6)) for _ in range(3)]
    rec, arrays = analyze_head(inst, W_layer, 1, 0, CAPS, True, False, ProbeOptions(), d_head=2)
    assert rec["feasible"] is False and rec["certified"] is True and rec["corr_nuc"] is None
    assert rec["nuc_status"] == "infeasible"  # same constraints: not solved twice
    assert rec["graph_status"] == "optimal" and rec["graph_feasible"] is True
    G = build_graphs(CAPS, 0, 1, causal=True)
    obj, W_ref = cvxpy_head_graph_svm(G)
    assert rec["graph_objective"] == pytest.approx(obj, rel=1e-6)
    W = arrays["W_graph"].astype(np.float64)
    assert np.abs(W - W_ref).max() < 1e-4 * np.abs(W_ref).max()
    assert rec["graph_gap"] < 1e-8
    # the saved W^svm satisfies the graph's constraints: zero inside components, >= 1 across
    vals = np.einsum("kd,de,ke->k", G.A, W, G.Zc)
    assert np.abs(vals[: G.n_eq]).max() < 1e-5 and vals[G.n_eq :].min() > 1 - 1e-5
    assert rec["graph_n_eq"] == G.n_eq and rec["graph_n_ineq"] == G.m - G.n_eq
    assert rec["graph_scc_max"] == max(G.scc_sizes)
    assert sum(int(k) * v for k, v in rec["graph_scc_sizes"].items()) == sum(G.scc_sizes)
    # the controls, recomputed
    W64 = arrays["W_graph"]
    assert rec["corr_graph"] == pytest.approx(corr(W_layer[1], W64), abs=1e-6)
    others = [corr(W64, W_layer[h]) for h in (0, 2)]
    assert rec["corr_graph_control"] == pytest.approx(np.mean(others), abs=1e-6)
    assert rec["corr_graph_random"] == pytest.approx(
        corr(W64, random_control((5, 6), 0, 0, 1)), abs=1e-6)
    # the nuclear-norm Graph-SVM (the target of a factored head), same constraints
    nuc, _ = cvxpy_head_graph_svm(G, "nuc")
    assert rec["graph_nuc_status"] in ("optimal", "inaccurate")  # the gap is checked here:
    assert rec["graph_nuc_objective"] == pytest.approx(nuc, rel=1e-6)
    Wn = arrays["W_graph_nuc"]
    assert rec["corr_graph_nuc"] == pytest.approx(corr(W_layer[1], Wn), abs=1e-6)
    assert rec["corr_graph_nuc_control"] == pytest.approx(
        np.mean([corr(Wn, W_layer[h]) for h in (0, 2)]), abs=1e-6)
    assert 1 <= rec["rank_graph_nuc"] <= 5


def test_graph_svm_of_distinct_tokens_is_the_att_svm() -> None:
    """Without repeated tokens, ties or contradictions every SCC is a single token and the
    Graph-SVM has the Att-SVM's constraints: both solutions coincide."""
    caps = [_cap([0, 1, 2, 3, 4], {1: [0], 2: [1], 3: [1], 4: [2]}, causal=False)]
    inst = build_instance(caps, 0, 0, causal=False)
    W_layer = [RNG.standard_normal((5, 6)) for _ in range(2)]
    opts = ProbeOptions(graph=True, nuclear=False)
    rec, arrays = analyze_head(inst, W_layer, 0, 0, caps, False, False, opts)
    assert rec["graph_n_eq"] == 0 and rec["graph_scc_max"] == 1
    assert rec["feasible"] and rec["graph_feasible"]
    assert rec["graph_objective"] == pytest.approx(rec["objective"], rel=1e-8)
    assert rec["corr_graph"] == pytest.approx(rec["corr_fro"], abs=1e-6)


def test_nuclear_target_matches_cvxpy_and_reports_its_controls() -> None:
    import cvxpy as cp

    rng = np.random.default_rng(11)
    d = 4
    X = [rng.standard_normal((5, d)) for _ in range(3)]
    caps = [Capture(Sequence(np.arange(5), np.zeros(5, dtype=bool), tuple("abcde")), {0: x},
                    {0: np.repeat(_peaked(5, {q: [(q + 1) % 5] for q in range(5)}, False)[None],
                                  3, axis=0)})
            for x in X]
    inst = build_instance(caps, 0, 2, causal=False)
    W_layer = [rng.standard_normal((d, d + 1)) for _ in range(3)]
    rec, arrays = analyze_head(inst, W_layer, 2, 0, caps, False, False, ProbeOptions(), d_head=4)
    # the solver's own accuracy is its tests' business; here: the answer the probe reports
    assert rec["feasible"] and rec["nuc_status"] in ("optimal", "inaccurate")
    assert rec["nuc_gap"] < 1e-6
    assert rec["rows_nuc"] == inst.n == 15 and rec["m_nuc"] == inst.m
    W = cp.Variable((d, d + 1))
    cons = [cp.sum(cp.multiply(W, np.outer(a, z))) >= 1 for a, z in zip(inst.A, inst.Zc,
                                                                        strict=True)]
    prob = cp.Problem(cp.Minimize(cp.normNuc(W)), cons)
    prob.solve(solver="CLARABEL")
    assert rec["nuc_objective"] == pytest.approx(prob.value, rel=1e-6)
    Wn = arrays["W_nuc"].astype(np.float64)
    sv = np.linalg.svd(Wn, compute_uv=False)
    assert 1 <= rec["rank_nuc"] <= d
    assert np.all(sv[rec["rank_nuc"] :] < 1e-5 * sv[0])  # the reported rank holds for W_nuc
    assert rec["corr_nuc"] == pytest.approx(corr(W_layer[2], Wn), abs=1e-6)
    assert rec["corr_nuc_control"] == pytest.approx(
        np.mean([corr(Wn, W_layer[h]) for h in (0, 1)]), abs=1e-6)
    assert rec["corr_nuc_fro"] == pytest.approx(corr(Wn, arrays["W_fro"]), abs=1e-6)
    # the head's nuclear-norm margin over the optimal one
    vals = np.einsum("kd,de,ke->k", inst.A, W_layer[2], inst.Zc)
    nuc_head = np.linalg.svd(W_layer[2], compute_uv=False).sum()
    assert rec["margin_ratio_nuc"] == pytest.approx(vals.min() * prob.value / nuc_head, rel=1e-5)
    assert rec["rank_head"] == 4 and rec["d_head"] == 4
