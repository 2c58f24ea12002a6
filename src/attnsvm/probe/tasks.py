"""One head's task: build its instance, solve its targets, save its arrays (also in a pool).

A task carries everything one head's analysis needs (picklable, no model); :func:`run_tasks`
runs them in this process or in spawned worker processes.  A head whose analysis raises (or
whose worker dies) gets an error record; the other heads go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_savez
from ..experiments.executors import ProcessExecutor, RayExecutor
from .analysis import ProbeOptions, analyze_head
from .capture import Capture
from .exactness import EXACT_FIELDS, exactness
from .form import form_key_mask, head_features
from .geometry import GEOMETRY_FIELDS
from .graph import GRAPH_FIELDS
from .instance import build_instance
from .nuclear import NUCLEAR_FIELDS
from .report import TABLE_COLUMNS
from .rope import ROPE_FIELDS, rope_block, rope_skipped

__all__ = ["HeadTask", "run_tasks", "error_record", "head_line", "layer_input_arrays",
           "ProgressFn"]


@dataclass
class HeadTask:
    """Everything one head's analysis needs (picklable, no model)."""

    layer: int
    head: int
    W_layer: list[Any]
    captures: list[Capture]
    causal: bool
    rotary: bool
    opts: ProbeOptions
    path: Path | None
    d_head: int | None = None
    forms: list[Any] | None = None
    return_arrays: bool = False


def error_record(layer: int, head: int, exc: BaseException, seconds: float) -> dict[str, Any]:
    """The record of a head whose analysis failed: every field None but ``layer``, ``head``,
    ``status`` (``"error"``), ``error`` (the exception's type and message) and ``seconds``."""
    rec: dict[str, Any] = dict.fromkeys((*TABLE_COLUMNS, *NUCLEAR_FIELDS, *GRAPH_FIELDS,
                                         *EXACT_FIELDS, *ROPE_FIELDS, *GEOMETRY_FIELDS))
    lines = str(exc).strip().splitlines()
    rec.update(layer=layer, head=head, status="error",
               error=f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__,
               seconds=seconds)
    return rec


def _run_head(task: HeadTask) -> dict[str, Any]:
    """Build, solve and save one head; returns its record (an error record if it raises)."""
    t0 = time.perf_counter()
    try:
        return _analyze_and_save(task, t0)
    except Exception as exc:  # noqa: BLE001 - one head's failure is reported, not fatal
        return error_record(task.layer, task.head, exc, time.perf_counter() - t0)


def _analyze_and_save(task: HeadTask, t0: float) -> dict[str, Any]:
    form = task.forms[task.head] if task.forms is not None else None
    feats = masks = None
    if form is not None and form.qk_norm:  # the head's normalized coordinates
        d = form.Wq.shape[1]
        feats = [(k[:, :d], q) for k, q in (head_features(form, c) for c in task.captures)]
    if form is not None and form.window is not None:
        masks = [form_key_mask(form, c.sequence.length) for c in task.captures]
    inst = build_instance(task.captures, task.layer, task.head, task.causal, feats, masks)
    t_build = time.perf_counter() - t0
    opts = task.opts
    if form is not None and (form.qk_norm or form.window is not None) and opts.graph is None:
        opts = replace(opts, graph=False)  # token classes of the raw input: not this head's
    rec, arrays = analyze_head(
        inst,
        task.W_layer,
        task.head,
        task.layer,
        task.captures,
        task.causal,
        task.rotary,
        opts,
        task.d_head,
        features=feats,
    )
    t1 = time.perf_counter()
    if form is not None:
        rec.update(exactness(form, task.captures, inst))
        if form.rot_dims:
            nrows = task.opts.rope_nuclear_rows if task.opts.nuclear else 0
            rec.update(rope_block(inst, task.captures, task.forms or [], task.head, nrows,
                                  arrays))
            rec["exact"] = bool(rec["exact"] and rec["rope_form_error"] is not None
                                and rec["rope_form_error"] <= 1e-6)
        else:
            rec.update(rope_skipped())
    rec["seconds"] += t_build + time.perf_counter() - t1
    rec["error"] = None
    if inst.qpos is not None and inst.seq_of is not None:
        arrays.update(qpos=inst.qpos, seq_of=inst.seq_of)
    if form is not None:
        arrays.update(scale=np.asarray(form.scale), rot_dims=np.asarray(form.rot_dims),
                      key_aug=np.asarray(form.key_aug), qk_norm=np.asarray(form.qk_norm))
        if form.omega is not None:
            arrays.update(omega=np.asarray(form.omega), rope_gain=np.asarray(form.rope_gain))
        if form.qk_norm:
            arrays.update(qs=_padded([c.qs[task.layer][task.head] for c in task.captures]),
                          ks=_padded([c.ks[task.layer][task.head] for c in task.captures]))
    if task.path is not None:
        if task.return_arrays:  # a remote worker: the driver writes the file
            rec["_arrays"] = arrays
        else:
            atomic_savez(task.path, **arrays)
    return rec


def _head_cell(config: Any, task: HeadTask) -> dict[str, Any]:
    """One head as a cell of the experiments' executors (``fn(config, cell)``): its worker
    writes the head file."""
    return _run_head(task)


def _ray_cell(config: Any, task: HeadTask) -> dict[str, Any]:
    """One head on a Ray worker: the record, with its arrays for the driver to write."""
    return _run_head(replace(task, return_arrays=True))


def _run_executor(ex: Any, fn: Callable[[Any, HeadTask], dict[str, Any]],
                  tasks: list[HeadTask], progress: ProgressFn | None) -> list[dict[str, Any]]:
    """Run the heads on one of :mod:`attnsvm.experiments.executors` (the executors of
    ``reproduce``); a lost worker or task gives every head not yet done an error record."""
    done: dict[int, dict[str, Any]] = {}
    it = ex.run(fn, None, tasks)
    while len(done) < len(tasks):
        try:
            k, rec = next(it)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - a lost worker or task
            for j, t in enumerate(tasks):
                if j not in done:
                    done[j] = error_record(t.layer, t.head, exc, 0.0)
            break
        arrays = rec.pop("_arrays", None)
        path = tasks[k].path
        if arrays is not None and path is not None:
            atomic_savez(path, **arrays)
        done[k] = rec
        if progress is not None:
            progress(head_line(rec), len(done), len(tasks))
    return [done[k] for k in range(len(tasks))]


def _padded(rows: list[np.ndarray], fill: float = 0.0) -> np.ndarray:
    """Stack arrays of shape (T_s, ...) into (S, T_max, ...), padded with ``fill``."""
    T = max(r.shape[0] for r in rows)
    out = np.full((len(rows), T, *rows[0].shape[1:]), fill, dtype=rows[0].dtype)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out


def layer_input_arrays(captures: list[Capture], layer: int) -> dict[str, np.ndarray]:
    """What defines every head's constraints at ``layer``: ``input_ids`` (S, T) (-1 padded),
    ``lengths`` (S,), ``X`` (S, T, d) float64, the layer input every head reads."""
    return {
        "input_ids": _padded([np.asarray(c.sequence.ids, dtype=np.int64) for c in captures], -1),
        "lengths": np.array([c.sequence.length for c in captures], dtype=np.int64),
        "X": _padded([np.asarray(c.X[layer], dtype=np.float64) for c in captures]),
    }


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def head_line(rec: dict[str, Any]) -> str:
    """One head's result in one line (the progress messages)."""
    if rec.get("status") == "error":
        return (f"layer {rec['layer']} head {rec['head']}: error {rec.get('error')} "
                f"({rec['seconds']:.1f} s)")
    line = f"layer {rec['layer']} head {rec['head']}: m={rec['m']} "
    if rec.get("rope_status") is not None:
        line += (f"lifted {rec['rope_status']} corr_rope={_fmt(rec.get('corr_rope'))} "
                 f"exact={rec.get('exact')}; position-free ")
    line += f"{rec['status']} corr_fro={_fmt(rec.get('corr_fro'))}"
    if rec.get("nuc_status") is not None:
        line += f" corr_nuc={_fmt(rec.get('corr_nuc'))} rank_nuc={rec.get('rank_nuc') or '-'}"
    for nm in ("linf", "spec"):
        if rec.get(f"{nm}_status") is not None:
            line += f" corr_{nm}={_fmt(rec.get(f'corr_{nm}'))}"
    if rec.get("graph_status") is not None:
        line += f" corr_graph={_fmt(rec.get('corr_graph'))} n_eq={rec.get('graph_n_eq')}"
    return line + f" ({rec['seconds']:.1f} s)"


#: ``progress(message, done, total)``: a stage (``done`` None) or ``done`` of ``total`` heads.
ProgressFn = Callable[[str, "int | None", "int | None"], None]


def run_tasks(
    tasks: list[HeadTask], jobs: int, progress: ProgressFn | None, backend: str = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Run the head tasks: in this process, in a pool of ``jobs`` spawned processes
    (``backend="local"``), or as Ray tasks (``backend="ray"``, on the cluster at ``address``
    or a local one of ``jobs`` CPUs)."""
    records: list[dict[str, Any]] = []
    total = len(tasks)
    if progress is not None:
        progress(f"solving {total} heads", 0, total)
    if backend != "ray" and (jobs <= 1 or len(tasks) <= 1):
        for task in tasks:
            records.append(_run_head(task))
            if progress is not None:
                progress(head_line(records[-1]), len(records), total)
        return records
    # the experiments' executors (the package imports pandas: only here)

    if backend == "ray":
        with RayExecutor(address, jobs) as ex:
            return _run_executor(ex, _ray_cell, tasks, progress)
    with ProcessExecutor(min(jobs, len(tasks))) as ex:
        return _run_executor(ex, _head_cell, tasks, progress)
