"""``attnsvm track``: probe every checkpoint of a training run and follow its heads.

A thin layer over :func:`attnsvm.lm.track`: progress lines on stderr, one JSON object
(``--json``) or a short summary on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..lm.track import TrackOptions, track
from ._output import check_out_path, emit_json, emit_text

__all__ = ["add_track_arguments", "run_track"]


def add_track_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``track`` options to a (sub)parser."""
    parser.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                        help="model folders, or one folder holding step-* folders")
    parser.add_argument("--layers", default=None, metavar="L,L,...",
                        help="layers to probe, counted from 0 (default: all)")
    parser.add_argument("--no-nuclear", dest="nuclear", action="store_false",
                        help="skip the nuclear-norm Att-SVM")
    parser.add_argument("--graph", action="store_true",
                        help="also solve the Graph-SVM of every head (off by default)")
    parser.add_argument("--text", default=None, metavar="FILE",
                        help="text to run every checkpoint on (default: the checkpoints' task "
                        "evaluation text, else the bundled corpus)")
    parser.add_argument("--seq-len", type=int, default=None, metavar="T",
                        help="tokens per sequence (default: the task's, else 32)")
    parser.add_argument("--max-queries", type=int, default=None, metavar="N",
                        help="query rows per checkpoint (default: the task's eval text, else "
                        "352)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="checkpoints probed at once in separate processes (default 1)")
    parser.add_argument("--hierarchy", action="store_true",
                        help="also analyse every head with the embeddings as its tokens (the "
                        "hierarchy test: layer input vs embeddings)")
    parser.add_argument("--geometry", action="store_true",
                        help="also solve the max-norm and spectral Att-SVMs of every "
                        "non-rotary head (slow for wide models)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random controls")
    parser.add_argument("--out", default="attnsvm-track", metavar="DIR",
                        help="output folder and cache (default attnsvm-track/)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _say(msg: str) -> None:
    try:
        sys.stderr.write(f"track: {msg}\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # pragma: no cover - stderr closed
        pass


def _f(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _summary_text(s: dict[str, Any], out: str) -> str:
    lines = [f"{len(s['checkpoints'])} checkpoints, steps "
             f"{[c['step'] for c in s['checkpoints']]}, {s['seconds']:.1f} s"]
    for h in s["series"]:
        parts = [f"  layer {h['layer']} head {h['head']}:"]
        for f in ("corr_fro", "corr_control", "corr_rope", "task_accuracy", "hier_delta"):
            if f in h:
                parts.append(f"{f} {' '.join(_f(v) for v in h[f])}")
        lines.append(" ".join(parts))
    lines.append(f"report: {os.path.join(out, 'index.html')}")
    return "\n".join(lines)


def run_track(args: argparse.Namespace) -> int:
    """Run ``attnsvm track`` with parsed arguments; return the exit code (1 when some head's
    analysis failed; the others are reported)."""
    check_out_path(args.out, "--out", kind="dir")
    opts = TrackOptions(layers=args.layers, nuclear=args.nuclear, graph=args.graph,
                        text=args.text, seq_len=args.seq_len, max_queries=args.max_queries,
                        jobs=args.jobs, seed=args.seed, hierarchy=args.hierarchy,
                        geometry=args.geometry)
    result = track(args.checkpoints, opts, args.out, progress=_say)
    if args.json:
        emit_json(result.summary)
    else:
        emit_text(_summary_text(result.summary, args.out))
    errors = [(c["step"], r) for c in result.summary["checkpoints"] for r in c["heads"]
              if r.get("status") == "error"]
    for step, r in errors:
        sys.stderr.write(f"error: step {step} layer {r['layer']} head {r['head']}: "
                         f"{r.get('error')}\n")
    return 1 if errors else 0
