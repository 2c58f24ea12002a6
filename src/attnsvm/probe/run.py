"""Run the probe: model + corpus -> per-head records, arrays and reports.

Output folder layout::

    summary.json       model, setup, notes and one record per head (the --json object)
    heads.csv          the per-head table
    heatmap.png        layers x heads heat map of corr_fro - corr_control
    max_prob.png       distribution of the largest probability per row, per layer
    index.html         the page
    heads/L{l}_H{h}.npz  per head: W_head (d, d+1), W_fro, W_fro_conf, W_nuc (float32, when
                       solved), dual (m,), certificate (m,) when infeasible, alpha (n,),
                       max_prob (n,), index (m, 2)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_savez
from ..exceptions import InvalidInputError
from .analysis import ProbeOptions, analyze_head
from .capture import Adapter, Capture
from .corpus import make_sequences, read_corpus
from .instance import build_instance
from .models import DEFAULT_MODEL, ModelSource, load_model
from .report import write_heatmap, write_html, write_maxprob_figure, write_summary, write_table

__all__ = ["ProbeResult", "probe", "head_file", "NOTES"]

NOTES = [
    "Convention: score = x_t^T W z with x_t the key-side token (the layer's normalized input) and "
    "z the query; for q = W_Q z + b_Q and k = W_K x_t + b_K, W = W_K^T [W_Q | b_Q] / sqrt(d_head) "
    "acts on the augmented query [z; 1], so W is d x (d+1).",
    "Query biases fold in exactly through the constant 1; key-bias terms are the same for every "
    "key of a row and cancel in the softmax.",
    "The Att-SVM instance of a head: every position is a query, its selected token is the "
    "model's argmax; ties (alpha = first maximizer), identical keys and contradictory pairs are "
    "counted, and infeasible instances carry a certificate.",
    "corr_control: the same solution against the other heads of the layer (mean); corr_random: "
    "against a seeded Gaussian matrix. margin_ratio: the head's margin over the max margin.",
]
ROTARY_NOTE = (
    "Rotary position embeddings make the score position-dependent: there is no single W. The "
    "position-free form W_K^T W_Q / sqrt(d_head) is used; argmax_reproduced gives the share of "
    "the model's argmaxes it reproduces, and these heads are marked approximate."
)


@dataclass
class ProbeResult:
    """What :func:`probe` produced.

    Attributes
    ----------
    summary : dict
        The JSON summary (``model``, ``heads``, setup and notes).
    out_dir : pathlib.Path or None
        Where the files went (None when nothing was written).
    """

    summary: dict[str, Any]
    out_dir: Path | None

    @property
    def heads(self) -> list[dict[str, Any]]:
        """One record per head."""
        return list(self.summary["heads"])


@dataclass
class _HeadTask:
    """Everything one head's analysis needs (picklable, no model)."""

    layer: int
    head: int
    W_layer: list[Any]
    captures: list[Capture]
    causal: bool
    rotary: bool
    opts: ProbeOptions
    path: Path | None


def _run_head(task: _HeadTask) -> dict[str, Any]:
    """Build, solve and save one head; returns its record."""
    t0 = time.perf_counter()
    inst = build_instance(task.captures, task.layer, task.head, task.causal)
    t_build = time.perf_counter() - t0
    rec, arrays = analyze_head(
        inst,
        task.W_layer,
        task.head,
        task.layer,
        task.captures,
        task.causal,
        task.rotary,
        task.opts,
    )
    rec["seconds"] += t_build
    if task.path is not None:
        atomic_savez(task.path, **arrays)
    return rec


def _progress_line(rec: dict[str, Any]) -> str:
    cf = rec.get("corr_fro")
    return (
        f"layer {rec['layer']} head {rec['head']}: m={rec['m']} {rec['status']} corr_fro="
        f"{'-' if cf is None else f'{cf:.3f}'} ({rec['seconds']:.1f} s)"
    )


def _run_tasks(
    tasks: list[_HeadTask], jobs: int, progress: Callable[[str], None] | None
) -> list[dict[str, Any]]:
    """Run the head tasks, in this process or in a pool of ``jobs`` spawned processes."""
    records: list[dict[str, Any]] = []
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            records.append(_run_head(task))
            if progress is not None:
                progress(_progress_line(records[-1]))
        return records
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    done: dict[int, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx) as pool:
        futures = {pool.submit(_run_head, t): k for k, t in enumerate(tasks)}
        for fut in as_completed(futures):
            done[futures[fut]] = fut.result()
            if progress is not None:
                progress(_progress_line(done[futures[fut]]))
    return [done[k] for k in range(len(tasks))]


def _provenance() -> dict[str, Any]:
    import platform
    import sys

    from .. import __version__

    libs = {}
    for mod in ("numpy", "scipy", "torch", "transformers", "tokenizers", "gguf"):
        m = sys.modules.get(mod)
        libs[mod] = getattr(m, "__version__", None) if m is not None else None
    return {
        "attnsvm": __version__,
        "python": platform.python_version(),
        "libraries": libs,
        "cpus": os.cpu_count(),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def head_file(out_dir: str | os.PathLike[str], layer: int, head: int) -> Path:
    """Path of a head's array file."""
    return Path(out_dir) / "heads" / f"L{layer:02d}_H{head:02d}.npz"


def parse_layers(spec: str | Sequence[int] | None, num_layers: int) -> list[int]:
    """Validate a layer list (``"0,2"`` or ints, counted from 0); None means all layers."""
    if spec is None:
        return list(range(num_layers))
    if isinstance(spec, str):
        try:
            items = [int(s) for s in spec.replace(" ", "").split(",") if s != ""]
        except ValueError as exc:
            raise InvalidInputError(
                f"The 'layers' option must be comma-separated integers. Got {spec!r} instead."
            ) from exc
    else:
        items = [int(s) for s in spec]
    if not items:
        raise InvalidInputError("The 'layers' option names no layer.")
    bad = [li for li in items if not 0 <= li < num_layers]
    if bad:
        raise InvalidInputError(
            f"The 'layers' option must name layers in 0..{num_layers - 1}. Got {bad} instead."
        )
    return sorted(set(items))


def probe(
    model: str | os.PathLike[str] | None = None,
    text: str | os.PathLike[str] | None = None,
    layers: str | Sequence[int] | None = None,
    options: ProbeOptions | None = None,
    out: str | os.PathLike[str] | None = "attnsvm-probe",
    *,
    seq_len: int = 32,
    max_queries: int = 352,
    adapter: tuple[ModelSource, Adapter] | None = None,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> ProbeResult:
    """Probe every head of the chosen layers.

    Parameters
    ----------
    model : str or path, optional
        ``minilm`` (default), ``smollm2``, or a local model folder / GGUF file.
    text : path, optional
        UTF-8 text file; default the corpus shipped with the package.
    layers : str or sequence of int, optional
        Layers to probe (from 0); default all.
    options : ProbeOptions, optional
    out : path or None
        Output folder; None writes nothing.
    seq_len, max_queries : int
        Tokens per sequence and total query rows (see :func:`make_sequences`).
    adapter : (ModelSource, Adapter), optional
        An already loaded model (skips :func:`load_model`).
    progress : callable, optional
        Called with one line per head.
    jobs : int
        Heads solved at once in separate processes (1: in this process).  Each process uses
        the BLAS threads the environment allows (the command line sets one per process).

    Returns
    -------
    ProbeResult
    """
    t_start = time.perf_counter()
    opts = options or ProbeOptions()
    src, ad = adapter if adapter is not None else load_model(model or DEFAULT_MODEL)
    corpus = read_corpus(text)
    layer_list = parse_layers(layers, ad.num_layers)
    seqs = make_sequences(ad.tokenizer, corpus, seq_len=seq_len, max_queries=max_queries)
    t0 = time.perf_counter()
    captures = [ad.capture(s, layer_list) for s in seqs]
    capture_seconds = time.perf_counter() - t0
    out_dir = Path(out) if out is not None else None
    tasks: list[_HeadTask] = []
    for li in layer_list:
        forms = ad.head_forms(li)
        W_layer = [f.bilinear() for f in forms]
        layer_caps = [Capture(c.sequence, {li: c.X[li]}, {li: c.P[li]}) for c in captures]
        for f in forms:
            path = head_file(out_dir, li, f.head) if out_dir is not None else None
            tasks.append(
                _HeadTask(li, f.head, W_layer, layer_caps, ad.causal, f.rotary, opts, path)
            )
    records = _run_tasks(tasks, jobs, progress)
    notes = list(NOTES)
    if ad.rotary:
        notes.append(ROTARY_NOTE)
    summary: dict[str, Any] = {
        "model": src.label,
        "source": str(src.folder / src.gguf_file) if src.gguf_file else str(src.folder),
        "family": ad.family,
        "num_layers": ad.num_layers,
        "num_heads": ad.num_heads,
        "d": ad.hidden_size,
        "W_shape": [ad.hidden_size, ad.hidden_size + 1],
        "query_bias_folded": True,
        "rotary": ad.rotary,
        "layers": layer_list,
        "n_sequences": len(seqs),
        "seq_len": seq_len,
        "text": "default corpus" if text is None else str(text),
        "options": asdict(opts),
        "jobs": jobs,
        "capture_seconds": capture_seconds,
        "notes": notes,
        "provenance": _provenance(),
        "heads": records,
    }
    summary["seconds"] = time.perf_counter() - t_start
    if out_dir is not None:
        write_table(records, out_dir / "heads.csv")
        write_heatmap(
            records, out_dir / "heatmap.png", f"{src.label}: corr(W_head, W_fro) - control"
        )
        write_maxprob_figure(records, out_dir / "max_prob.png")
        write_summary(summary, out_dir / "summary.json")
        write_html(summary, out_dir / "index.html")
    return ProbeResult(summary, out_dir)
