"""The hierarchy test: is layer l's target the Att-SVM on the outputs of the layers below?

TF-SVM conjectures that a deep transformer is a hierarchy of SVMs: the heads of layer ``l``
converge to the Att-SVM of their own selections whose *tokens are the outputs of the trained
layers below*.  The probe's record of a head is already of that instance (its tokens are what
the attention module receives, ``X_l = norm_l(h_l)`` with ``h_l`` the residual stream entering
layer ``l``).  The alternative this module builds is the same head with the same selections,
but with the *embeddings* as its tokens:

    E_l = norm_l(h_0),   h_0 = the residual stream entering layer 0

(token embeddings, plus learned positions for GPT-2; ``norm_l`` is layer l's own input norm,
so ``E_l`` is what layer l would read if the layers below added nothing).  For layer 0 the two
coincide exactly (``E_0 = X_0``).  Every target of the probe is solved on ``E_l`` by the probe's
own per-head analysis (:func:`attnsvm.probe.tasks.run_tasks`), and the record gets, per head:

- the probe's fields of that analysis with the suffix ``_emb``: ``corr_fro_emb``,
  ``corr_control_emb``, ``margin_ratio_emb``, ``feasible_emb``, ``status_emb``;
  ``corr_nuc_emb``, ``corr_nuc_control_emb`` (None with ``--no-nuclear``); for rotary heads
  ``corr_rope_emb``, ``corr_rope_control_emb``, ``rope_margin_ratio_emb``,
  ``rope_status_emb`` (the lifted target: exact for a rotary head; ``infeasible`` when no
  lifted form on the embeddings reproduces the selections);
- ``hier_target``: ``"rope"`` (rotary heads) or ``"fro"``, the exact target compared;
- ``hier_gain_input`` / ``hier_gain_emb``: correlation minus control of that target on the
  layer input / on the embeddings; ``hier_delta``: their difference (positive: the head is
  nearer the layer-input SVM than the embedding SVM, beyond its layer's other heads).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..exceptions import InvalidInputError
from ..probe.capture import Capture, to_numpy
from ..probe.corpus import make_sequences, read_corpus
from ..probe.models import load_model, load_tokenizer, resolve_model
from ..probe.run import parse_layers
from ..probe.tasks import HeadTask, run_tasks

__all__ = ["HIERARCHY_FIELDS", "NORM_MODULES", "embedding_inputs", "hierarchy_records",
           "hierarchy_fields", "input_norm"]

#: Names of a decoder block's input norm (LLaMA-style, GPT-2).
NORM_MODULES = ("input_layernorm", "ln_1")
#: Probe fields copied from the embedding-token analysis, as ``<field>_emb``.
_COPIED = ("corr_fro", "corr_control", "margin_ratio", "feasible", "status", "corr_nuc",
           "corr_nuc_control", "margin_ratio_nuc", "corr_rope", "corr_rope_control",
           "rope_margin_ratio", "rope_status", "corr_rope_nuc", "corr_rope_nuc_control")
#: Fields a head record gets from :func:`hierarchy_fields`.
HIERARCHY_FIELDS = (*(f"{f}_emb" for f in _COPIED), "hier_target",
                    "hier_gain_input", "hier_gain_emb", "hier_delta")


def input_norm(block: Any) -> Any:
    """The input norm module of a decoder block (``input_layernorm`` or ``ln_1``).

    Raises
    ------
    InvalidInputError
        The block has neither (an architecture the hierarchy test does not know).
    """
    for name in NORM_MODULES:
        mod = getattr(block, name, None)
        if mod is not None:
            return mod
    raise InvalidInputError(
        f"The hierarchy test needs each decoder block's input norm ({' or '.join(NORM_MODULES)}"
        f"); {type(block).__name__} has neither.")


def embedding_inputs(adapter: Any, sequence: Any, layers: list[int]
                     ) -> tuple[Any, dict[int, np.ndarray]]:
    """The probe's capture of one sequence and, per layer, its embedding tokens.

    Parameters
    ----------
    adapter : attnsvm.probe.capture.Adapter
        A decoder adapter with ``layers`` (the blocks).
    sequence : attnsvm.probe.corpus.Sequence
    layers : list of int

    Returns
    -------
    (Capture, dict of int to numpy.ndarray (T, d))
        The capture (``X[l]`` the layer inputs, ``P[l]`` the model's probabilities) from one
        forward pass, and ``E[l] = norm_l(h_0)`` in float64.
    """
    import torch

    held: dict[str, Any] = {}

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hs = args[0] if args else kwargs["hidden_states"]
        held["h0"] = hs.detach().clone()

    handle = adapter.layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        cap = adapter.capture(sequence, layers)
    finally:
        handle.remove()
    if "h0" not in held:  # pragma: no cover - every decoder calls its first block
        raise InvalidInputError("The model's first block received no hidden states.")
    emb: dict[int, np.ndarray] = {}
    with torch.no_grad():
        for li in layers:
            emb[li] = to_numpy(input_norm(adapter.layers[li])(held["h0"])[0])
    return cap, emb


def _embedding_capture(cap: Any, adapter: Any, layer: int, E: np.ndarray) -> Any:
    """A copy of ``cap`` restricted to ``layer`` whose tokens are ``E`` (the model's own
    probabilities, hence the head's selections, are kept)."""
    out = Capture(cap.sequence, {layer: E}, {layer: cap.P[layer]}, cap.rope)
    nf = getattr(adapter, "norm_factors", None)
    if cap.qs.get(layer) is not None and nf is not None:  # QK-norm: factors of the new tokens
        fac = nf(layer, E)
        if fac is not None:
            out.qs[layer], out.ks[layer] = fac
    return out


def _gain(rec: dict[str, Any], corr: str, control: str) -> float | None:
    c, k = rec.get(corr), rec.get(control)
    if c is None or k is None or not np.isfinite(c) or not np.isfinite(k):
        return None
    return float(c) - float(k)


def hierarchy_fields(probe_rec: dict[str, Any], emb_rec: dict[str, Any]) -> dict[str, Any]:
    """The :data:`HIERARCHY_FIELDS` of one head from its two records.

    Parameters
    ----------
    probe_rec : dict
        The probe's record (layer-input tokens).
    emb_rec : dict
        The same analysis with the embedding tokens.
    """
    out: dict[str, Any] = {f"{f}_emb": emb_rec.get(f) for f in _COPIED}
    rope = bool(probe_rec.get("rotary")) and probe_rec.get("rope_status") is not None
    target = "rope" if rope else "fro"
    keys = ("corr_rope", "corr_rope_control") if rope else ("corr_fro", "corr_control")
    g_in = _gain(probe_rec, *keys)
    g_emb = _gain(emb_rec, *keys)
    out.update(hier_target=target, hier_gain_input=g_in, hier_gain_emb=g_emb,
               hier_delta=None if g_in is None or g_emb is None else g_in - g_emb)
    return out


def hierarchy_records(path: str, layers: str | None, opts: Any, text: str | None,
                      seq_len: int, max_queries: int) -> list[dict[str, Any]]:
    """The probe's per-head analysis of one checkpoint with embedding tokens.

    Parameters
    ----------
    path : str
        A model folder the probe reads (a causal decoder with input norms).
    layers : str or None
        As for the probe (``"0,1"``; None: all).
    opts : attnsvm.probe.analysis.ProbeOptions
        The probe's options (the Graph-SVM is not solved here).
    text : str or None
        The text file (None: the probe's corpus); ``seq_len``, ``max_queries`` as the probe's.

    Returns
    -------
    list of dict
        One probe record per head (layer, head order), of the embedding-token instance.
    """
    src = resolve_model(path)
    tok = load_tokenizer(src)
    seqs = make_sequences(tok, read_corpus(text), seq_len=seq_len, max_queries=max_queries)
    _, ad = load_model(src, tok)
    if not ad.causal:
        raise InvalidInputError("The hierarchy test reads decoders (causal models) only.")
    layer_list = parse_layers(layers, ad.num_layers) or list(range(ad.num_layers))
    pairs = [embedding_inputs(ad, s, layer_list) for s in seqs]
    hopts = replace(opts, graph=False)
    tasks = []
    for li in layer_list:
        forms = ad.head_forms(li)
        W_layer = [f.bilinear() for f in forms]
        caps = [_embedding_capture(c, ad, li, E[li]) for c, E in pairs]
        for f in forms:
            tasks.append(HeadTask(li, f.head, W_layer, caps, ad.causal, f.rotary, hopts, None,
                                  int(f.Wq.shape[0]), forms))
    return run_tasks(tasks, 1, None)
