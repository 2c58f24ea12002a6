"""AdamW vs Muon: which Att-SVM geometry do the heads of a trained decoder end nearest?

Run from the repository root::

    python benchmarks/bench_training_geometry.py --out M            # train + track, then table
    python benchmarks/bench_training_geometry.py --out M --table    # the table of runs in M

For each optimizer and seed: ``attnsvm pretrain --positions learned`` (a GPT-2 model: its
heads' bilinear forms are their scores, so every geometry's Att-SVM is of the true score), 2
layers x 2 heads, d_model 32, the induction task, ``--steps`` steps; then ``attnsvm track`` of
the last checkpoint with ``--geometry --hierarchy`` (Frobenius, nuclear, max-norm and spectral
Att-SVMs of each head's own selections; the layer-input vs embedding instance).  The table has,
per run and head, the correlation with each target, its control (the same target against the
layer's other head) and the margin ratio in each norm.  Wall time: about 3-15 min per run on
2 shared cores (Muon's exact SVDs double a step's cost; the spectral and nuclear SDPs of the
track dominate the rest).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

NORMS = (("fro", "corr_fro", "corr_control", "margin_ratio"),
         ("nuc", "corr_nuc", "corr_nuc_control", "margin_ratio_nuc"),
         ("linf", "corr_linf", "corr_linf_control", "margin_ratio_linf"),
         ("spec", "corr_spec", "corr_spec_control", "margin_ratio_spec"))


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder of the runs")
    ap.add_argument("--optimizers", default="adamw,muon")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--table", action="store_true", help="only tabulate the runs in --out")
    return ap.parse_args()


def _run(cmd: list[str], log: Path) -> None:
    with log.open("w") as fh:
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT)


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3g}"


def table(out: Path) -> str:
    """Markdown rows: run, final recall, head, and per norm corr (control) / margin ratio."""
    lines = ["| run | recall | head | " + " | ".join(f"{n}: corr (control) / ratio"
                                                    for n, *_ in NORMS) + " | hier_delta |",
             "|---" * (4 + len(NORMS)) + "|"]
    for js in sorted(out.glob("track-*.json")):
        try:
            s = json.loads(js.read_text())
        except ValueError:  # a run still in progress
            continue
        ck = s["checkpoints"][-1]
        if not any("status_linf" in r for r in ck["heads"]):
            continue  # not a --geometry track
        rec = ck.get("recall_accuracy")
        for r in ck["heads"]:
            cells = [f"{_f(r.get(c))} ({_f(r.get(k))}) / {_f(r.get(m))}" for _, c, k, m in NORMS]
            lines.append(f"| {js.stem[6:]} | {_f(rec)} | L{r['layer']}H{r['head']} | "
                         + " | ".join(cells) + f" | {_f(r.get('hier_delta'))} |")
    return "\n".join(lines)


def main() -> int:
    a = _parse()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not a.table:
        for opt in a.optimizers.split(","):
            for seed in a.seeds.split(","):
                name = f"{opt}-s{seed}"
                run = out / name
                _run(["attnsvm", "pretrain", "--positions", "learned", "--optimizer", opt,
                      "--seed", seed, "--steps", str(a.steps), "--checkpoints", "8", "--out",
                      str(run)], out / f"{name}.log")
                last = sorted(run.glob("step-*"))[-1]
                with (out / f"track-{name}.json").open("w") as fh:
                    subprocess.run(["attnsvm", "track", str(last), "--geometry", "--hierarchy",
                                    "--out", str(out / f"track-{name}"), "--json"], check=True,
                                   stdout=fh, stderr=subprocess.DEVNULL)
    sys.stdout.write(table(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
