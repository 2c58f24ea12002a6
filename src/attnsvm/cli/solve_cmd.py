"""``attnsvm solve INSTANCE.npz [--norm fro|nuc] [--out RESULT.npz] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
import time

__all__ = ["add_solve_arguments", "run_solve"]


def add_solve_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``attnsvm solve``."""
    parser.add_argument("instance", help="instance .npz (X, Z or query_index, Y, v, alpha)")
    parser.add_argument("--norm", choices=["fro", "nuc"], default="fro",
                        help="norm of the SVM (default fro)")
    parser.add_argument("--out", default=None, help="write W and alpha (or certificate) here")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run_solve(args: argparse.Namespace) -> int:
    """Solve the instance's Att-SVM; exit code 0 solved, 3 infeasible."""
    from attnsvm._io import atomic_savez
    from attnsvm.instance import Instance
    from attnsvm.svm import local_optimality, solve, solve_fro
    from attnsvm.svm.solution import INFEASIBLE

    t0 = time.perf_counter()
    inst = Instance.load(args.instance)
    alpha = inst.token_choice()
    sol = solve(inst, args.norm, alpha=alpha)
    locally_optimal = None
    if inst.has_head and sol.W is not None:
        # the local-optimality test uses the support of the Frobenius solution (TF-SVM)
        fro = sol if args.norm == "fro" else solve_fro(inst, alpha)
        locally_optimal = local_optimality(inst, alpha, fro).locally_optimal
    elif inst.has_head:
        locally_optimal = False
    seconds = time.perf_counter() - t0
    if args.out:
        if sol.W is not None:
            atomic_savez(args.out, W=sol.W, alpha=alpha)
        else:
            atomic_savez(args.out, certificate=sol.certificate_matrix(), alpha=alpha)
    if args.json:
        out = sol.summary()
        out["locally_optimal"] = locally_optimal
        out["seconds"] = seconds
        out["rank"] = sol.rank if sol.W is not None else None
        out["is_optimal"] = sol.is_optimal(1e-6) if sol.W is not None else False
        json.dump(out, sys.stdout, allow_nan=False, default=_jsonable)
        sys.stdout.write("\n")
    else:
        if sol.W is not None:
            print(f"{sol.status}: ||W||_{args.norm} = {sol.objective:.10g}, margin "
                  f"{sol.margin:.3g}, {len(sol.support())} support constraints, "
                  f"locally optimal: {locally_optimal}, {seconds:.3f} s")
        else:
            print(f"infeasible: certificate residual {sol.certificate_residual():.1e}, "
                  f"{seconds:.3f} s")
    return 3 if sol.status == INFEASIBLE else 0


def _jsonable(obj: object) -> object:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
