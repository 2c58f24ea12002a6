"""``attnsvm train INSTANCE.npz --param W|KQ [--optimizer gd|ngd|polyak|md|adam|sign|spectral|
muon|signum] [--adam-eps F] [--betas B1,B2] [--ns-steps N] [--lr F] [--steps N] [--seed S]
[--backend B] [--out RUN.npz] [--json]``.

Trains the one-layer attention model (logistic loss, linear head ``v``, float64) with the exact
update direction of :mod:`attnsvm.train`, then compares the final key-query matrix with the
Frobenius and nuclear Att-SVM solutions of the tokens it selects
(:func:`attnsvm.train.compare_with_svms`) and reports its margin ratio in the four geometries
(``margin_ratios``: fro, nuc, linf, spec; :func:`attnsvm.svm.margin_ratios`).  Prints a short
summary, or one JSON object with ``--json``; progress of long runs goes to stderr.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from attnsvm._memory import check_file_memory
from attnsvm._validation import check_choice, check_positive, check_steps
from attnsvm.exceptions import InvalidInputError, InvalidParameterError, SolverError
from attnsvm.instance import Instance
from attnsvm.svm.margins import margin_ratios

from ._output import Progress, check_out_path, emit_json, emit_text, save_npz_atomic

__all__ = ["add_train_arguments", "run_train", "CLI_OPTIMIZERS", "format_summary"]

CLI_OPTIMIZERS = ("gd", "ngd", "polyak", "md", "adam", "sign", "spectral", "muon", "signum")
CLI_PARAMS = ("W", "KQ")
CLI_BACKENDS = ("auto", "torch", "numpy", "triton")

#: Runs shorter than this (seconds) print no progress.
_QUIET_SECONDS = 1.0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``attnsvm train``."""
    parser.add_argument("instance", help="instance .npz with X, Z or query_index, Y and v")
    parser.add_argument("--param", choices=list(CLI_PARAMS), default="W",
                        help="key-query matrix W or factors (K, Q) (default W)")
    parser.add_argument("--optimizer", choices=list(CLI_OPTIMIZERS), default="ngd",
                        help="gd, normalized gd (default), polyak step, l_3 mirror descent")
    parser.add_argument("--adam-eps", type=float, default=1e-8, dest="adam_eps",
                        help="Adam's eps, >= 0 (default 1e-8)")
    parser.add_argument("--betas", default="0.9,0.999", metavar="B1,B2",
                        help="Adam's betas; B1 is also the momentum of muon and signum "
                             "(default 0.9,0.999)")
    parser.add_argument("--ns-steps", type=int, default=0, dest="ns_steps",
                        help="muon: Newton-Schulz iterations instead of the exact polar "
                             "factor (default 0: exact)")
    parser.add_argument("--lr", type=float, default=0.1, help="step size (default 0.1)")
    parser.add_argument("--steps", type=int, default=2000, help="iterations (default 2000)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the random start, entries 0.01 N(0,1) (default 0)")
    parser.add_argument("--backend", choices=list(CLI_BACKENDS), default="auto",
                        help="engine: auto (default), torch, numpy, or the fused triton kernel")
    parser.add_argument("--out", default=None,
                        help="write W, selected (and K, Q), loss history to this .npz")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def format_summary(out: dict[str, Any]) -> str:
    """The human summary of a run (the ``--json`` object as a few lines)."""

    def num(x: Any, fmt: str = ".6f") -> str:
        return "n/a (infeasible)" if x is None else format(x, fmt)

    lines = [
        f"trained {out['param']} with {out['optimizer']} (lr {out['lr']:g}) for "
        f"{out['steps']} steps in {out['train_seconds']:.2f} s",
        f"selected tokens: {' '.join(str(t) for t in out['selected'])}",
        f"largest probability: mean {out['max_prob']:.6f}, min {out['min_max_prob']:.6f}",
        f"final loss: {out['loss']:.6g}   ||W||_F: {out['norm']:.6g}",
        "Att-SVMs of the selected tokens (the token choice GD ended at):",
        f"{'corr with the Frobenius Att-SVM:':34s}{num(out['corr_fro'])}",
        f"{'corr with the nuclear Att-SVM:':34s}{num(out['corr_nuc'])}",
    ]
    if "corr_lp" in out:
        label = f"corr with the l_{out['lp_p']:g} Att-SVM:"
        lines.append(f"{label:34s}{num(out['corr_lp'])}")
    mr = out.get("margin_ratios") or {}
    if mr:
        shown = ", ".join(f"{k} {num(v, '.4f')}" for k, v in mr.items())
        lines.append(f"{'margin ratios (1 = max margin):':34s}{shown}")
    lines += [f"warning: {w}" for w in out.get("warnings", [])]
    lines.append(f"total time: {out['seconds']:.2f} s")
    return "\n".join(lines)


def _check_args(args: argparse.Namespace) -> dict[str, Any]:
    """Validate the options before any work (InvalidParameterError / InvalidInputError)."""
    opts = {
        "param": check_choice("param", getattr(args, "param", "W"), CLI_PARAMS),
        "optimizer": check_choice("optimizer", getattr(args, "optimizer", "ngd"),
                                  CLI_OPTIMIZERS),
        "lr": float(check_positive("lr", getattr(args, "lr", 0.1))),
        "steps": check_steps(getattr(args, "steps", 2000)),
        "backend": check_choice("backend", getattr(args, "backend", "auto"), CLI_BACKENDS),
    }
    seed = getattr(args, "seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidParameterError(
            f"The 'seed' parameter must be an integer >= 0. Got {seed!r} instead.")
    opts["seed"] = seed
    opts["adam_eps"] = float(check_positive("adam_eps", getattr(args, "adam_eps", 1e-8),
                                            allow_zero=True))
    opts["ns_steps"] = int(check_positive("ns_steps", getattr(args, "ns_steps", 0),
                                          integer=True, allow_zero=True))
    betas = str(getattr(args, "betas", "0.9,0.999"))
    try:
        b = tuple(float(x) for x in betas.split(","))
    except ValueError:
        b = ()
    if len(b) != 2 or not all(0.0 <= x < 1.0 for x in b):
        raise InvalidParameterError(
            f"The 'betas' parameter must be two numbers in [0, 1) as B1,B2. Got {betas!r} "
            "instead.")
    opts["betas"] = b
    check_out_path(getattr(args, "out", None), "--out")
    return opts


def run_train(args: argparse.Namespace) -> int:
    """Train on the instance, then write ``--out`` and print the summary or ``--json``.

    Returns 0.

    Raises
    ------
    InvalidInputError
        Unreadable instance, one without labels ``Y`` and head ``v``, or a bad ``--out``.
    InvalidParameterError
        Bad ``--param``, ``--optimizer``, ``--lr``, ``--steps``, ``--seed`` or ``--backend``.
    """
    t0 = time.perf_counter()
    opts = _check_args(args)
    check_file_memory("train", args.instance, param=opts["param"])  # before any array is read
    inst = Instance.load(args.instance)
    if not inst.has_head:
        raise InvalidInputError(
            f"The instance '{args.instance}' must have labels 'Y' and head 'v' for training.")

    # PyTorch once the input is checked: bad input exits without its seconds of import
    from attnsvm.train import compare_with_svms, train

    steps = opts["steps"]
    bar = Progress(steps, "train")
    t_start = time.perf_counter()
    shown = [False]

    def progress(done: int, total: int) -> None:
        if shown[0] or time.perf_counter() - t_start > _QUIET_SECONDS:
            shown[0] = True
            bar.update(done)

    res = train(inst, param=opts["param"], optimizer=opts["optimizer"], lr=opts["lr"],
                steps=steps, seed=opts["seed"], record_every=max(1, steps // 1000),
                backend=opts["backend"], progress=progress, adam_eps=opts["adam_eps"],
                betas=opts["betas"], ns_steps=opts["ns_steps"])
    if shown[0]:
        bar.close()
    W = res.W
    with np.errstate(all="ignore"):
        w_norm = float(np.linalg.norm(W)) if W is not None else float("nan")
    if W is None or not np.all(np.isfinite(W)) or not np.isfinite(w_norm):
        raise SolverError(  # the entries can be finite while their norm overflows
            f"training diverged: ||W||_F = {w_norm:g} after {steps} steps with lr "
            f"{opts['lr']:g}; use a smaller --lr (nothing written)")
    out: dict[str, Any] = {
        "param": opts["param"], "optimizer": opts["optimizer"], "lr": opts["lr"],
        "steps": steps, "seed": opts["seed"],
        "selected": [int(t) for t in res.selected],
    }
    # l_p mirror descent tends to the entrywise l_p Att-SVM (Julistiono et al.), p = 3
    cmp = compare_with_svms(inst, W, res.selected,
                            lp=3.0 if opts["optimizer"] == "md" else None)
    out["corr_fro"], out["corr_nuc"] = cmp["corr_fro"], cmp["corr_nuc"]
    out["svm_status"] = {k: cmp[f"status_{k}"] for k in ("fro", "nuc")}
    out["warnings"] = [
        f"the {k} Att-SVM of the selected tokens fails its own check "
        f"({cmp.get(f'reason_{k}') or 'status ' + repr(st)}); corr_{k} is against an "
        f"unverified answer" for k, st in out["svm_status"].items()
        if st not in ("optimal", "infeasible")]
    out |= {
        "max_prob": float(np.mean(res.max_prob)),
        "min_max_prob": float(np.min(res.max_prob)),
        "loss": float(res.loss), "norm": float(np.linalg.norm(W)),
        "train_seconds": res.seconds,
    }
    if "corr_lp" in cmp:
        out["corr_lp"], out["lp_p"] = cmp["corr_lp"], cmp["lp_p"]
    out["margin_ratios"] = margin_ratios(W, inst, alpha=res.selected)
    if opts["optimizer"] == "adam":
        out["adam_eps"], out["betas"] = opts["adam_eps"], list(opts["betas"])
    if args.out:
        arrays: dict[str, Any] = {
            "W": W, "selected": res.selected, "max_prob": res.max_prob,
            "loss_history": res.loss_history, "loss_steps": res.record_steps,
        }
        if opts["param"] == "KQ":
            arrays["K"] = res.K
            arrays["Q"] = res.Q
        save_npz_atomic(args.out, **arrays)
    out["seconds"] = time.perf_counter() - t0
    if getattr(args, "json", False):
        emit_json(out)
    else:
        emit_text(format_summary(out))
    return 0
