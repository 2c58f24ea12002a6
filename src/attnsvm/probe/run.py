"""Run the probe: model + corpus -> per-head records, arrays and reports.

Output folder layout::

    summary.json       model, setup, notes and one record per head (the --json object)
    heads.csv          the per-head table
    heatmap.png        layers x heads heat maps: corr - control for every target solved
                       (Frobenius, nuclear, Graph-SVM)
    max_prob.png       distribution of the largest probability per row, per layer
    index.html         the page
    heads/L{l}_H{h}.npz  per head: W_head (d, d+1), W_fro, W_fro_conf, W_nuc, W_graph
                       (float64, when solved), dual (m,), dual_nuc, dual_graph, certificate
                       (m,) when infeasible, alpha (n,), max_prob (n,), index (m, 2) (query
                       row, key position), qpos (n,), seq_of (n,), the form (scale, rot_dims,
                       omega, rope_gain, key_aug, qk_norm; qs, ks (S, T) for QK-norm heads)
                       and for rotary heads rope_basis_key/query, M_rope (F, r, r), W0_rope,
                       dual_rope (m,), M_rope_nuc, dual_rope_nuc
    heads/L{l}_input.npz  per layer: input_ids (S, T), lengths (S,), X (S, T, d) float64, the
                       layer input: with a head file, every margin and certificate can be
                       recomputed without the model

Files are written last: the head arrays go to a staging folder inside the output folder and
replace ``heads/`` only when every head is done, so an interrupted run leaves an earlier report
whole.  A head whose analysis raises (or whose worker process dies) does not stop the others:
its record has ``status`` ``"error"`` and the message in ``error``, every result field None,
no array file; ``summary["errors"]`` lists those heads.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .._io import atomic_savez
from .._validation import check_choice
from ..exceptions import InvalidInputError, InvalidParameterError, require
from ..reporting import provenance
from .analysis import ProbeOptions
from .capture import Adapter
from .corpus import make_sequences, read_corpus
from .geometry import geometry_summary
from .models import DEFAULT_MODEL, ModelSource, load_model, load_tokenizer, resolve_model
from .preflight import preflight
from .report import nuc_vs_fro, target_summary, write_report
from .scores import as_adapter
from .tasks import HeadTask, ProgressFn, head_line, layer_input_arrays, run_tasks

__all__ = ["ProbeResult", "probe", "head_file", "head_line", "parse_layers", "check_sizes",
           "check_out_dir", "NOTES", "MAX_QUERIES"]

NOTES = [
    "Convention: score = x_t^T W z with x_t the key-side token (the layer's normalized input) and "
    "z the query; for q = W_Q z + b_Q and k = W_K x_t + b_K, W = W_K^T [W_Q | b_Q] / sqrt(d_head) "
    "acts on the augmented query [z; 1], so W is d x (d+1).",
    "Query biases fold in exactly through the constant 1; key-bias terms are the same for every "
    "key of a row and cancel in the softmax.",
    "The Att-SVM instance of a head: every position is a query, its selected token is the "
    "model's argmax; ties (alpha = first maximizer), identical keys and contradictory pairs are "
    "counted, and infeasible instances carry a certificate.",
    "Targets: fro = Frobenius Att-SVM W^mm (all rows); nuc = nuclear-norm Att-SVM W_*^mm (all "
    "rows unless capped; the limit of gradient descent on factors W_K, W_Q, so the right target "
    "for a real head); graph = Graph-SVM of the head's token-priority graphs (decoders).",
    "corr_X_control: the same solution against the other heads of the layer (mean; corr_control "
    "for fro); corr_X_random: against a seeded Gaussian matrix. margin_ratio: the head's margin "
    "over the max margin (in the target's norm).",
    "rank_nuc: rank of W_*^mm; rank_head: rank of the head's W (at most d_head).",
]
#: Largest accepted --max-queries (about 3 GB of constraints for a 384-wide model at T = 32).
MAX_QUERIES = 20000
ROTARY_NOTE = (
    "Rotary heads: the exact target is the lifted Att-SVM of the head's own selections "
    "(score = sum_f Re(exp(i omega_f (p - r)) x^T M_f z) + x^T W_0 z with the model's own "
    "inv_freq): corr_rope (lifted Frobenius, all rows), corr_rope_nuc (group nuclear, first "
    "rope_nuclear_rows rows), freq_share_head / freq_share_svm. The fields corr_fro, corr_nuc, "
    "corr_graph of these heads are of the position-free form W_K^T W_Q / sqrt(d_head), which "
    "is not the head's score (approximate: true; argmax_reproduced says how many argmaxes it "
    "reproduces)."
)
QK_NORM_NOTE = (
    "QK-norm heads (Qwen3, OLMo-2, Gemma 3) are analysed in their normalized coordinates: "
    "z_hat = [z; 1] / rms_q, x_hat = x / rms_k per token and head, with the norm's gain folded "
    "into W_Q, W_K; the score is exactly bilinear there."
)
GGUF_NOTE = (
    "GGUF weights: transformers de-quantized them to float32 when it loaded the model; the "
    "analysis (exact included) is of that de-quantized model, the one that runs."
)
EXACT_NOTE = (
    "exact: the analysed form's probabilities equal the model's own (eager attention) within "
    "1e-4 on every sequence, and for rotary heads the lifted form's row values equal the score "
    "differences (rope_form_error <= 1e-6); selections_reproduced: share of the model's argmax "
    "selections the analysed form reproduces."
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


def _provenance() -> dict[str, Any]:
    return provenance(("numpy", "scipy", "torch", "transformers", "tokenizers", "gguf",
                       "matplotlib"))


def head_file(out_dir: str | os.PathLike[str], layer: int, head: int) -> Path:
    """Path of a head's array file."""
    return Path(out_dir) / "heads" / f"L{layer:02d}_H{head:02d}.npz"


def parse_layers(spec: str | Sequence[int] | None, num_layers: int | None) -> list[int] | None:
    """Validate a layer list (``"0,2"`` or ints, counted from 0); None means all layers.

    With ``num_layers`` None only the syntax is checked (before the model is loaded), and None
    is returned for "all".
    """
    if spec is None:
        return None if num_layers is None else list(range(num_layers))
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
    hi = num_layers if num_layers is not None else None
    bad = [li for li in items if li < 0 or (hi is not None and li >= hi)]
    if bad:
        expected = f"0..{hi - 1}" if hi is not None else "counted from 0"
        raise InvalidInputError(
            f"The 'layers' option must name layers in {expected}. Got {bad} instead."
        )
    return sorted(set(items))


def check_sizes(seq_len: int, max_queries: int, jobs: int) -> None:
    """Refuse sizes the probe cannot use, before anything is loaded.

    Raises
    ------
    InvalidParameterError
        ``seq_len < 3``, ``max_queries`` outside ``1..MAX_QUERIES`` or ``jobs < 1``.
    """
    if int(seq_len) < 3:
        raise InvalidParameterError(
            f"The 'seq-len' option must be at least 3. Got {seq_len!r} instead."
        )
    if not 1 <= int(max_queries) <= MAX_QUERIES:
        raise InvalidParameterError(
            f"The 'max-queries' option must be in 1..{MAX_QUERIES}. Got {max_queries!r} instead."
        )
    if int(jobs) < 1:
        raise InvalidParameterError(f"The 'jobs' option must be at least 1. Got {jobs!r} instead.")


def check_out_dir(out: str | os.PathLike[str] | None) -> Path | None:
    """The output folder, refused early when it is an existing file (None passes through)."""
    if out is None:
        return None
    p = Path(out)
    if str(out) == "" or (p.exists() and not p.is_dir()):
        raise InvalidInputError(f"The 'out' option must be a folder. Got {str(out)!r} instead.")
    return p


def _check_seq_len(seq_len: int, ad: Adapter, label: str) -> None:
    _check_positions(seq_len, ad.max_positions, label)


def _check_positions(seq_len: int, limit: int | None, label: str) -> None:
    if limit is not None and seq_len > limit:
        raise InvalidParameterError(
            f"The 'seq-len' option must be at most {limit} for {label} (its "
            f"max_position_embeddings). Got {seq_len} instead."
        )


class _Staging:
    """Head files go to a hidden folder inside ``out``; :meth:`commit` swaps it in as heads/."""

    def __init__(self, out: Path | None) -> None:
        self.out = out
        self.dir = out / f".heads-partial-{os.getpid()}" if out is not None else None

    def path(self, layer: int, head: int) -> Path | None:
        if self.dir is None:
            return None
        return self.dir / head_file(".", layer, head).relative_to("heads")

    def layer_path(self, layer: int) -> Path | None:
        if self.dir is None:
            return None
        return self.dir / f"L{layer:02d}_input.npz"

    def commit(self) -> None:
        if self.out is None or self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.out / "heads"
        old = self.out / f".heads-old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        self.dir.rename(final)
        shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def probe(
    model: Any = None,
    text: str | os.PathLike[str] | None = None,
    layers: str | Sequence[int] | None = None,
    options: ProbeOptions | None = None,
    out: str | os.PathLike[str] | None = "attnsvm-probe",
    *,
    tokenizer: Any = None,
    nuclear: bool | None = None,
    seq_len: int = 32,
    max_queries: int = 352,
    adapter: tuple[ModelSource, Adapter] | None = None,
    progress: ProgressFn | None = None,
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
) -> ProbeResult:
    """Probe every head of the chosen layers.

    Options, the text and the output folder are checked before the model is loaded; the files
    are written at the end, only when every head is done.

    Parameters
    ----------
    model : str, path or transformers model, optional
        ``minilm`` (default), ``smollm2``, a local model folder / GGUF file, or a model
        already in memory (any attention implementation; pass its ``tokenizer``).
    text : path, optional
        UTF-8 text file (its first :data:`~attnsvm.probe.corpus.MAX_TEXT_BYTES`); default the
        corpus shipped with the package.
    layers : str or sequence of int, optional
        Layers to probe (from 0); default all.
    options : ProbeOptions, optional
    tokenizer : optional
        The tokenizer of an in-memory ``model``.
    nuclear : bool, optional
        Overrides ``options.nuclear``.
    out : path or None
        Output folder; None writes nothing.
    seq_len, max_queries : int
        Tokens per sequence (at most the model's ``max_position_embeddings``) and total query
        rows, at most :data:`MAX_QUERIES` (see :func:`make_sequences`).
    adapter : (ModelSource, Adapter), optional
        An already loaded model (skips :func:`load_model`).
    progress : callable, optional
        ``progress(message, done, total)``: stages (loading, running the model) with ``done``
        None, then ``done`` of ``total`` heads with the head's one-line result.
    jobs : int
        Heads solved at once in separate processes (1: in this process).  Each process uses
        the BLAS threads the environment allows.
    backend : {"local", "ray"}
        ``ray``: the heads run as Ray tasks (extra ``ray``), on the cluster at ``address`` or
        on a local one of ``jobs`` CPUs; the head files are written here.
    address : str, optional
        A running Ray cluster (``ray://host:port`` or ``host:port``).

    Returns
    -------
    ProbeResult
    """
    t_start = time.perf_counter()
    opts = options or ProbeOptions()
    if nuclear is not None:
        opts = replace(opts, nuclear=bool(nuclear))
    check_sizes(seq_len, max_queries, jobs)
    check_choice("backend", backend, ("local", "ray"))
    if backend == "ray":
        require("ray", "ray")
    layer_req = parse_layers(layers, None)
    corpus = read_corpus(text)
    out_dir = check_out_dir(out)
    if adapter is None and model is not None and not isinstance(model, (str, os.PathLike)):
        if tokenizer is None:
            raise InvalidInputError(
                "The 'tokenizer' argument is required with a model object. Got None instead."
            )
        adapter = as_adapter(model, tokenizer)

    def say(msg: str) -> None:
        if progress is not None:
            progress(msg, None, None)

    if adapter is None:
        found = resolve_model(model or DEFAULT_MODEL)  # file checks before any output
        pre = preflight(found.folder, found.gguf_file, seq_len, max_queries)
        if pre is not None:  # config checks before the model is built
            parse_layers(layer_req, pre.num_layers)
            _check_positions(seq_len, pre.max_positions, found.label)
        tok = load_tokenizer(found)
        seqs = make_sequences(tok, corpus, seq_len=seq_len, max_queries=max_queries)
        t_load = time.perf_counter()
        src, ad = load_model(found, tok)
        say(f"loaded {found.label} from {found.folder} (offline, "
            f"{time.perf_counter() - t_load:.1f} s)")
        layer_list = parse_layers(layer_req, ad.num_layers) or []
        _check_seq_len(seq_len, ad, src.label)
    else:
        src, ad = adapter
        layer_list = parse_layers(layer_req, ad.num_layers) or []
        _check_seq_len(seq_len, ad, src.label)
        seqs = make_sequences(ad.tokenizer, corpus, seq_len=seq_len, max_queries=max_queries)
    say(f"running {src.label} on {len(seqs)} sequences of up to {seq_len} tokens")
    t0 = time.perf_counter()
    captures = [ad.capture(s, layer_list) for s in seqs]
    capture_seconds = time.perf_counter() - t0
    staging = _Staging(out_dir)
    tasks: list[HeadTask] = []
    for li in layer_list:
        forms = ad.head_forms(li)
        W_layer = [f.bilinear() for f in forms]
        layer_caps = [c.layer_only(li) for c in captures]
        for f in forms:
            tasks.append(HeadTask(li, f.head, W_layer, layer_caps, ad.causal, f.rotary, opts,
                                   staging.path(li, f.head), int(f.Wq.shape[0]), forms))
    try:
        for li in layer_list:
            lp = staging.layer_path(li)
            if lp is not None:
                atomic_savez(lp, **layer_input_arrays(captures, li))
        records = run_tasks(tasks, jobs, progress, backend, address)
    except BaseException:
        staging.discard()
        raise
    notes = [*NOTES, EXACT_NOTE]
    if ad.rotary:
        notes.append(ROTARY_NOTE)
    if src.gguf_file:
        notes.append(GGUF_NOTE)
    if any(t.forms is not None and t.forms[t.head].qk_norm for t in tasks):
        notes.append(QK_NORM_NOTE)
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
        "backend": backend,
        "capture_seconds": capture_seconds,
        "notes": notes,
        "provenance": _provenance(),
        "targets": target_summary(records),
        "nuc_vs_fro": nuc_vs_fro(records),
        **geometry_summary(records),  # linf_vs_fro, spec_vs_fro with --targets
        "errors": [{"layer": r["layer"], "head": r["head"], "error": r["error"]}
                   for r in records if r.get("status") == "error"],
        "heads": records,
    }
    summary["seconds"] = time.perf_counter() - t_start
    if out_dir is not None:
        try:
            write_report(summary, out_dir)
            staging.commit()
        except BaseException:
            staging.discard()
            raise
    return ProbeResult(summary, out_dir)
