"""Comparing a trained ``W`` with the Graph-SVM: ``W(t) ~ R(t) W^svm + W^fin``.

:func:`ntp_metrics` measures, for every recorded iterate, the quantities of the paper's
figures: ``cos(W, W^svm)``, ``R(t)`` fitted at that step and ``cos(W, R W^svm + W^fin)``,
the cosine of the part of ``W`` orthogonal to ``S_fin`` with ``W^svm``,
``||P_fin W - W^fin||`` and the attention on the top SCC.  :func:`local_graph_svm` builds
the Graph-SVM of the tokens gradient descent actually keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array, check_positive
from ..exceptions import InvalidInputError
from .dataset import NTPDataset
from .fin import FinPart, fin_subspace, fit_r, top_scc_mask
from .graph import kept_token_graphs
from .svm import GraphSVM, solve_graph_svm

__all__ = ["attention", "cosine", "ntp_metrics", "kept_tokens", "LocalGraphSVM",
           "local_graph_svm"]


def cosine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``<A, B> / (||A|| ||B||)`` over the last two axes (NaN where either is zero)."""
    num = np.einsum("...ij,...ij->...", A, B)
    den = np.linalg.norm(A, axis=(-2, -1)) * np.linalg.norm(B, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def attention(dataset: NTPDataset, W: np.ndarray) -> np.ndarray:
    """``s_i = softmax(X_i W e_{k_i})`` for one or many ``W`` (..., d, d) -> (..., n, T)."""
    X = dataset.X
    q = X[:, -1]  # (n, d)
    a = np.einsum("ntd,...de,ne->...nt", X, W, q)
    a -= a.max(-1, keepdims=True)
    s = np.exp(a)
    return s / s.sum(-1, keepdims=True)


def ntp_metrics(dataset: NTPDataset, W: np.ndarray, gsvm: GraphSVM, fin: FinPart
                ) -> dict[str, np.ndarray]:
    """Alignment of iterates ``W`` (..., d, d) with ``R W^svm + W^fin``, ``R`` fitted per iterate.

    Returns
    -------
    dict of str to ndarray, each of shape (...)
        ``corr_svm`` = cos(W, W^svm); ``R``; ``corr_svm_fin`` = cos(W, R W^svm + W^fin);
        ``corr_perp`` = cos(W - P_fin W, W^svm); ``fin_gap`` = ||P_fin W - W^fin||;
        ``top_scc_attention`` (mean over sequences of the attention on the label's SCC);
        ``norm`` = ||W||.
    """
    W = as_float_array("W", W, np.ndim(W))
    Ws, Wf = gsvm.W, fin.W_fin
    if Ws is None:
        raise InvalidInputError("The Graph-SVM is infeasible: there is no W^svm to compare with.")
    R = fit_r(W, Ws, Wf)
    target = R[..., None, None] * Ws + Wf
    PW = fin.project(W)
    top = top_scc_mask(dataset, gsvm.graphs)
    return {
        "corr_svm": cosine(W, np.broadcast_to(Ws, W.shape)),
        "R": R,
        "corr_svm_fin": cosine(W, target),
        "corr_perp": cosine(W - PW, np.broadcast_to(Ws, W.shape)),
        "fin_gap": np.linalg.norm(PW - Wf, axis=(-2, -1)),
        "top_scc_attention": (attention(dataset, W) * top).sum(-1).mean(-1),
        "norm": np.linalg.norm(W, axis=(-2, -1)),
    }


def kept_tokens(probs: np.ndarray, dataset: NTPDataset, threshold: float = 1e-2) -> np.ndarray:
    """Positions whose token's total attention (over its copies) exceeds ``threshold``.

    Parameters
    ----------
    probs : ndarray, shape (n, T)
        Final attention probabilities.
    threshold : float
        The official code's ``C_thres = 1e-2``.

    Returns
    -------
    ndarray of bool, shape (n, T)
        At least the most attended token of each sequence.
    """
    probs = as_float_array("probs", probs, 2, (dataset.n, dataset.T))
    check_positive("threshold", threshold)
    tok = dataset.tokens
    same = tok[:, :, None] == tok[:, None, :]  # (n, T, T)
    mass = np.einsum("nts,ns->nt", same, probs)  # attention on each position's token
    kept = mass > threshold
    kept[np.arange(dataset.n), np.argmax(mass, axis=1)] = True
    return kept


@dataclass
class LocalGraphSVM:
    """The Graph-SVM of the tokens GD keeps.

    Attributes
    ----------
    kept : ndarray of bool, shape (n, T)
    svm : GraphSVM
    basis : ndarray, shape (r, d, d)
        Orthonormal basis of the local ``S_fin`` (the kept tokens that share an SCC).
    threshold : float
    """

    kept: np.ndarray
    svm: GraphSVM
    basis: np.ndarray
    threshold: float

    def corr_perp(self, W: np.ndarray) -> np.ndarray:
        """``cos(W - P W, W^svm_loc)`` with ``P`` the projection on the local ``S_fin``."""
        if self.svm.W is None:
            raise InvalidInputError(
                "The local Graph-SVM is infeasible: there is no W^svm to compare with.")
        PW = (np.einsum("...b,bij->...ij", np.einsum("bij,...ij->...b", self.basis, W),
                        self.basis) if self.basis.shape[0] else np.zeros_like(W))
        return cosine(W - PW, np.broadcast_to(self.svm.W, np.shape(W)))


def local_graph_svm(dataset: NTPDataset, probs: np.ndarray, threshold: float = 1e-2
                    ) -> LocalGraphSVM:
    """Graph-SVM built from the kept tokens: edges ``c -> x`` from every kept ``c``.

    The kept tokens of a sequence share priority (one SCC when several are kept); they have
    priority over the rest.  No local ``W^fin`` is formed: its loss would be that of the run
    (the local experiments train with other losses than the log-loss of ``W^fin``).

    Parameters
    ----------
    dataset : NTPDataset
    probs : ndarray, shape (n, T)
        Final attention probabilities of a run.
    threshold : float

    Returns
    -------
    LocalGraphSVM
    """
    kept = kept_tokens(probs, dataset, threshold)
    graphs = kept_token_graphs(dataset, kept)
    svm = solve_graph_svm(dataset, graphs)
    return LocalGraphSVM(kept=kept, svm=svm, basis=fin_subspace(dataset, graphs),
                         threshold=threshold)
