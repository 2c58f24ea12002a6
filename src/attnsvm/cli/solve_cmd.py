"""``attnsvm solve INSTANCE.npz [--norm fro|nuc|linf|spec] [--out RESULT.npz] [--json]``.

A thin command: the work and the verification are :func:`attnsvm.report_solve.solve_report`;
exit 0 only for a verified optimum, 3 for a verified infeasibility certificate, 1 for an
answer that fails its own check (status ``inaccurate``, nothing written).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from attnsvm._memory import check_file_memory
from attnsvm._validation import check_positive
from attnsvm.instance import Instance
from attnsvm.report_solve import DEFAULT_TOL, solve_report
from attnsvm.svm.solution import INFEASIBLE, OPTIMAL

from ._output import check_out_path, emit_text, json_text, save_npz_atomic, write_warnings

__all__ = ["add_solve_arguments", "run_solve"]


def add_solve_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``attnsvm solve``."""
    parser.add_argument("instance", help="instance .npz (X; Z or query_index; alpha, or Y and "
                        "v; rotary: also freqs, pos, qpos)")
    parser.add_argument("--norm", choices=["fro", "nuc", "linf", "spec"], default="fro",
                        help="norm of the SVM (default fro; linf: entrywise max, spec: "
                             "spectral)")
    parser.add_argument("--out", default=None, metavar="RESULT.npz",
                        help="write W (M for a rotary instance), alpha and dual (or certificate "
                        "and alpha) here")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--tol", type=float, default=None,
                        help="largest accepted KKT residual (default 1e-6)")


def run_solve(args: argparse.Namespace) -> int:
    """Solve the instance's Att-SVM; exit code 0 verified, 3 infeasible, 1 inaccurate."""
    out = check_out_path(args.out)
    tol = DEFAULT_TOL if args.tol is None else check_positive("--tol", args.tol)
    check_file_memory("solve", args.instance, norm=args.norm)  # before any array is read
    inst = Instance.load(args.instance)
    with warnings.catch_warnings(record=True) as caught:
        if inst.is_rotary:  # the lifted Att-SVM (SPEC.md "Rotary instances")
            # the lifted solver and its phase tables stay out of the plain solve path
            from attnsvm.rotary_instance import rotary_solve_report

            rep: Any = rotary_solve_report(inst, args.norm, tol=tol)
        else:
            rep = solve_report(inst, args.norm, tol=tol)
    # the solver's warnings first: a failed check's error line is the last word
    write_warnings(caught)
    text = json_text(rep.to_dict()) if args.json else rep.text()  # complete before writing
    if out is not None and rep.verified:
        save_npz_atomic(out, **rep.arrays())
    emit_text(text)
    if rep.status == OPTIMAL:
        return 0
    if rep.status == INFEASIBLE:
        return 3
    sys.stderr.write(f"error: the {args.norm} solution fails its own check ({rep.reason})"
                     f"{'; nothing written to ' + str(out) if out is not None else ''}\n")
    return 1
