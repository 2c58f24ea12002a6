"""``attnsvm train INSTANCE.npz --param W|KQ [--optimizer gd|ngd|polyak|md] [--lr F]
[--steps N] [--seed S] [--out RUN.npz] [--json]``.

Trains the one-layer attention model (logistic loss, linear head ``v``, float64) with the exact
update direction of :mod:`attnsvm.train`, then compares the final key-query matrix with the
Frobenius and nuclear Att-SVM solutions of the tokens it selects.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

__all__ = ["add_train_arguments", "run_train", "CLI_OPTIMIZERS"]

CLI_OPTIMIZERS = ("gd", "ngd", "polyak", "md")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``attnsvm train``."""
    parser.add_argument("instance", help="instance .npz with X, Z or query_index, Y and v")
    parser.add_argument("--param", choices=["W", "KQ"], default="W",
                        help="key-query matrix W or factors (K, Q) (default W)")
    parser.add_argument("--optimizer", choices=list(CLI_OPTIMIZERS), default="ngd",
                        help="gd, normalized gd (default), polyak step, l_3 mirror descent")
    parser.add_argument("--lr", type=float, default=0.1, help="step size (default 0.1)")
    parser.add_argument("--steps", type=int, default=2000, help="iterations (default 2000)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random start, entries 0.01 N(0,1) (default 0)")
    parser.add_argument("--out", default=None,
                        help="write W, selected (and K, Q), loss history to this .npz")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _corr(A: Any, B: Any) -> float | None:
    import numpy as np

    if B is None:
        return None
    den = float(np.linalg.norm(A) * np.linalg.norm(B))
    if not math.isfinite(den) or den == 0.0:
        return None
    return float(np.sum(A * B) / den)


def _lp_corr(inst: Any, selected: Any, W: Any, p: float) -> float | None:
    """Correlation of ``W`` with the entrywise l_p Att-SVM for ``selected`` (None if none)."""
    import warnings

    import numpy as np

    from attnsvm.svm import solve_lp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = solve_lp(inst, p, alpha=selected)
    if sol.W is None:
        return None
    return float(np.vdot(W, sol.W) / (np.linalg.norm(W) * np.linalg.norm(sol.W)))


def _svm_corrs(inst: Any, selected: Any, W: Any) -> tuple[float | None, float | None]:
    """Correlation of ``W`` with the Frobenius and nuclear Att-SVM solutions for ``selected``."""
    from attnsvm.svm import solve_fro, solve_nuc

    out: list[float | None] = []
    for solve in (solve_fro, solve_nuc):
        sol = solve(inst, selected)
        out.append(_corr(W, sol.W) if sol.status != "infeasible" and sol.W is not None
                   else None)
    return out[0], out[1]


def run_train(args: argparse.Namespace) -> int:
    """Train on the instance, write ``--out``, print ``--json``; returns 0.

    Raises
    ------
    InvalidInputError
        Unreadable instance, or one without labels ``Y`` and head ``v``.
    InvalidParameterError
        Bad ``--param``, ``--optimizer``, ``--lr``, ``--steps`` or ``--seed``.
    """
    import numpy as np

    from attnsvm._io import atomic_savez
    from attnsvm._validation import check_choice, check_positive
    from attnsvm.exceptions import InvalidInputError, InvalidParameterError
    from attnsvm.instance import Instance

    t0 = time.perf_counter()
    param = check_choice("param", getattr(args, "param", "W"), ("W", "KQ"))
    optimizer = check_choice("optimizer", getattr(args, "optimizer", "ngd"), CLI_OPTIMIZERS)
    lr = float(check_positive("lr", getattr(args, "lr", 0.1)))
    steps = int(check_positive("steps", getattr(args, "steps", 2000), integer=True,
                               allow_zero=True))
    seed = getattr(args, "seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParameterError(
            f"The 'seed' parameter must be an integer >= 0. Got {seed!r} instead.")
    inst = Instance.load(args.instance)
    if not inst.has_head:
        raise InvalidInputError(
            f"The instance '{args.instance}' must have labels 'Y' and head 'v' for training.")

    import torch

    from attnsvm.train import train

    torch.set_num_threads(1)  # small problems: threads only add overhead
    every = max(1, steps // 1000)
    res = train(inst, param=param, optimizer=optimizer, lr=lr, steps=steps, seed=seed,
                record_every=every, dtype=torch.float64)
    assert res.W is not None and res.loss_history is not None
    W = res.W
    if not np.all(np.isfinite(W)):  # pragma: no cover - guarded by the exact direction
        raise ArithmeticError("training produced a non-finite W")
    if args.out:
        arrays: dict[str, Any] = {
            "W": W, "selected": res.selected, "max_prob": res.max_prob,
            "loss_history": res.loss_history, "loss_steps": res.record_steps,
        }
        if param == "KQ":
            arrays["K"] = res.K
            arrays["Q"] = res.Q
        atomic_savez(args.out, **arrays)
    if getattr(args, "json", False):
        corr_fro, corr_nuc = _svm_corrs(inst, res.selected, W)
        out = {
            "param": param, "optimizer": optimizer, "lr": lr, "steps": steps, "seed": seed,
            "selected": [int(t) for t in res.selected],
            "corr_fro": corr_fro, "corr_nuc": corr_nuc,
            "max_prob": float(np.mean(res.max_prob)),
            "min_max_prob": float(np.min(res.max_prob)),
            "loss": float(res.loss), "norm": float(np.linalg.norm(W)),
            "train_seconds": res.seconds,
            "seconds": time.perf_counter() - t0,
        }
        if optimizer == "md":
            # l_p mirror descent tends to the entrywise l_p Att-SVM (Julistiono et al.), p = 3
            out["corr_lp"], out["lp_p"] = _lp_corr(inst, res.selected, W, 3.0), 3.0
        json.dump(out, sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    return 0
