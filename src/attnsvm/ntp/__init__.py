"""Next-token prediction: token-priority graphs, the Graph-SVM and ``W^fin``.

Li, Huang, Ildiz, Rawat and Oymak (AISTATS 2024): trained on next-token prediction with the last
token as the query, one-layer attention converges in direction to the Graph-SVM ``W^svm`` (hard
retrieval of the label's strongly connected component) plus a finite part ``W^fin`` (soft
composition inside it)::

    from attnsvm.ntp import random_ntp_dataset, solve_graph_svm, solve_w_fin, train_ntp
    ds = random_ntp_dataset(6, 4, 6, 8, cyclic=True, seed=0)
    g = solve_graph_svm(ds)            # graphs, SCCs, certified W^svm
    fin = solve_w_fin(ds, g.graphs)    # S_fin and W^fin (Newton, gradient 1e-10)
    run = train_ntp(ds, steps=4000)    # torch imported here only
"""

from __future__ import annotations

from typing import Any

from .analysis import (
    LocalGraphSVM,
    attention,
    cosine,
    kept_tokens,
    local_graph_svm,
    ntp_metrics,
)
from .dataset import NTPDataset, random_ntp_dataset
from .fin import FinPart, fin_subspace, fit_r, solve_w_fin, top_scc_mask
from .graph import (
    PriorityGraph,
    kept_token_graphs,
    priority_graphs,
    strongly_connected_components,
)
from .svm import GraphSVM, graph_rows, graph_svm_constraints, solve_graph_svm

__all__ = [
    "NTPDataset", "random_ntp_dataset",
    "PriorityGraph", "priority_graphs", "kept_token_graphs", "strongly_connected_components",
    "GraphSVM", "graph_rows", "graph_svm_constraints", "solve_graph_svm",
    "FinPart", "fin_subspace", "solve_w_fin", "fit_r", "top_scc_mask",
    "LocalGraphSVM", "local_graph_svm", "kept_tokens", "ntp_metrics", "attention", "cosine",
    "train_ntp", "NTPRun", "NTP_LOSSES",
]


def __getattr__(name: str) -> Any:
    # the trainer imports torch: load it only when asked for
    if name in ("train_ntp", "NTPRun", "NTP_LOSSES"):
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module 'attnsvm.ntp' has no attribute {name!r}")
