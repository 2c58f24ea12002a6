"""Max-norm and spectral Att-SVMs of real heads: ``probe --targets fro,nuc,linf,spec``.

Runs the probe on some heads of one layer (default: MiniLM, layer 0, head 0, the default
corpus and sizes) and prints per head the correlations with each target beside their controls,
the head's margin ratio in each norm, and the seconds of each solve.  Whether a real head sits
nearer the max-norm target than the Frobenius one is read off ``corr_linf - corr_linf_control``
against ``corr_fro - corr_control``, and ``margin_ratio_linf`` against ``margin_ratio``.

    python benchmarks/bench_probe_geometry.py --layer 0 --heads 0 [--max-queries 352]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--layer", type=int, default=0)
    ap.add_argument("--heads", default="0", help="comma-separated head indices")
    ap.add_argument("--targets", default="fro,nuc,linf,spec")
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--max-queries", type=int, default=352)
    ap.add_argument("--out", default="bench-probe-geometry")
    ap.add_argument("--json", default=None, help="write the records here")
    args = ap.parse_args()

    from attnsvm.probe import run as probe_run
    from attnsvm.probe.analysis import ProbeOptions
    from attnsvm.probe.geometry import parse_targets

    heads = [int(h) for h in args.heads.split(",")]
    original = probe_run.run_tasks

    def only(tasks: list[Any], *a: Any, **k: Any) -> list[dict[str, Any]]:
        return original([t for t in tasks if t.head in heads], *a, **k)

    probe_run.run_tasks = only  # type: ignore[assignment]
    nuc, geometry = parse_targets(args.targets)
    opts = ProbeOptions(nuclear=bool(nuc), geometry=geometry)
    t0 = time.perf_counter()
    def progress(msg: str, done: int | None, total: int | None) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    res = probe_run.probe(args.model, None, [args.layer], opts, args.out, seq_len=args.seq_len,
                          max_queries=args.max_queries, jobs=1, progress=progress)
    wall = time.perf_counter() - t0
    keys = ["layer", "head", "n", "m", "status", "corr_fro", "corr_control", "corr_control_max",
            "corr_random", "margin_ratio", "solve_seconds", "corr_nuc", "corr_nuc_control",
            "margin_ratio_nuc", "nuc_seconds"]
    for nm in geometry:
        keys += [f"corr_{nm}", f"corr_{nm}_control", f"corr_{nm}_control_max",
                 f"corr_{nm}_random", f"margin_ratio_{nm}", f"{nm}_status", f"{nm}_gap",
                 f"{nm}_seconds", f"{nm}_warning"]
    recs = [{k: r.get(k) for k in keys} for r in res.heads]
    for r in recs:
        print(json.dumps(r))
    summ = {k: v for k, v in res.summary.items() if k.endswith("_vs_fro")}
    print(json.dumps({"wall_seconds": wall, **summ}))
    if args.json:
        Path(args.json).write_text(json.dumps({"records": recs, "summary": summ,
                                               "wall_seconds": wall}, indent=1))


if __name__ == "__main__":
    main()
