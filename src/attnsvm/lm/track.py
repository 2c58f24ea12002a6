"""``attnsvm track``: the probe over a checkpoint series, and each head's course over training.

Every checkpoint is probed with the same text and options (:func:`attnsvm.probe.probe`).  The
text is the checkpoints' own evaluation text when they come from ``attnsvm pretrain`` on a
synthetic task (``attnsvm_eval.txt``, with its sequence length), else ``text`` (default: the
probe's shipped corpus).  Per head and checkpoint, beside the probe's record:

- ``task_accuracy``: share of the query rows with a correct key (induction: the key after the
  earlier occurrence of the query's token, :func:`~attnsvm.lm.tasks.induction_targets`) whose
  selection (the head's argmax) is that key; None for series without a synthetic task;
- ``support_jaccard``: Jaccard index ``|S_k & S_{k-1}| / |S_k | S_{k-1}|`` of the Frobenius
  Att-SVM's support sets at this and the previous checkpoint, ``S`` = the constraints (query
  row, key) with a multiplier above ``1e-8`` times the largest; None at the first checkpoint or
  when either SVM is infeasible;
- ``selection_stability``: share of query rows whose selected key is the previous checkpoint's.

With ``hierarchy`` (``--hierarchy``), the hierarchy test of :mod:`attnsvm.lm.hierarchy`: the same
head and selections with the embeddings as tokens (fields ``*_emb``, ``hier_*``); with
``geometry`` (``--geometry``), the max-norm and spectral Att-SVMs of the head's selections
(:mod:`attnsvm.lm.geometry`: ``corr_linf``, ``margin_ratio_linf``, ``corr_spec``, ...).

Per checkpoint of an induction series, ``recall_accuracy``: the model's own next-token accuracy
on the recalled tokens (:func:`recall_accuracy`), i.e. whether the task is solved, whichever
heads solve it.

Resumable: each checkpoint's probe output goes to ``DIR/checkpoints/<name>-<hash>/`` with a
``track_key.json`` written after it is complete (and ``track_summary.json``, the records with
track's additions); a rerun with the same checkpoint files and
options reads it instead of probing again.  ``DIR/summary.json``, ``DIR/curves/*.png`` and
``DIR/index.html`` are written last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from ..exceptions import InvalidInputError
from ..probe.analysis import ProbeOptions
from ..probe.corpus import make_sequences, read_corpus
from ..probe.models import offline_hub
from ..probe.run import check_out_dir, check_sizes, head_file, parse_layers, probe
from ..reporting import provenance, write_json_atomic
from .checkpoints import Checkpoint, architecture, find_checkpoints
from .geometry import geometry_fields
from .hierarchy import hierarchy_fields, hierarchy_records
from .tasks import induction_targets
from .track_report import write_track_report

__all__ = ["TrackOptions", "TrackResult", "track", "SERIES_FIELDS", "support_set", "jaccard",
           "recall_accuracy"]

#: Per-head values followed over training (the probe's fields first, then track's own).
SERIES_FIELDS = ("corr_fro", "corr_control", "corr_nuc", "corr_nuc_control", "corr_rope",
                 "corr_rope_control", "margin_ratio", "margin_ratio_nuc", "rope_margin_ratio",
                 "feasible", "exact", "task_accuracy", "support_jaccard", "selection_stability",
                 "corr_fro_emb", "corr_control_emb", "corr_rope_emb", "corr_rope_control_emb",
                 "hier_gain_input", "hier_gain_emb", "hier_delta", "corr_linf",
                 "corr_linf_control", "margin_ratio_linf", "corr_spec", "corr_spec_control",
                 "margin_ratio_spec")
#: Multipliers above this share of the largest one define the support set.
SUPPORT_REL_TOL = 1e-8
_KEY_VERSION = 2

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class TrackOptions:
    """The probe settings shared by every checkpoint.

    Attributes
    ----------
    layers : str or None
        ``"0,2"``; None: all layers.
    nuclear, graph : bool
        Solve the nuclear-norm Att-SVM (default) and the Graph-SVM (default off).
    text : str or None
        Text file; None: the checkpoints' evaluation text, else the probe's corpus.
    seq_len, max_queries : int or None
        None: from the checkpoints' task, else the probe's defaults (32, 352).
    jobs : int
        Checkpoints probed at once in separate processes.
    seed : int
        Seed of the probe's random controls.
    hierarchy : bool
        Also analyse every head with the embeddings as its tokens (the hierarchy test).
    geometry : bool
        Also solve the max-norm and spectral Att-SVMs of every (non-rotary) head.
    """

    layers: str | None = None
    nuclear: bool = True
    graph: bool = False
    text: str | None = None
    seq_len: int | None = None
    max_queries: int | None = None
    jobs: int = 1
    seed: int = 0
    hierarchy: bool = False
    geometry: bool = False


@dataclass
class TrackResult:
    """What :func:`track` produced: ``summary`` (the JSON object) and ``out_dir``."""

    summary: dict[str, Any]
    out_dir: Path | None
    cached: list[bool] = field(default_factory=list)


def support_set(dual: np.ndarray, index: np.ndarray) -> set[tuple[int, int]]:
    """``(query row, key)`` of the constraints with a multiplier above the relative tolerance.

    Parameters
    ----------
    dual : numpy.ndarray, shape (m,)
    index : numpy.ndarray of int, shape (m, 2)
    """
    dual = np.asarray(dual, dtype=np.float64)
    if dual.size == 0 or not np.isfinite(dual).all() or dual.max() <= 0:
        return set()
    keep = dual > SUPPORT_REL_TOL * dual.max()
    return {(int(i), int(t)) for i, t in np.asarray(index)[keep]}


def jaccard(a: set[Any], b: set[Any]) -> float | None:
    """``|a & b| / |a | b|``; None when both are empty.

    >>> jaccard({1, 2, 3}, {2, 3, 4})
    0.5
    """
    union = len(a | b)
    return len(a & b) / union if union else None


def _file_stamp(folder: Path) -> list[list[Any]]:
    files = sorted([*folder.glob("*.safetensors"), folder / "config.json"])
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.is_file()]


def _setup(cks: list[Checkpoint], opts: TrackOptions) -> dict[str, Any]:
    """Text, sequence length and query budget of the series (the same for every checkpoint)."""
    task: dict[str, Any] = cks[0].task or {}
    eval_name = task.get("eval_text")
    if opts.text is None and eval_name:
        texts = {(c.path / str(eval_name)).read_bytes() if (c.path / str(eval_name)).is_file()
                 else b"" for c in cks}
        if len(texts) != 1 or b"" in texts:
            raise InvalidInputError(
                f"The checkpoints' evaluation texts ({eval_name}) are missing or differ.")
        T = int(task.get("seq_len", 32))
        return {"text": str(cks[0].path / str(eval_name)), "text_label": f"task eval text "
                f"({eval_name})", "seq_len": opts.seq_len or T,
                "max_queries": opts.max_queries or T * int(task.get("eval_sequences", 1)),
                "task": task.get("task")}
    if opts.text is not None:
        read_corpus(opts.text)  # a missing, binary or empty file: one line, before probing
    return {"text": opts.text, "text_label": opts.text or "default corpus",
            "seq_len": opts.seq_len or 32, "max_queries": opts.max_queries or 352,
            "task": task.get("task")}


def _cache_dir(out: Path, ck: Checkpoint) -> Path:
    h = hashlib.sha1(str(ck.path.resolve()).encode()).hexdigest()[:8]
    return out / "checkpoints" / f"{ck.path.name}-{h}"


def _key(ck: Checkpoint, opts: TrackOptions, setup: dict[str, Any]) -> dict[str, Any]:
    text = setup["text"]
    digest = hashlib.sha1(Path(text).read_bytes()).hexdigest() if text else None
    return {"version": _KEY_VERSION, "path": str(ck.path.resolve()), "files": _file_stamp(
        ck.path), "layers": opts.layers, "nuclear": opts.nuclear, "graph": opts.graph,
        "seed": opts.seed, "hierarchy": opts.hierarchy, "geometry": opts.geometry,
        "text_sha1": digest, "seq_len": setup["seq_len"],
        "max_queries": setup["max_queries"]}


def _probe_one(path: str, opts: TrackOptions, setup: dict[str, Any], out: str | None
               ) -> dict[str, Any]:
    """Probe one checkpoint (module level: runs in pool workers too); its summary."""
    _quiet_transformers()
    popts = ProbeOptions(nuclear=opts.nuclear, graph=opts.graph, seed=opts.seed)
    res = probe(path, setup["text"], opts.layers, popts, out, seq_len=setup["seq_len"],
                max_queries=setup["max_queries"], jobs=1)
    summary = res.summary
    heads = summary["heads"]
    if opts.hierarchy:
        emb = hierarchy_records(path, opts.layers, popts, setup["text"], setup["seq_len"],
                                setup["max_queries"])
        by_head = {(r["layer"], r["head"]): r for r in emb}
        for rec in heads:
            rec.update(hierarchy_fields(rec, by_head.get((rec["layer"], rec["head"]), {})))
    if opts.geometry and out is not None:
        layer_heads: dict[int, list[int]] = {}
        for rec in heads:
            layer_heads.setdefault(rec["layer"], []).append(rec["head"])
        for rec in heads:
            if rec.get("status") != "error" and rec.get("feasible"):
                rec.update(geometry_fields(out, rec["layer"], layer_heads[rec["layer"]],
                                           rec["head"]))
    return summary


def _quiet_transformers() -> None:
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:  # the probe reports the missing extra
        pass


def _eval_ids(ck: Checkpoint, setup: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The probe's sequences (ids, special mask), cut by the checkpoint's own tokenizer."""
    _quiet_transformers()
    from transformers import AutoTokenizer

    with offline_hub():
        tok = AutoTokenizer.from_pretrained(str(ck.path), local_files_only=True)
    seqs = make_sequences(tok, read_corpus(setup["text"]), seq_len=setup["seq_len"],
                          max_queries=setup["max_queries"])
    return [(s.ids, s.special) for s in seqs]


def recall_accuracy(path: Path, seqs: list[tuple[np.ndarray, np.ndarray]]) -> float | None:
    """The language model's own accuracy on the recalled tokens: the share of query rows with
    an induction target holding the next token where the argmax of the logits is that token.

    Parameters
    ----------
    path : pathlib.Path
        A causal-LM checkpoint folder (safetensors).
    seqs : list of (ids (T,), special (T,))
    """
    import torch
    from transformers import AutoModelForCausalLM

    with offline_hub():
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True,
                                                     use_safetensors=True).eval()
    hits = total = 0
    for ids, special in seqs:
        tgt = induction_targets(ids, special)
        q = np.flatnonzero(tgt[:-1] >= 0)
        q = q[ids[tgt[q]] == ids[q + 1]]
        if q.size == 0:
            continue
        with torch.no_grad():
            logits = model(input_ids=torch.as_tensor(ids)[None]).logits[0]  # (T, V)
        hits += int((logits[q].argmax(-1).numpy() == ids[q + 1]).sum())
        total += int(q.size)
    return hits / total if total else None


def _head_arrays(cache: Path | None, rec: dict[str, Any]) -> dict[str, np.ndarray]:
    if cache is None:
        return {}

    path = head_file(cache, rec["layer"], rec["head"])
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in ("alpha", "dual", "index") if k in z.files}


def _add_course(checkpoints: list[dict[str, Any]], caches: list[Path | None],
                targets: np.ndarray | None) -> None:
    """Fill ``task_accuracy``, ``support_jaccard``, ``selection_stability`` in every record."""
    prev: dict[tuple[int, int], tuple[np.ndarray | None, set[Any] | None]] = {}
    for entry, cache in zip(checkpoints, caches, strict=True):
        for rec in entry["heads"]:
            arr = _head_arrays(cache, rec)
            alpha = arr.get("alpha")
            sup = (support_set(arr["dual"], arr["index"])
                   if rec.get("feasible") and "dual" in arr else None)
            acc = None
            if targets is not None and alpha is not None and alpha.shape == targets.shape:
                ok = targets >= 0
                acc = float(np.mean(alpha[ok] == targets[ok])) if ok.any() else None
            p_alpha, p_sup = prev.get((rec["layer"], rec["head"]), (None, None))
            rec["task_accuracy"] = acc
            rec["support_jaccard"] = jaccard(sup, p_sup) if sup is not None and \
                p_sup is not None else None
            rec["selection_stability"] = (float(np.mean(alpha == p_alpha))
                                          if alpha is not None and p_alpha is not None
                                          and alpha.shape == p_alpha.shape else None)
            prev[(rec["layer"], rec["head"])] = (alpha, sup)


def _series(checkpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    heads = sorted({(r["layer"], r["head"]) for c in checkpoints for r in c["heads"]})
    out = []
    for li, h in heads:
        recs: list[dict[str, Any]] = [
            next((r for r in c["heads"] if (r["layer"], r["head"]) == (li, h)), {})
            for c in checkpoints]
        s: dict[str, Any] = {"layer": li, "head": h, "step": [c["step"] for c in checkpoints]}
        for f in SERIES_FIELDS:
            vals = [r.get(f) for r in recs]
            if any(v is not None for v in vals):
                s[f] = vals
        out.append(s)
    return out


def track(paths: Sequence[str | os.PathLike[str]], options: TrackOptions | None = None,
          out: str | os.PathLike[str] | None = "attnsvm-track",
          progress: ProgressFn | None = None) -> TrackResult:
    """Probe every checkpoint of a series and follow each head over training.

    Parameters
    ----------
    paths : sequence of path-like
        Model folders, or one folder holding ``step-*`` model folders.
    options : TrackOptions, optional
    out : path-like or None
        Output folder (also the cache that makes an interrupted run resumable); None: a
        temporary folder, removed at the end.
    progress : callable, optional
        ``progress(message)`` per stage and per checkpoint.

    Returns
    -------
    TrackResult
        ``summary["checkpoints"]``: ``[{path, step, heads}]`` in step order; ``summary[
        "series"]``: per head, the :data:`SERIES_FIELDS` over the checkpoints.

    Raises
    ------
    InvalidInputError
        No checkpoints, a folder that is not a model, mixed architectures or tasks, bad
        options (checked before any probing).
    """
    t0 = time.perf_counter()
    opts = options or TrackOptions()
    say = progress or (lambda msg: None)
    out_dir = check_out_dir(out)
    parse_layers(opts.layers, None)
    cks = find_checkpoints(list(paths))
    setup = _setup(cks, opts)
    check_sizes(setup["seq_len"], setup["max_queries"], opts.jobs)
    if opts.layers is not None:
        parse_layers(opts.layers, architecture(cks[0].config)["layers"])
    say(f"{len(cks)} checkpoints, text: {setup['text_label']}, {setup['seq_len']} tokens per "
        f"sequence, {setup['max_queries']} query rows")
    work = out_dir if out_dir is not None else Path(tempfile.mkdtemp(prefix="attnsvm-track-"))
    try:
        return _run(cks, opts, setup, out_dir, work, say, t0)
    finally:
        if out_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _run(cks: list[Checkpoint], opts: TrackOptions, setup: dict[str, Any],
         out_dir: Path | None, work: Path, say: ProgressFn, t0: float) -> TrackResult:
    caches: list[Path | None] = [_cache_dir(work, c) for c in cks]
    keys = [_key(c, opts, setup) for c in cks]
    summaries: list[dict[str, Any] | None] = [None] * len(cks)
    cached = [False] * len(cks)
    for k, cache in enumerate(caches):
        if cache is not None and (cache / "track_key.json").is_file():
            try:
                same = json.loads((cache / "track_key.json").read_text()) == keys[k]
                if same:
                    summaries[k] = json.loads((cache / "track_summary.json").read_text())
                    cached[k] = True
                    say(f"checkpoint {k + 1}/{len(cks)} {cks[k].path.name}: cached")
            except (OSError, ValueError):
                summaries[k] = None
    todo = [k for k in range(len(cks)) if summaries[k] is None]

    def finish(k: int, summary: dict[str, Any]) -> None:
        cache = caches[k]
        if cache is not None:  # what a rerun reads back: the same JSON
            summary = json.loads(write_json_atomic(cache / "track_summary.json", summary, None))
            atomic_write_text(cache / "track_key.json", json.dumps(keys[k], indent=1))
        summaries[k] = summary
        n_exact = sum(bool(r.get("exact")) for r in summary["heads"])
        say(f"checkpoint {k + 1}/{len(cks)} {cks[k].path.name}: {len(summary['heads'])} heads "
            f"({n_exact} exact), {summary['seconds']:.1f} s")

    if opts.jobs > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(opts.jobs, len(todo)), mp_context=ctx) as pool:
            futs = {pool.submit(_probe_one, str(cks[k].path), opts, setup,
                                str(caches[k]) if caches[k] else None): k for k in todo}
            for fut in as_completed(futs):
                finish(futs[fut], fut.result())
    else:
        for k in todo:
            say(f"checkpoint {k + 1}/{len(cks)} {cks[k].path.name}: probing")
            finish(k, _probe_one(str(cks[k].path), opts, setup,
                                 str(caches[k]) if caches[k] else None))
    done = [s for s in summaries if s is not None]
    entries = [{"path": str(c.path), "step": c.step, "heads": s["heads"]}
               for c, s in zip(cks, done, strict=True)]
    targets = None
    if setup["task"] == "induction":
        seqs = _eval_ids(cks[0], setup)
        targets = np.concatenate([induction_targets(i, sp) for i, sp in seqs])
        for c, e in zip(cks, entries, strict=True):
            e["recall_accuracy"] = recall_accuracy(c.path, seqs)
    _add_course(entries, caches, targets)
    summary: dict[str, Any] = {
        "checkpoints": entries,
        "series": _series(entries),
        "recall_accuracy": [e.get("recall_accuracy") for e in entries],
        "architecture": architecture(cks[0].config),
        "task": cks[0].task,
        "text": setup["text_label"],
        "seq_len": setup["seq_len"],
        "max_queries": setup["max_queries"],
        "options": asdict(opts),
        "cached": cached,
        "provenance": provenance(("numpy", "torch", "transformers", "tokenizers")),
        "seconds": time.perf_counter() - t0,
    }
    if out_dir is not None:
        write_track_report(summary, out_dir)
    return TrackResult(summary, out_dir, cached)
