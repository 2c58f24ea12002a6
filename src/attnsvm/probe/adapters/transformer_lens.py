"""TransformerLens ``HookedTransformer`` models (extra ``lens``), in TransformerLens's own terms.

Weights as TransformerLens stores them: ``blocks[l].attn.W_Q`` (n_heads, d_model, d_head) and
``b_Q`` (n_heads, d_head); ``W_K``/``b_K`` likewise, or, with grouped key/value heads
(``n_key_value_heads``), ``_W_K`` (n_key_value_heads, d_model, d_head) and ``_b_K``, query head
``h`` reading key head ``h // (n_heads / n_key_value_heads)``.  TransformerLens computes
``q = x W_Q + b_Q`` per head, so the head's ``W_Q`` of :class:`~attnsvm.probe.capture.HeadForm`
(d_head, d) is ``W_Q[h].T``.  The score is ``q . k / attn_scale`` (``attn_scale`` of the module:
``sqrt(d_head)`` by default, times ``layer + 1`` with ``scale_attn_by_inverse_layer_idx``, 1
without ``use_attn_scale``), soft-capped with ``attn_scores_soft_cap``, masked causally
(``attention_dir``) and, for local layers, to ``window_size`` keys.

Inputs: what ``blocks[l].attn`` receives as ``query_input``/``key_input`` (captured by a forward
pre-hook): ``blocks.{l}.ln1.hook_normalized``, plus the positional embedding for
``positional_embedding_type="shortformer"``.  The model's own probabilities are read from the
hook ``blocks.{l}.attn.hook_pattern``.

Rotary (``positional_embedding_type="rotary"``): the first ``rotary_dim`` dimensions are rotated
with the tables in the module's buffers ``rotary_cos``/``rotary_sin`` (n_rows, rotary_dim),
paired ``j <-> j + rotary_dim / 2`` (GPT-NeoX style) or, with ``rotary_adjacent_pairs``,
``2j <-> 2j + 1`` (GPT-J style; the probe permutes the head's dimensions to the first pairing,
which leaves every score unchanged).  The frequencies are read from those buffers (never from a
formula) and accepted only when they reproduce them on every position used.

QK-norm (``use_qk_norm``: an RMSNorm of each head's q and k; OLMo-2: of the whole projected
vector) is analysed as for transformers' QK-norm families: in the head's normalized coordinates
``[z; 1] / rms_q`` and ``x / rms_k``, the gains folded into the maps, the norm's formula checked
against the module on a random input.

Refused up front (:class:`~attnsvm.exceptions.InvalidInputError`): ALiBi and relative position
biases, q/k norms that are no RMSNorm, ``clip_qkv``, log-n query scaling, dynamic NTK rope,
attention sinks, 4-bit or other quantized weights, dtypes other than float32/float64, and
models that are not a ``HookedTransformer``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...exceptions import InvalidInputError
from ..capture import Adapter, Capture, HeadForm, to_numpy
from ..corpus import Sequence
from ._decoder import match_rope

__all__ = ["TransformerLensAdapter", "is_hooked_transformer", "rope_from_buffers"]

_POSITIONS = ("standard", "shortformer", "rotary")


def is_hooked_transformer(model: Any) -> bool:
    """True for a TransformerLens ``HookedTransformer`` (or a subclass), without importing it."""
    return any(c.__name__ == "HookedTransformer" and c.__module__.startswith("transformer_lens")
               for c in type(model).__mro__)


def _refuse(what: str) -> InvalidInputError:
    return InvalidInputError(
        f"This TransformerLens model uses {what}, which the probe cannot analyse exactly; refused."
    )


def rope_from_buffers(cos: np.ndarray, sin: np.ndarray) -> tuple[np.ndarray, float]:
    """Frequencies and gain of rotary tables in rotate_half layout, read from the tables.

    Parameters
    ----------
    cos, sin : numpy.ndarray, shape (T, rot_dims)
        ``g cos(p omega_j)`` and ``g sin(p omega_j)`` at positions p = 0..T-1, columns j and
        ``j + rot_dims / 2`` sharing ``omega_j``.

    Returns
    -------
    (omega (rot_dims / 2,), gain g**2)
        ``omega`` modulo 2 pi (the tables are only used at integer positions), fitted by least
        squares on the unwrapped angles of every row.  Not checked here: see
        :func:`attnsvm.probe.adapters._decoder.match_rope`.
    """
    F = cos.shape[1] // 2
    c, s = cos[:, :F], sin[:, :F]
    g = float(np.mean(np.hypot(c, s)))
    if cos.shape[0] < 2 or g <= 0:
        raise InvalidInputError("The rotary tables hold fewer than two positions; refused.")
    w1 = np.mod(np.arctan2(s[1], c[1]), 2 * np.pi)  # omega mod 2 pi from position 1
    p = np.arange(cos.shape[0], dtype=np.float64)[:, None]
    ang = np.arctan2(s, c)
    ang = ang + 2 * np.pi * np.round((p * w1 - ang) / (2 * np.pi))  # unwrapped along p
    omega = (p * ang).sum(axis=0) / max(float((p**2).sum()), 1.0)
    return omega, g * g


def _width(norm: Any) -> int:
    w = getattr(norm, "w", None)
    return int(w.numel()) if w is not None else -1


def _rms_spec(norm: Any, width: int, layer: int) -> tuple[np.ndarray, float]:
    """``(gain (width,), eps)`` of a TransformerLens RMSNorm, checked against its forward."""
    import torch

    w, eps = getattr(norm, "w", None), getattr(norm, "eps", None)
    if w is None or eps is None or w.numel() != width or getattr(norm, "b", None) is not None:
        raise _refuse(f"a q/k norm {type(norm).__name__} that is no RMSNorm of width {width} "
                      f"(layer {layer})")
    x = torch.randn(3, width, generator=torch.Generator().manual_seed(0), dtype=w.dtype)
    with torch.no_grad():
        y = to_numpy(norm(x))
    xn, wn = to_numpy(x), to_numpy(w)
    r = xn / np.sqrt(np.mean(xn**2, axis=-1, keepdims=True) + float(eps)) * wn
    if np.abs(r - y).max() > 1e-5 * max(1.0, float(np.abs(y).max())):
        raise _refuse(f"a q/k norm that does not compute w * x / rms(x) (layer {layer})")
    return wn, float(eps)


def _inv_rms(v: np.ndarray, eps: float) -> np.ndarray:
    return 1.0 / np.sqrt(np.mean(v**2, axis=-1) + eps)


class TransformerLensAdapter(Adapter):
    """A ``HookedTransformer``: ``blocks[l].attn`` with TransformerLens's weights and hooks."""

    family = "transformer_lens"

    def __init__(self, model: Any, tokenizer: Any) -> None:
        super().__init__(model, tokenizer)
        cfg = model.cfg
        self.cfg = cfg
        self.layers = model.blocks
        self._H = int(cfg.n_heads)
        self._d = int(cfg.d_model)
        self._dh = int(cfg.d_head)
        pet = str(cfg.positional_embedding_type)
        if pet not in _POSITIONS:
            raise _refuse(f"positional_embedding_type '{pet}' (supported: {', '.join(_POSITIONS)})")
        self.rotary = pet == "rotary"
        for flag in ("load_in_4bit", "use_logn_attn", "use_dynamic_ntk_rope",
                     "use_attention_sinks"):
            if getattr(cfg, flag, False):
                raise _refuse(f"{flag}=True")
        if getattr(cfg, "clip_qkv", None) is not None:
            raise _refuse("clip_qkv")
        if getattr(cfg, "quantization_method", None):
            raise _refuse(f"quantization '{cfg.quantization_method}'")
        import torch

        if cfg.dtype not in (torch.float32, torch.float64):
            raise _refuse(f"dtype {cfg.dtype} (float32 or float64 expected)")
        if self.rotary and bool(getattr(cfg, "rotary_adjacent_pairs", False)):
            rd = int(cfg.rotary_dim)
            self._perm: np.ndarray | None = np.concatenate([np.arange(0, rd, 2),
                                                           np.arange(1, rd, 2)])
        else:
            self._perm = None
        dirs = set()
        #: per layer with QK-norm: (g_q (H, dh), eps_q, g_k (H_kv, dh), eps_k, per_head)
        self._norms: dict[int, tuple[np.ndarray, float, np.ndarray, float, bool]] = {}
        for li, blk in enumerate(self.layers):
            a = blk.attn
            if not hasattr(a, "W_Q") or not hasattr(a, "hook_pattern"):
                raise _refuse(f"an attention module {type(a).__name__} without W_Q / hook_pattern")
            qn, kn = getattr(a, "q_norm", None), getattr(a, "k_norm", None)
            if (qn is None) != (kn is None):
                raise _refuse(f"a norm on only one of q and k (layer {li})")
            if qn is not None:
                Hkv = int(self._maps(li)[2].shape[0])
                per_head = _width(qn) == self._dh
                gq, eq = _rms_spec(qn, self._dh if per_head else self._H * self._dh, li)
                gk, ek = _rms_spec(kn, self._dh if per_head else Hkv * self._dh, li)
                self._norms[li] = (gq.reshape(-1, self._dh), eq, gk.reshape(-1, self._dh), ek,
                                   per_head)
            dirs.add(self._direction(li))
        self.causal = dirs == {"causal"}
        if len(dirs) > 1:
            raise _refuse("causal and bidirectional layers together")
        self._rope: dict[int, tuple[np.ndarray, float]] = {}

    @staticmethod
    def matches(model: Any) -> bool:
        """A TransformerLens ``HookedTransformer``."""
        return is_hooked_transformer(model)

    @property
    def max_positions(self) -> int | None:
        """``n_ctx`` of the config."""
        n = getattr(self.cfg, "n_ctx", None)
        return int(n) if isinstance(n, int) and n > 0 else None

    def _direction(self, layer: int) -> str:
        a = self.layers[layer].attn
        return str(getattr(a, "_attention_dir_override", None) or self.cfg.attention_dir)

    def window(self, layer: int) -> int | None:
        """``window_size`` for local layers, None for global ones."""
        a = self.layers[layer].attn
        return int(self.cfg.window_size) if getattr(a, "attn_type", "global") == "local" else None

    def _rope_tables(self, layer: int, T: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The layer's rotary buffers at positions 0..T-1 (all rows without ``T``), columns in
        rotate_half order."""
        a = self.layers[layer].attn
        cos, sin = to_numpy(a.rotary_cos), to_numpy(a.rotary_sin)
        if T is not None:
            if cos.shape[0] < T:  # pragma: no cover - TransformerLens extends them in forward
                raise InvalidInputError(f"layer {layer}: the rotary tables are shorter than {T}.")
            cos, sin = cos[:T], sin[:T]
        if self._perm is not None:
            cos, sin = cos[:, self._perm], sin[:, self._perm]
        return cos, sin

    def rope(self, layer: int, T: int | None = None) -> tuple[np.ndarray, float]:
        """``(omega, gain)`` fitted to all rows of the layer's buffers (once), and checked
        against the ``T`` rows an input used (the first 64 without ``T``).

        Raises
        ------
        InvalidInputError
            The buffers are no rotation tables ``g cos(p omega)``, ``g sin(p omega)``.
        """
        if layer not in self._rope:
            self._rope[layer] = rope_from_buffers(*self._rope_tables(layer))
        omega, gain = self._rope[layer]
        cos, sin = self._rope_tables(layer, T or min(64, self.max_positions or 64))
        match_rope([("rotary_cos/rotary_sin", omega, gain ** 0.5)], cos, sin)
        return omega, gain

    def _maps(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``W_Q (H, d, dh), b_Q (H, dh), W_K (H_kv, d, dh), b_K (H_kv, dh)`` as stored (the
        grouped ``_W_K``, ``_b_K`` where the module has them)."""
        a = self.layers[layer].attn
        grouped = getattr(a, "_W_K", None) is not None
        return (to_numpy(a.W_Q), to_numpy(a.b_Q), to_numpy(a._W_K if grouped else a.W_K),
                to_numpy(a._b_K if grouped else a.b_K))

    def norm_factors(self, layer: int, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """QK-norm layers: ``(qs (H, T), ks (H, T))``, the factors ``1 / rms`` of each query
        head's q and of the k of its key head; None without QK-norm."""
        if layer not in self._norms:
            return None
        _, eq, _, ek, per_head = self._norms[layer]
        Wq, bq, Wk, bk = self._maps(layer)
        q = np.einsum("td,hde->the", X, Wq) + bq  # (T, H, dh)
        k = np.einsum("td,hde->the", X, Wk) + bk  # (T, H_kv, dh)
        T = X.shape[0]
        if per_head:
            qs, ks = _inv_rms(q, eq).T, _inv_rms(k, ek).T
        else:
            qs = np.repeat(_inv_rms(q.reshape(T, -1), eq)[None], self._H, axis=0)
            ks = np.repeat(_inv_rms(k.reshape(T, -1), ek)[None], Wk.shape[0], axis=0)
        return qs, np.repeat(ks, self._H // Wk.shape[0], axis=0)

    def head_forms(self, layer: int) -> list[HeadForm]:
        a = self.layers[layer].attn
        Wq, bq, Wk, bk = self._maps(layer)  # (H, d, dh), (H, dh), (H_kv, d, dh), (H_kv, dh)
        qk = layer in self._norms
        if qk:  # fold the gains into the maps
            gq, _, gk, _, _ = self._norms[layer]
            Wq, bq, Wk, bk = Wq * gq[:, None, :], bq * gq, Wk * gk[:, None, :], bk * gk
        group = self._H // Wk.shape[0]
        scale = 1.0 / float(a.attn_scale)
        cap = getattr(self.cfg, "attn_scores_soft_cap", None)
        softcap = float(cap) if cap is not None and cap > 0 else None
        rd = int(self.cfg.rotary_dim) if self.rotary else 0
        omega, gain = self.rope(layer) if self.rotary else (None, 1.0)
        perm = np.arange(self._dh)
        if self._perm is not None:
            perm[:rd] = self._perm
        forms = []
        for h in range(self._H):
            g = h // group
            wq, wk = Wq[h].T[perm], Wk[g].T[perm]
            bqh, bkh = bq[h][perm], bk[g][perm]
            forms.append(HeadForm(
                layer, h, wq.copy(), bqh.copy(), wk.copy(), bkh.copy(), scale, self.rotary,
                rot_dims=rd, omega=omega, rope_gain=gain, causal=self.causal,
                window=self.window(layer), softcap=softcap, qk_norm=qk,
                key_aug=bool((rd or qk) and np.any(bkh != 0)),
            ))
        return forms

    def capture(self, sequence: Sequence, layers: list[int]) -> Capture:
        import torch

        cap = Capture(sequence)

        def pre_hook(li: int) -> Any:
            def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                q = kwargs.get("query_input", args[0] if args else None)
                k = kwargs.get("key_input", args[1] if len(args) > 1 else None)
                if q is None or k is None:  # pragma: no cover - TransformerLens passes both
                    raise InvalidInputError(f"layer {li}: no query_input/key_input captured.")
                q, k = to_numpy(q[0]), to_numpy(k[0])
                if q.ndim == 3:  # use_split_qkv_input / use_attn_in: one copy per head
                    if np.ptp(q, axis=1).max(initial=0) or np.ptp(k, axis=1).max(initial=0):
                        raise _refuse(f"different per-head inputs (layer {li})")
                    q, k = q[:, 0], k[:, 0]
                if q.shape != k.shape or np.abs(q - k).max(initial=0) != 0:
                    raise _refuse(f"different query and key inputs (layer {li})")
                cap.X[li] = q
                nf = self.norm_factors(li, q)
                if nf is not None:
                    cap.qs[li], cap.ks[li] = nf

            return hook

        def pattern_hook(li: int) -> Any:
            def hook(tensor: Any, hook: Any) -> None:
                cap.P[li] = to_numpy(tensor[0])

            return hook

        handles = [self.layers[li].attn.register_forward_pre_hook(pre_hook(li), with_kwargs=True)
                   for li in layers]
        fwd = [(f"blocks.{li}.attn.hook_pattern", pattern_hook(li)) for li in layers]
        ids = torch.as_tensor(sequence.ids, dtype=torch.long)[None]
        try:
            with torch.no_grad(), self.model.hooks(fwd_hooks=fwd):
                self.model(ids, return_type=None, attention_mask=torch.ones_like(ids),
                           stop_at_layer=max(layers) + 1 if layers else 0)
        finally:
            for hd in handles:
                hd.remove()
        T = int(ids.shape[1])
        for li in layers:
            if li not in cap.P or li not in cap.X:  # pragma: no cover - hooks always fire
                raise InvalidInputError(f"layer {li}: hook_pattern did not fire.")
            if self.rotary:
                self.rope(li, T)  # the buffers reproduce the tables on these positions
        return cap
