"""Probe pretrained transformers: does each head's key-query form match its Att-SVM?

Heavy dependencies (torch, transformers) are imported only when a model is loaded.

>>> from attnsvm.probe import probe, ProbeOptions          # doctest: +SKIP
>>> res = probe("minilm", layers="0", out="attnsvm-probe")  # doctest: +SKIP
>>> res.heads[0]["corr_fro"], res.heads[0]["corr_control"]  # doctest: +SKIP
>>> h = res.heads[0]                                      # doctest: +SKIP
>>> h["corr_nuc"], h["corr_nuc_control"], h["rank_nuc"]   # doctest: +SKIP
"""

from __future__ import annotations

from .analysis import ProbeOptions, analyze_head, corr
from .capture import Adapter, Capture, HeadForm
from .corpus import Sequence, default_corpus_text, make_sequences, read_corpus
from .graph import HeadGraphs, build_graphs
from .instance import HeadInstance, build_instance
from .models import DEFAULT_MODEL, ModelSource, load_model, resolve_model
from .run import ProbeResult, head_file, probe
from .scores import attention_scores

__all__ = [
    "probe",
    "attention_scores",
    "ProbeOptions",
    "ProbeResult",
    "load_model",
    "resolve_model",
    "ModelSource",
    "DEFAULT_MODEL",
    "Adapter",
    "HeadForm",
    "Capture",
    "Sequence",
    "HeadInstance",
    "build_instance",
    "analyze_head",
    "HeadGraphs",
    "build_graphs",
    "corr",
    "head_file",
    "read_corpus",
    "default_corpus_text",
    "make_sequences",
]
