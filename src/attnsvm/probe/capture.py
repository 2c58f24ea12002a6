"""What the probe extracts from a transformer, independent of its architecture.

Convention (THEORY.md): the score of key-side token x_t for query z is ``x_t^T W z``.  A head
computes ``q = W_Q z + b_Q`` and ``k = W_K x_t + b_K`` and the score ``q^T k / sqrt(d_head)``::

    q^T k / sqrt(d_head) = x_t^T [W_K^T W_Q | W_K^T b_Q] [z; 1] / sqrt(d_head)
                           + (b_K^T W_Q z + b_K^T b_Q) / sqrt(d_head)

The last term is the same for every key of a row and cancels in the softmax, so the head's
bilinear form on the augmented query ``[z; 1]`` is exactly ``W = W_K^T [W_Q | b_Q] / sqrt(d_head)``
of shape (d, d + 1): query biases fold in exactly, key biases drop out.  With rotary position
embeddings (LLaMA-style decoders) q and k are rotated by position-dependent angles before the
product, so no single W exists; :class:`HeadForm` then holds the position-free form (the same
formula without the rotation) and ``rotary`` is True.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..exceptions import InvalidInputError
from .corpus import Sequence

__all__ = ["HeadForm", "Capture", "Adapter", "softmax_rows", "position_free_scores"]


@dataclass(frozen=True)
class HeadForm:
    """The query/key maps of one attention head.

    Attributes
    ----------
    layer, head : int
        Position of the head (counted from 0).
    Wq : numpy.ndarray, shape (d_head, d)
        Query map W_Q of the head.
    bq : numpy.ndarray, shape (d_head,)
        Query bias (zeros when the model has none).
    Wk : numpy.ndarray, shape (d_head, d)
        Key map W_K (for grouped key/value heads, the map of the group the head reads).
    bk : numpy.ndarray, shape (d_head,)
        Key bias (zeros when the model has none); it cancels in every softmax row.
    scale : float
        The model's score scale, 1 / sqrt(d_head).
    rotary : bool
        True when rotary position embeddings rotate q and k, so that ``bilinear`` is only the
        position-free approximation of the score.
    rot_dims : int
        The first ``rot_dims`` of the head's ``d_head`` dimensions are rotated (HF rotate_half
        pairing ``j <-> j + rot_dims / 2``); the rest pass through (partial rotary).
    omega : numpy.ndarray, shape (rot_dims / 2,), or None
        Angular frequencies: the model's own ``inv_freq`` (after its rope scaling).
    rope_gain : float
        The model's ``attention_scaling`` squared (its cos and sin tables are multiplied by
        ``attention_scaling``, so the rotated part of the score by its square).
    causal : bool
        Query p sees keys r <= p only.
    window : int or None
        Sliding window: query p sees keys r > p - window only.
    softcap : float or None
        Logit soft-capping ``c tanh(s / c)`` applied to the score before the softmax (Gemma 2);
        the Att-SVM is of the pre-cap score ``s`` (the map is monotone).
    qk_norm : bool
        The head normalizes q and k per token before the rotation (Qwen3, OLMo-2, Gemma 3):
        the capture holds the per-token factors (``Capture.qs``, ``Capture.ks``), the gains
        are folded into ``Wq, bq, Wk, bk``, and the head is bilinear in the rescaled inputs.
    key_aug : bool
        Key-side features are ``[x; 1]`` (the key bias does not cancel: rotary or QK-norm
        heads with a key bias).
    """

    layer: int
    head: int
    Wq: np.ndarray
    bq: np.ndarray
    Wk: np.ndarray
    bk: np.ndarray
    scale: float
    rotary: bool = False
    rot_dims: int = 0
    omega: np.ndarray | None = None
    rope_gain: float = 1.0
    causal: bool = False
    window: int | None = None
    softcap: float | None = None
    qk_norm: bool = False
    key_aug: bool = False

    def bilinear(self) -> np.ndarray:
        """The head's key-query matrix on the augmented query, shape (d, d + 1).

        ``scale * W_K^T [W_Q | b_Q]``; score differences within a row are
        ``(x_a - x_b)^T W [z; 1]`` exactly (without rotary embeddings).
        """
        wq_aug = np.concatenate([self.Wq, self.bq[:, None]], axis=1)
        return float(self.scale) * (self.Wk.T @ wq_aug)


@dataclass
class Capture:
    """Activations of one sequence at the probed layers.

    Attributes
    ----------
    sequence : Sequence
        The input (ids, special-token mask, token strings).
    X : dict of int to numpy.ndarray, shape (T, d)
        Per layer, the normalized input the attention reads (key-side tokens and queries),
        float64 copies of the model's float32 activations.
    P : dict of int to numpy.ndarray, shape (H, T, T)
        Per layer, the model's own attention probabilities, row = query, column = key.
    rope : tuple of numpy.ndarray (cos, sin), each shape (T, d_head), or None
        The rotary tables the model applied at the first probed layer (decoders).
    qs, ks : dict of int to numpy.ndarray, shape (H, T)
        QK-norm heads: per layer, query head and token, the factor ``1 / rms`` by which the
        head normalizes its query / key (the key's of the head's key/value group).
    """

    sequence: Sequence
    X: dict[int, np.ndarray] = field(default_factory=dict)
    P: dict[int, np.ndarray] = field(default_factory=dict)
    rope: tuple[np.ndarray, np.ndarray] | None = None
    qs: dict[int, np.ndarray] = field(default_factory=dict)
    ks: dict[int, np.ndarray] = field(default_factory=dict)

    def layer_only(self, layer: int) -> Capture:
        """A copy holding only ``layer``'s arrays (what one head's task needs)."""
        def pick(d: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
            return {layer: d[layer]} if layer in d else {}

        return Capture(self.sequence, pick(self.X), pick(self.P), self.rope, pick(self.qs),
                       pick(self.ks))


def softmax_rows(scores: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Row-wise softmax in float64; entries where ``mask`` is False get probability 0.

    Parameters
    ----------
    scores : numpy.ndarray, shape (T, T)
    mask : numpy.ndarray of bool, shape (T, T), optional
    """
    s = np.asarray(scores, dtype=np.float64).copy()
    if mask is not None:
        s = np.where(mask, s, -np.inf)
    s -= s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def position_free_scores(W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Scores ``x_t^T W [z_q; 1]`` of a sequence under one bilinear form, shape (T, T).

    Parameters
    ----------
    W : numpy.ndarray, shape (d, d + 1)
        Key-query matrix on the augmented query.
    X : numpy.ndarray, shape (T, d)
        Normalized inputs; every row is both a key-side token and a query.

    Returns
    -------
    numpy.ndarray, shape (T, T)
        Entry (q, t) is the score of key t for query q.
    """
    Z = np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)
    return Z @ (X @ W).T


class Adapter(ABC):
    """One architecture family: how to find its attention maps and its normalized inputs.

    Attributes
    ----------
    family : str
        Short name of the family, e.g. ``"bert"`` or ``"llama"``.
    causal : bool
        Whether a query attends only to earlier positions (decoders).
    rotary : bool
        Whether scores depend on positions through rotary embeddings.
    """

    family: str = ""
    causal: bool = False
    rotary: bool = False

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer

    @staticmethod
    def matches(model: Any) -> bool:
        """True when ``model`` has this family's module layout."""
        return False

    #: Set by each adapter: the model's layer modules, query heads per layer, token width.
    layers: Any = ()
    _H: int = 0
    _d: int = 0

    @property
    def num_layers(self) -> int:
        """Number of transformer layers."""
        return len(self.layers)

    @property
    def num_heads(self) -> int:
        """Number of attention (query) heads per layer."""
        return self._H

    @property
    def hidden_size(self) -> int:
        """Width d of the token vectors."""
        return self._d

    @property
    def max_positions(self) -> int | None:
        """Longest input the model accepts (``max_position_embeddings``), None if unknown."""
        cfg = getattr(self.model, "config", None)
        val = getattr(cfg, "max_position_embeddings", None)
        return int(val) if isinstance(val, int) and val > 0 else None

    @abstractmethod
    def head_forms(self, layer: int) -> list[HeadForm]:
        """The query/key maps of every head of ``layer``, in head order."""

    @abstractmethod
    def capture(self, sequence: Sequence, layers: list[int]) -> Capture:
        """Run the model on one sequence and collect inputs and probabilities of ``layers``."""

    def key_mask(self, T: int) -> np.ndarray:
        """Which keys each query sees, shape (T, T) bool (all, or the causal triangle)."""
        if self.causal:
            return np.tril(np.ones((T, T), dtype=bool))
        return np.ones((T, T), dtype=bool)

    def exact_scores(self, form: HeadForm, capture: Capture) -> np.ndarray:
        """The head's exact pre-cap scores from the extracted pieces, shape (T, T)
        (:func:`attnsvm.probe.form.head_scores`: rotary, QK-norm and biases included)."""
        from .form import head_scores  # a true cycle: form builds on Capture and HeadForm

        return head_scores(form, capture)

    def recompute_probs(self, form: HeadForm, capture: Capture) -> np.ndarray:
        """Attention probabilities recomputed from the extracted pieces, shape (T, T)."""
        from .form import head_probs  # a true cycle (as above)

        return head_probs(form, capture)


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Switch a transformers model to eager attention for the block (so that it returns its
    attention probabilities), then back to the implementation it had."""
    cfg = getattr(model, "config", None)
    before = getattr(cfg, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def to_numpy(t: Any) -> np.ndarray:
    """A float64 NumPy copy of a torch tensor."""
    return t.detach().to("cpu").double().numpy()


def run_with_input_hooks(
    base: Any,
    modules: dict[int, Any],
    sequence: Sequence,
    on_input: Callable[[Capture, int, tuple[Any, ...], dict[str, Any]], None],
    **model_kwargs: Any,
) -> Capture:
    """Run ``base`` on one sequence with a forward pre-hook on each attention module.

    Parameters
    ----------
    base : torch.nn.Module
        The transformer body (called with ``input_ids``, an all-ones ``attention_mask`` and
        ``output_attentions=True``).
    modules : dict of int to torch.nn.Module
        Per probed layer, the attention module whose input is the normalized hidden state.
    sequence : Sequence
    on_input : callable
        ``on_input(capture, layer, args, kwargs)`` records what the layer's module receives.
    **model_kwargs
        Extra arguments of the forward call (e.g. ``use_cache=False``).

    Returns
    -------
    Capture
        With ``P[layer]`` (H, T, T), the model's own probabilities, filled in.
    """
    import torch

    cap = Capture(sequence)

    def make_hook(li: int) -> Any:
        def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            on_input(cap, li, args, kwargs)

        return hook

    handles = [m.register_forward_pre_hook(make_hook(li), with_kwargs=True)
               for li, m in modules.items()]
    try:
        ids = torch.as_tensor(sequence.ids, dtype=torch.long)[None]
        with torch.no_grad(), eager_attention(base):
            out = base(input_ids=ids, attention_mask=torch.ones_like(ids),
                       output_attentions=True, **model_kwargs)
    finally:
        for hd in handles:
            hd.remove()
    atts = getattr(out, "attentions", None)
    for li in modules:
        if atts is None or atts[li] is None:
            raise InvalidInputError(
                "The model returned no attention probabilities (output_attentions); the probe "
                "needs them to read the head's own selections."
            )
        cap.P[li] = to_numpy(atts[li][0])
    return cap


def split_head_forms(layer: int, q_proj: Any, k_proj: Any, head_dim: int, n_heads: int,
                     n_kv_heads: int, scale: float, rotary: bool) -> list[HeadForm]:
    """Per-head query/key maps from a layer's fused projections.

    Parameters
    ----------
    layer : int
    q_proj, k_proj : torch.nn.Linear
        Weights of shape (n_heads * head_dim, d) and (n_kv_heads * head_dim, d); bias optional.
    head_dim, n_heads, n_kv_heads : int
        Query head ``h`` reads key/value head ``h // (n_heads // n_kv_heads)`` (grouped
        key/value heads; ``n_kv_heads = n_heads`` without grouping).
    scale : float
        The score scale, usually ``head_dim ** -0.5``.
    rotary : bool
        Whether the architecture rotates queries and keys by position.
    """
    Wq, Wk = to_numpy(q_proj.weight), to_numpy(k_proj.weight)
    bq = to_numpy(q_proj.bias) if q_proj.bias is not None else np.zeros(Wq.shape[0])
    bk = to_numpy(k_proj.bias) if k_proj.bias is not None else np.zeros(Wk.shape[0])
    group = n_heads // n_kv_heads
    forms = []
    for h in range(n_heads):
        sq = slice(h * head_dim, (h + 1) * head_dim)
        g = h // group
        sk = slice(g * head_dim, (g + 1) * head_dim)
        forms.append(HeadForm(layer, h, Wq[sq], bq[sq], Wk[sk], bk[sk], scale, rotary))
    return forms
