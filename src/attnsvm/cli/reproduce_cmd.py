"""``attnsvm reproduce [NAME ...] [--quick] [--out DIR]``: the papers' figures as one report."""

from __future__ import annotations

import argparse
import sys

from attnsvm.exceptions import InvalidParameterError
from attnsvm.experiments.registry import describe_figures, get_figure
from attnsvm.experiments.report import summary_text
from attnsvm.experiments.runner import reproduce, resolve_backend

from ._output import check_out_path, emit_text

__all__ = ["add_reproduce_arguments", "run_reproduce"]


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``reproduce`` options to ``parser``."""
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="figures to run (default: all; see --list)")
    parser.add_argument("--list", action="store_true",
                        help="list the figures with their measured times (those of the last "
                             "run in --out when there is one) and exit")
    parser.add_argument("--quick", action="store_true",
                        help="reduced sizes (every figure in about a minute on two cores)")
    parser.add_argument("--out", default="attnsvm-report", metavar="DIR",
                        help="report folder (default: attnsvm-report/)")
    parser.add_argument("--backend", default=None, choices=("batched", "process", "ray"),
                        help="where sweep cells run: in this process (default), a local "
                             "process pool (the default with --workers), or Ray")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes of the pool / CPUs of a local Ray cluster")
    parser.add_argument("--address", default=None,
                        help="address of an existing Ray cluster (with --backend ray)")
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="progress with the time left on stderr (the default; one line "
                             "every few seconds when stderr is not a terminal)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress lines")


def run_reproduce(args: argparse.Namespace) -> int:
    """Run the ``reproduce`` command; returns the exit code.

    Raises
    ------
    InvalidParameterError
        Unknown figure names (the message lists the valid ones), bad ``--workers``,
        ``--address`` without ``--backend ray``, or ``--out`` an existing file or an
        unwritable place (checked before anything runs).
    """
    if args.list:
        emit_text(describe_figures(args.out))  # times of the last run there, if any
        return 0
    check_out_path(args.out, "--out", kind="dir")  # before any figure runs
    for name in args.names:
        get_figure(name)
    resolve_backend(args.backend, args.workers)  # --workers with 'batched' fails here, early
    if args.address and args.backend != "ray":
        raise InvalidParameterError("The '--address' option needs '--backend ray'.")

    summary = reproduce(args.names or None, out=args.out, quick=args.quick,
                        backend=args.backend, workers=args.workers, address=args.address,
                        progress=args.progress, argv=sys.argv)
    emit_text(f"{summary_text(summary, args.names)}\nreport: {args.out}/index.html")
    return 0
