"""Benchmark of attnsvm.train against the official protocol (torch autograd, one instance at a
time, normalized GD, float64), in the same process with torch threads fixed to 1 on both sides.

Reports
-------
* throughput: instance-steps per second of the batched exact trainer for B = 1, 100, 1000 and
  of the one-at-a-time autograd loop, and their ratio;
* accuracy: 1 - corr(W, W^mm of the selected tokens) after 2,000 (and 20,000 with ``--full``)
  steps, exact trainer vs the autograd loop from the same start;
* (K, Q): for each optimizer, how close K Q^T gets to W_*^mm (nuclear) and W^mm (Frobenius);
* CUDA (when available): B = 1e5 instance-steps per second, with the card's name.

Writes ``benchmarks/results/train.json`` and ``train.md``.  Usage::

    python benchmarks/bench_train.py [--quick] [--full] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attnsvm.instance import random_instance
from attnsvm.svm import solve_fro, solve_nuc
from attnsvm.train import reference_train, train

N, T, D = 6, 8, 10


def corr(A: np.ndarray, B: np.ndarray | None) -> float:
    if B is None:
        return float("nan")
    return float((A * B).sum() / (np.linalg.norm(A) * np.linalg.norm(B)))


def instances(count: int, start: int = 0) -> list:
    return [random_instance(N, T, D, seed=s) for s in range(start, start + count)]


def bench_throughput(batches: list[int], steps: int, ref_instances: int, ref_steps: int
                     ) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": steps, "ours": {}, "reference": {}}
    train(instances(2), steps=10)  # warm-up
    for B in batches:
        insts = instances(B)
        t0 = time.perf_counter()
        train(insts, steps=steps, lr=0.1, seed=0)
        el = time.perf_counter() - t0
        out["ours"][str(B)] = {"seconds": el, "instance_steps_per_s": B * steps / el}
        print(f"exact batched  B={B:5d}: {el:7.2f} s for {steps} steps, "
              f"{B * steps / el:12.0f} instance-steps/s", flush=True)
    insts = instances(ref_instances)
    W0 = [0.01 * np.random.default_rng(s).standard_normal((D, D)) for s in range(ref_instances)]
    reference_train(insts[0], "W", steps=10, init=W0[0])
    t0 = time.perf_counter()
    for inst, w in zip(insts, W0, strict=True):
        reference_train(inst, "W", lr=0.1, steps=ref_steps, init=w)
    el = time.perf_counter() - t0
    rate = ref_instances * ref_steps / el
    out["reference"] = {"instances": ref_instances, "steps": ref_steps, "seconds": el,
                        "instance_steps_per_s": rate}
    print(f"autograd loop (one at a time): {rate:12.0f} instance-steps/s", flush=True)
    out["ratio"] = {B: v["instance_steps_per_s"] / rate for B, v in out["ours"].items()}
    for B, r in out["ratio"].items():
        print(f"speed-up B={B:>5}: {r:8.1f}x", flush=True)
    return out


def bench_accuracy(count: int, step_list: list[int]) -> dict[str, Any]:
    insts = instances(count, start=1000)
    res: dict[str, Any] = {"instances": count}
    for steps in step_list:
        ours = train(insts, steps=steps, lr=0.1, seed=0)
        gaps_ours, gaps_ref = [], []
        for b, inst in enumerate(insts):
            w0 = 0.01 * np.random.default_rng(b).standard_normal((D, D))
            ref = reference_train(inst, "W", lr=0.1, steps=steps, init=w0)["W"]
            sol = solve_fro(inst, ours.selected[b])
            gaps_ours.append(1 - corr(ours.W[b], sol.W))
            sel_ref = _selected(inst, ref)
            sol_r = solve_fro(inst, sel_ref)
            gaps_ref.append(1 - corr(ref, sol_r.W) if np.all(np.isfinite(ref)) else np.nan)
        g1, g2 = np.array(gaps_ours), np.array(gaps_ref)
        res[str(steps)] = {
            "exact": {"median": float(np.nanmedian(g1)), "max": float(np.nanmax(g1))},
            "autograd": {"median": float(np.nanmedian(g2)), "max": float(np.nanmax(g2)),
                         "min": float(np.nanmin(g2)), "nan": int(np.isnan(g2).sum())},
        }
        print(f"1-corr(W, W^mm) after {steps} steps: exact median {np.nanmedian(g1):.2e} "
              f"max {np.nanmax(g1):.2e} | autograd median {np.nanmedian(g2):.2e} "
              f"range [{np.nanmin(g2):.2e}, {np.nanmax(g2):.2e}]", flush=True)
    return res


def bench_distribution(count: int, steps: int) -> dict[str, Any]:
    """Exact NGD only, many instances: percentiles of 1 - corr(W, W^mm of selected tokens)."""
    insts = instances(count)
    r = train(insts, steps=steps, lr=0.1, seed=0)
    gaps = np.array([1 - corr(r.W[b], solve_fro(inst, r.selected[b]).W)
                     for b, inst in enumerate(insts)])
    q = np.nanpercentile(gaps, [50, 90, 99, 100])
    out = {"instances": count, "steps": steps, "p50": q[0], "p90": q[1], "p99": q[2],
           "max": q[3], "frac_above_1e-2": float(np.mean(gaps > 1e-2)),
           "frac_above_1e-4": float(np.mean(gaps > 1e-4))}
    print(f"exact NGD over {count} instances, {steps} steps: 1-corr p50 {q[0]:.2e} p90 {q[1]:.2e}"
          f" p99 {q[2]:.2e} max {q[3]:.2e}", flush=True)
    return out


def _selected(inst: Any, W: np.ndarray) -> np.ndarray:
    a = np.einsum("ntd,nd->nt", inst.X, inst.queries @ W.T)
    return np.argmax(a, axis=1)


def bench_kq(count: int, steps: int) -> dict[str, Any]:
    insts = instances(count, start=2000)
    res: dict[str, Any] = {"instances": count, "steps": steps}
    runs: dict[str, Any] = {opt: train(insts, param="KQ", optimizer=opt, steps=steps, lr=0.1,
                                       seed=0) for opt in ("gd", "ngd", "polyak", "md", "adam")}
    runs["ngd_eps"] = train(insts, param="KQ", optimizer="ngd", steps=steps, lr=0.1, seed=0,
                            kq_eps=2.2e-16)
    cache: dict[tuple, tuple] = {}
    for name, r in runs.items():
        g_nuc, g_fro = [], []
        for b, inst in enumerate(insts):
            key = (b, tuple(r.selected[b]))
            if key not in cache:
                cache[key] = (solve_nuc(inst, r.selected[b]).W, solve_fro(inst, r.selected[b]).W)
            wn, wf = cache[key]
            g_nuc.append(1 - corr(r.W[b], wn))
            g_fro.append(1 - corr(r.W[b], wf))
        res[name] = {"nuc_median": float(np.nanmedian(g_nuc)), "nuc_max": float(np.nanmax(g_nuc)),
                     "fro_median": float(np.nanmedian(g_fro)), "fro_max": float(np.nanmax(g_fro)),
                     "max_prob_min": float(np.min(r.max_prob))}
        print(f"KQ {name:8s}: 1-corr nuc median {res[name]['nuc_median']:.2e} "
              f"max {res[name]['nuc_max']:.2e} | fro median {res[name]['fro_median']:.2e} "
              f"max {res[name]['fro_max']:.2e} | min max-prob {res[name]['max_prob_min']:.3f}",
              flush=True)
    return res


def bench_cuda(B: int, steps: int) -> dict[str, Any] | None:
    if not torch.cuda.is_available():
        print("CUDA: not available, skipped")
        return None
    insts = instances(1000)
    insts = [insts[k % 1000] for k in range(B)]
    out: dict[str, Any] = {"card": torch.cuda.get_device_name(0), "B": B, "steps": steps}
    for graph in (False, True):
        train(insts[:1000], steps=5, device="cuda", cuda_graph=graph)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        train(insts, steps=steps, device="cuda", cuda_graph=graph)
        torch.cuda.synchronize()
        el = time.perf_counter() - t0
        key = "graph" if graph else "eager"
        out[key] = {"seconds": el, "instance_steps_per_s": B * steps / el}
        print(f"CUDA {out['card']} B={B} {key}: {B * steps / el:.3e} instance-steps/s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and instances")
    ap.add_argument("--full", action="store_true", help="also 20,000-step accuracy")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--sections", default="throughput,accuracy,distribution,kq,cuda",
                    help="comma-separated subset; others are kept from an existing train.json")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    out = Path(args.out)
    torch.set_num_threads(1)
    quick = args.quick
    old = out / "train.json"
    result: dict[str, Any] = json.loads(old.read_text()) if old.exists() else {}
    result |= {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "shape": {"n": N, "T": T, "d": D}, "dtype": "float64",
    }
    if "throughput" in sections:
        result["throughput"] = bench_throughput([1, 100, 1000], 200 if quick else 2000,
                                                ref_instances=3 if quick else 10,
                                                ref_steps=200 if quick else 1000)
    if "accuracy" in sections:
        result["accuracy_W_ngd"] = bench_accuracy(5 if quick else 20,
                                                  [2000] + ([20000] if args.full else []))
    if "distribution" in sections:
        result["distribution"] = [bench_distribution(50 if quick else 300, 2000)] + (
            [bench_distribution(200, 20000)] if args.full else [])
    if "kq" in sections:
        result["KQ"] = bench_kq(5 if quick else 20, 2000)
    if "cuda" in sections:
        result["cuda"] = bench_cuda(100_000, 200 if quick else 1000)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "train.md").write_text(_markdown(result))
    print(f"wrote {out / 'train.json'} and {out / 'train.md'}")


def _markdown(r: dict[str, Any]) -> str:
    tp = r["throughput"]
    load = r["machine"].get("loadavg")
    lines = ["# attnsvm.train benchmark", "",
             f"n={N}, T={T}, d={D}, float64, torch threads = 1, {r['machine']['platform']}, "
             f"load average at start {load}", "",
             "## Throughput (normalized GD on W)", "",
             "| B | seconds | instance-steps/s | vs autograd loop |", "|---|---|---|---|"]
    for B, v in tp["ours"].items():
        lines.append(f"| {B} | {v['seconds']:.2f} ({tp['steps']} steps) | "
                     f"{v['instance_steps_per_s']:.3g} | {tp['ratio'][B]:.1f}x |")
    lines.append(f"| autograd, one at a time | | {tp['reference']['instance_steps_per_s']:.3g} "
                 "| 1x |")
    lines += ["", "## 1 - corr(W, W^mm) (normalized GD, lr 0.1)", "",
              "| steps | exact median | exact max | autograd median | autograd range |",
              "|---|---|---|---|---|"]
    acc = r["accuracy_W_ngd"]
    for k, v in acc.items():
        if k == "instances":
            continue
        a = v["autograd"]
        lines.append(f"| {k} | {v['exact']['median']:.2e} | {v['exact']['max']:.2e} | "
                     f"{a['median']:.2e} | [{a['min']:.2e}, {a['max']:.2e}] |")
    if r.get("distribution"):
        lines += ["", "## Exact NGD on W over many instances (seeds 0..count-1)", "",
                  "| instances | steps | p50 | p90 | p99 | max | share > 1e-2 | share > 1e-4 |",
                  "|---|---|---|---|---|---|---|---|"]
        for v in r["distribution"]:
            lines.append(f"| {v['instances']} | {v['steps']} | {v['p50']:.2e} | {v['p90']:.2e} | "
                         f"{v['p99']:.2e} | {v['max']:.2e} | {v['frac_above_1e-2']:.3f} | "
                         f"{v['frac_above_1e-4']:.3f} |")
        lines += ["", "The tail comes from instances whose selected tokens switch late "
                  "(e.g. seed 163 switches a token near step 12,000): GD dynamics, not numerics."]
    lines += ["", f"## (K, Q), {r['KQ']['steps']} steps: 1 - corr(K Q^T, target)", "",
              "| optimizer | vs W_*^mm median | max | vs W^mm median | max | min max-prob |",
              "|---|---|---|---|---|---|"]
    for k, v in r["KQ"].items():
        if isinstance(v, dict):
            lines.append(f"| {k} | {v['nuc_median']:.2e} | {v['nuc_max']:.2e} | "
                         f"{v['fro_median']:.2e} | {v['fro_max']:.2e} | {v['max_prob_min']:.3f} |")
    if r.get("cuda"):
        c = r["cuda"]
        lines += ["", f"## CUDA ({c['card']}), B={c['B']}", ""]
        for key in ("eager", "graph"):
            if key in c:
                lines.append(f"- {key}: {c[key]['instance_steps_per_s']:.3e} instance-steps/s")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
