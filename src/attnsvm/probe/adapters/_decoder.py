"""What every rotary decoder adapter shares: the rotary frequencies, the mask, the capture.

A decoder layer's attention module receives the (normalized) residual stream ``x`` and the
rotary tables ``(cos, sin)`` of the positions (``position_embeddings``).  The probe reads the
frequencies from the model's own rotary embedding module (its ``inv_freq`` buffer, after rope
scaling, and ``attention_scaling``) and accepts them only when they reproduce the tables the
layer actually received (``cos[p, j] = s cos(p omega_j)``, duplicated for the rotate_half
pairing); otherwise the model is refused (:class:`~attnsvm.exceptions.InvalidInputError`),
never analysed with a formula of ours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...exceptions import InvalidInputError
from ..capture import Adapter, Capture, HeadForm, run_with_input_hooks, to_numpy
from ..corpus import Sequence

__all__ = ["RotaryDecoderAdapter", "rope_candidates", "match_rope", "model_type"]


def model_type(model: Any) -> str:
    """The ``model_type`` of a transformers model's config ('' when absent)."""
    return str(getattr(getattr(model, "config", None), "model_type", "") or "")


def rope_candidates(model: Any) -> list[tuple[str, np.ndarray, float]]:
    """Every ``*inv_freq`` buffer of the model with its ``*attention_scaling``.

    Returns
    -------
    list of (name, inv_freq (F,), attention_scaling)
    """
    out = []
    for mname, mod in model.named_modules():
        for bname, buf in mod.named_buffers(recurse=False):
            if not bname.endswith("inv_freq") or "original" in bname:
                continue
            prefix = bname[: -len("inv_freq")]
            s = getattr(mod, f"{prefix}attention_scaling", None)
            if s is None:
                s = getattr(mod, "attention_scaling", 1.0)
            out.append((f"{mname}.{bname}", to_numpy(buf).ravel(), float(s or 1.0)))
    return out


def match_rope(cands: list[tuple[str, np.ndarray, float]], cos: np.ndarray, sin: np.ndarray
               ) -> tuple[np.ndarray, float]:
    """The candidate ``(inv_freq, attention_scaling)`` that reproduces the tables.

    Parameters
    ----------
    cands : list of (name, inv_freq, scaling)
    cos, sin : numpy.ndarray, shape (T, rot_dims)
        The tables the layer received (positions 0..T-1).

    Returns
    -------
    (omega (rot_dims / 2,), gain = scaling**2)

    Raises
    ------
    InvalidInputError
        No candidate reproduces them (to float32 rounding).
    """
    T, rd = cos.shape
    F = rd // 2
    pos = np.arange(T, dtype=np.float64)[:, None]
    tol = 2e-5 + 2e-7 * T
    for _name, omega, s in cands:
        if omega.shape[0] != F or rd != 2 * F:
            continue
        c, si = s * np.cos(pos * omega), s * np.sin(pos * omega)
        want = np.concatenate([c, c], axis=1), np.concatenate([si, si], axis=1)
        if max(np.abs(want[0] - cos).max(), np.abs(want[1] - sin).max()) <= tol * max(1.0, s):
            return omega.astype(np.float64), float(s) ** 2
    raise InvalidInputError(
        "The rotary tables the model applies do not match any inv_freq of its rotary embedding "
        "module (a rope variant the probe cannot analyse exactly); refused."
    )


class RotaryDecoderAdapter(Adapter):
    """Decoders with ``layers[i].self_attn.{q_proj, k_proj}`` and rotary embeddings.

    Subclasses set :attr:`model_types` and may override :meth:`rot_dims`, :meth:`gains` and
    :meth:`_check`.
    """

    family = "decoder"
    causal = True
    rotary = True
    model_types: tuple[str, ...] = ()

    def __init__(self, model: Any, tokenizer: Any) -> None:
        super().__init__(model, tokenizer)
        self.base = getattr(model, "base_model", model)
        self.layers = self.base.layers
        cfg = model.config
        self._H = int(cfg.num_attention_heads)
        self._Hkv = int(getattr(cfg, "num_key_value_heads", None) or self._H)
        self._d = int(cfg.hidden_size)
        self._dh = int(getattr(cfg, "head_dim", None) or self._d // self._H)
        self._rope: dict[int, tuple[np.ndarray, float]] = {}
        self._cands = rope_candidates(model)
        for li in range(len(self.layers)):
            self._check(li)

    @classmethod
    def matches(cls, model: Any) -> bool:
        """True for the family's ``model_type``."""
        return model_type(model) in cls.model_types

    def attn(self, layer: int) -> Any:
        """The attention module of ``layer``."""
        return self.layers[layer].self_attn

    def _check(self, layer: int) -> None:
        """Refuse what the probe cannot analyse exactly (raise InvalidInputError)."""
        sa = self.attn(layer)
        if not getattr(sa, "is_causal", True):
            raise InvalidInputError(
                f"layer {layer} of this {model_type(self.model)} model attends bidirectionally; "
                "the probe analyses causal decoders of this family only."
            )

    def rot_dims(self, layer: int) -> int:
        """Rotated dimensions of each head (all by default)."""
        return self._dh

    def projections(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``Wq (H dh, d), bq, Wk (H_kv dh, d), bk`` of the layer, float64."""
        sa = self.attn(layer)
        Wq, Wk = to_numpy(sa.q_proj.weight), to_numpy(sa.k_proj.weight)
        bq = to_numpy(sa.q_proj.bias) if sa.q_proj.bias is not None else np.zeros(Wq.shape[0])
        bk = to_numpy(sa.k_proj.bias) if sa.k_proj.bias is not None else np.zeros(Wk.shape[0])
        return Wq, bq, Wk, bk

    def window(self, layer: int) -> int | None:
        """Sliding window of the layer (the module's ``sliding_window``), None without."""
        w = getattr(self.attn(layer), "sliding_window", None)
        return int(w) if w else None

    def gains(self, layer: int) -> tuple[np.ndarray, np.ndarray] | None:
        """QK-norm gains ``(g_q (H dh,), g_k (H_kv dh,))``; None without QK-norm."""
        return None

    def norm_factors(self, layer: int, X: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """QK-norm factors ``(qs (H, T), ks (H, T))`` of one sequence; None without."""
        return None

    def rope(self, layer: int) -> tuple[np.ndarray, float]:
        """``(omega, gain)`` of the layer, matched against the tables it receives."""
        if layer not in self._rope:
            n = min(8, self.max_positions or 8)
            ids = [int(getattr(self.tokenizer, "unk_token_id", None) or 0)] * max(n, 3)
            seq = Sequence(ids=np.asarray(ids), special=np.zeros(len(ids), dtype=bool),
                           tokens=("",) * len(ids))
            self.capture(seq, [layer])
        return self._rope[layer]

    def head_forms(self, layer: int) -> list[HeadForm]:
        sa = self.attn(layer)
        Wq, bq, Wk, bk = self.projections(layer)
        g = self.gains(layer)
        if g is not None:
            Wq, bq = Wq * g[0][:, None], bq * g[0]
            Wk, bk = Wk * g[1][:, None], bk * g[1]
        omega, gain = self.rope(layer)
        rd = self.rot_dims(layer)
        window = self.window(layer)
        softcap = getattr(sa, "attn_logit_softcapping", None)
        key_aug = bool(np.any(bk != 0))
        dh, group = self._dh, self._H // self._Hkv
        forms = []
        for h in range(self._H):
            sq = slice(h * dh, (h + 1) * dh)
            sk = slice((h // group) * dh, (h // group + 1) * dh)
            forms.append(HeadForm(
                layer, h, Wq[sq], bq[sq], Wk[sk], bk[sk], float(sa.scaling), True,
                rot_dims=rd, omega=omega, rope_gain=gain, causal=True,
                window=window,
                softcap=float(softcap) if softcap else None,
                qk_norm=g is not None, key_aug=key_aug,
            ))
        return forms

    def capture(self, sequence: Sequence, layers: list[int]) -> Capture:
        def on_input(cap: Capture, li: int, args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> None:
            hs = args[0] if args else kwargs["hidden_states"]
            X = to_numpy(hs[0])
            cap.X[li] = X
            pe = kwargs.get("position_embeddings")
            if pe is None and len(args) > 1:
                pe = args[1]
            if pe is None:
                raise InvalidInputError(
                    f"layer {li} received no rotary tables (position_embeddings); refused."
                )
            cos, sin = to_numpy(pe[0][0]), to_numpy(pe[1][0])
            if cap.rope is None:
                cap.rope = (cos, sin)
            if li not in self._rope:
                self._rope[li] = match_rope(self._cands, cos, sin)
            nf = self.norm_factors(li, X)
            if nf is not None:
                cap.qs[li], cap.ks[li] = nf

        modules = {li: self.attn(li) for li in layers}
        return run_with_input_hooks(self.base, modules, sequence, on_input, use_cache=False)
