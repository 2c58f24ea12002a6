"""``attnsvm pretrain``: train a small decoder-only transformer and write its checkpoints.

A thin layer over :func:`attnsvm.lm.pretrain`: the options build a
:class:`~attnsvm.lm.PretrainConfig` (checked before anything is written), progress (step, loss,
time left) goes to stderr, stdout gets the checkpoint folders (or one JSON object, ``--json``).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..lm.config import OPTIMIZERS, POSITIONS, TASKS, PretrainConfig
from ..lm.trainer import check_pretrain_out, pretrain
from ._output import Progress, emit_json, emit_text

__all__ = ["add_pretrain_arguments", "run_pretrain"]


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``pretrain`` options to a (sub)parser."""
    parser.add_argument("--task", choices=list(TASKS), default="induction",
                        help="induction (repeated random segments, default) or corpus "
                        "(next-token prediction on the shipped English text)")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers (default 2)")
    parser.add_argument("--heads", type=int, default=2, help="heads per layer (default 2)")
    parser.add_argument("--d-model", type=int, default=32, help="width (default 32)")
    parser.add_argument("--positions", choices=list(POSITIONS), default="rope",
                        help="rope (a LLaMA model, default) or learned (a GPT-2 model)")
    parser.add_argument("--optimizer", choices=list(OPTIMIZERS), default="adamw",
                        help="adamw (default), sgd (momentum 0.9) or muon (polar factor of the "
                        "momentum for hidden matrices, AdamW for the rest)")
    parser.add_argument("--lr", type=float, default=None,
                        help="step size (default: adamw 3e-3, sgd 0.1, muon 0.02)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    parser.add_argument("--checkpoints", type=int, default=4,
                        help="checkpoints after step 0, log-spaced (default 4)")
    parser.add_argument("--batch", type=int, default=32, help="sequences per step (default 32)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per sequence (default: 1 + 2 * segment + noise for "
                        "induction, 32 for corpus)")
    parser.add_argument("--vocab", type=int, default=32,
                        help="induction: random tokens in the vocabulary (default 32)")
    parser.add_argument("--segment", type=int, default=8,
                        help="induction: length of the repeated segment (default 8)")
    parser.add_argument("--noise", type=int, default=16,
                        help="induction: noise tokens around and between the two copies "
                        "(default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (new, empty, or an earlier pretrain output)")
    parser.add_argument("--json", action="store_true", help="print run.json on stdout")


def run_pretrain(args: argparse.Namespace) -> int:
    """Run ``attnsvm pretrain`` with parsed arguments; return the exit code."""
    cfg = PretrainConfig(task=args.task, layers=args.layers, heads=args.heads,
                         d_model=args.d_model, positions=args.positions,
                         optimizer=args.optimizer, steps=args.steps,
                         checkpoints=args.checkpoints, seed=args.seed, lr=args.lr,
                         batch=args.batch, seq_len=args.seq_len, vocab=args.vocab,
                         segment=args.segment, noise=args.noise)
    check_pretrain_out(args.out)
    _quiet_transformers()
    bar = Progress(cfg.steps, "pretrain", unit="steps")

    def progress(step: int, steps: int, loss: float) -> None:
        bar.label = f"pretrain: loss {loss:.4f}"
        bar.update(step)

    try:
        result = pretrain(cfg, args.out, progress=progress)
    finally:
        bar.close()
    if args.json:
        emit_json(result.run)
    else:
        emit_text(_summary(result.run, args.out))
    return 0


def _summary(run: dict[str, Any], out: str) -> str:
    cfg = run["config"]
    last = run["loss"][str(run["schedule"][-1])]
    lines = [f"{run['architecture']} ({cfg['layers']} layers, {cfg['heads']} heads, d_model "
             f"{cfg['d_model']}, {cfg['positions']}) trained on {cfg['task']} with "
             f"{cfg['optimizer']} for {cfg['steps']} steps in {run['seconds']:.1f} s; final "
             f"loss {last:.4f}"]
    lines += [f"  {os.path.join(out, name)}" for name in run["checkpoints"]]
    return "\n".join(lines)


def _quiet_transformers() -> None:
    """No progress bars or load reports from transformers (attnsvm prints its own)."""
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
    except ImportError:  # reported as a missing extra by the library
        pass
