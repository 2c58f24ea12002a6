"""Benchmark of attnsvm.train against the official protocol (torch autograd, one instance at a
time, normalized GD, float64), in the same process with torch threads fixed to 1 on both sides.

Reports (sections)
------------------
* throughput: instance-steps per second of the batched exact trainer for B = 1, 100, 1000 and
  of the one-at-a-time autograd loop, and their ratio;
* cpu: one instance, 20,000 steps: ``train`` as ``attnsvm train`` calls it, a plain NumPy loop
  of the same exact update, and the torch engine, timed in the same run;
* cli: ``attnsvm train --steps 0 --json`` beyond the cost of ``python -c "import torch"``;
* accuracy: 1 - corr(W, W^mm of the selected tokens) after 2,000 (and 20,000 with ``--full``)
  steps, exact trainer vs the autograd loop from the same start;
* (K, Q): for each optimizer, how close K Q^T gets to W_*^mm (nuclear) and W^mm (Frobenius);
* cuda (skipped with a message without CUDA): instance-steps/s of the eager torch engine, the
  CUDA graph and the fused Triton kernel at B = 1e3..1e6 beside the card's roofline (FP64 FLOP/s
  and bandwidth from a table keyed by the card's name), a sweep of launches (warps per program,
  register cap), and checks (fused == torch engine to rounding, batch == one by one bit for bit).

Writes ``benchmarks/results/train.json`` and ``train.md`` (sections not run are kept from an
existing train.json).  Usage::

    python benchmarks/bench_train.py [--quick] [--full] [--sections cpu,cli] [--out DIR]
    python benchmarks/bench_train.py --sections cuda      # on a machine with a GPU
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
        r = train(insts, steps=steps, lr=0.1, seed=0)
        el = time.perf_counter() - t0
        out["ours"][str(B)] = {"seconds": el, "instance_steps_per_s": B * steps / el,
                               "engine": r.backend}
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
        assert ours.W is not None
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
    assert r.W is not None
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


def plain_numpy_ngd(inst: Any, W: np.ndarray, lr: float, steps: int) -> np.ndarray:
    """Baseline: the exact log-domain direction and normalized GD for one instance, written as
    a plain NumPy loop (2-D arrays, no batch axis)."""
    X, Z, Y = inst.X, inst.queries, inst.Y
    H = X @ inst.v  # (n, T)
    rows = np.arange(X.shape[0])
    W = W.copy()
    for _ in range(steps):
        a = np.einsum("ntd,nd->nt", X, Z @ W.T)
        sel = a.argmax(1)
        y = a - a[rows, sel][:, None]
        y[rows, sel] = -np.inf
        m2y = y.max(1)
        e = np.exp(y - m2y[:, None])
        L1 = np.log1p(np.exp(m2y) * e.sum(1))
        m2 = m2y - L1
        em2 = np.exp(m2)
        h_a = H[rows, sel]
        dh = h_a[:, None] - H
        Dt = (e * dh).sum(1)
        lw = -np.logaddexp(0.0, Y * (h_a - em2 * Dt))
        c = Y * np.exp(lw + m2 - (lw + m2).max())
        C = e * ((em2 * Dt)[:, None] - dh) * c[:, None]
        C[rows, sel] += c * np.exp(-L1) * Dt
        G = np.einsum("ntd,nt->nd", X, C).T @ Z
        W += lr * G / np.linalg.norm(G)
    return W


def bench_cpu_single(steps: int, repeats: int = 3) -> dict[str, Any]:
    """One instance, ``steps`` NGD steps: attnsvm (as ``attnsvm train`` calls it) vs the plain
    NumPy loop vs the torch engine; interleaved repeats, best time of each."""
    inst = random_instance(N, T, D, seed=0)
    W0 = 0.01 * np.random.default_rng(0).standard_normal((D, D))
    every = max(1, steps // 1000)
    times: dict[str, list[float]] = {"attnsvm train (auto engine)": [], "plain NumPy loop": [],
                                     "torch engine": []}
    res = ref = None
    for _ in range(repeats):
        res = train(inst, steps=steps, seed=0, record_every=every)
        times["attnsvm train (auto engine)"].append(res.seconds)
        t0 = time.perf_counter()
        ref = plain_numpy_ngd(inst, W0, 0.1, steps)
        times["plain NumPy loop"].append(time.perf_counter() - t0)
        tr = train(inst, steps=steps, seed=0, record_every=every, backend="torch")
        times["torch engine"].append(tr.seconds)
    assert res is not None and ref is not None
    best = {k: min(v) for k, v in times.items()}
    out = {"steps": steps, "engine": res.backend, "seconds": best, "all_seconds": times,
           "ratio_plain_over_attnsvm": best["plain NumPy loop"] / best[
               "attnsvm train (auto engine)"],
           "max_rel_diff_W": float(np.abs(res.W - ref).max() / np.abs(ref).max())}
    for k, v in best.items():
        print(f"one instance, {steps} steps: {k:28s} {v:7.2f} s", flush=True)
    print(f"plain NumPy / attnsvm = {out['ratio_plain_over_attnsvm']:.2f} "
          f"(> 1: attnsvm faster); W differs by {out['max_rel_diff_W']:.1e}", flush=True)
    return out


def bench_cli_startup(repeats: int = 3) -> dict[str, Any]:
    """``attnsvm train --steps 0 --json`` beyond ``python -c 'import torch'`` (best of runs)."""
    import subprocess
    import sys
    import tempfile

    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inst.npz"
        random_instance(N, T, D, seed=0).save(path)
        cmds = {"import torch": [sys.executable, "-c", "import torch"],
                "attnsvm train --steps 0 --json": [
                    sys.executable, "-m", "attnsvm.cli.main", "train", str(path), "--steps",
                    "0", "--json"]}
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(repeats):
            for k, cmd in cmds.items():
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, env=env)
                times[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    extra = best["attnsvm train --steps 0 --json"] - best["import torch"]
    print(f"CLI: import torch {best['import torch']:.2f} s, train --steps 0 --json "
          f"{best['attnsvm train --steps 0 --json']:.2f} s: {extra:.2f} s beyond torch",
          flush=True)
    return {"seconds": best, "all_seconds": times, "beyond_torch": extra}


#: (name substring, FP64 FLOP/s without tensor cores, with, memory bytes/s): vendor data sheets.
CARDS = [("H200", 34e12, 67e12, 4.8e12), ("H100 NVL", 30e12, 60e12, 3.9e12),
         ("H100 PCIe", 26e12, 51e12, 2.0e12), ("H100", 34e12, 67e12, 3.35e12),
         ("A100-SXM4-80GB", 9.7e12, 19.5e12, 2.04e12), ("A100", 9.7e12, 19.5e12, 1.555e12)]


def flops_per_step(n: int, T: int, d: int) -> int:
    """Useful FP64 operations of one exact NGD step on W (unpadded; exp/log counted as 1):
    W z_i and the scores 2nd^2 + 2nTd, the direction ~25 nT, the gradient 2nTd + 2nd^2,
    the normalized update 4d^2."""
    return 4 * n * d * d + 4 * n * T * d + 25 * n * T + 4 * d * d


def roofline(card: str) -> dict[str, Any] | None:
    """Compute and memory bounds in instance-steps/s for ``card`` (None when unknown)."""
    for name, f64, f64_tc, bw in CARDS:
        if name.lower() in card.lower():
            f = flops_per_step(N, T, D)
            return {"table_entry": name, "fp64_flops": f64, "fp64_tensor_flops": f64_tc,
                    "bandwidth": bw, "flops_per_step": f,
                    "compute_bound": f64 / f,
                    # an unfused step reads X at least twice (scores and gradient)
                    "memory_bound_unfused": bw / (2 * N * T * D * 8)}
    return None


#: Device of the CUDA section (a smoke test of the code may point it at the CPU interpreter).
CUDA_DEVICE = "cuda"


def _cuda_data(B: int) -> tuple[torch.Tensor, ...]:
    from attnsvm.train.config import init_blocks

    base = instances(1000)
    cols = [np.stack([getattr(i, k) for i in base]) for k in ("X", "queries", "Y", "v")]
    W0 = init_blocks("W", "normal", 0.01, list(range(1000)), D, D)["W"]
    reps = -(-B // 1000)
    return tuple(torch.as_tensor(np.concatenate([a] * reps)[:B], device=CUDA_DEVICE).contiguous()
                 for a in (*cols, W0))


def _time_cuda(fn: Any) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_cuda(batches: list[int], quick: bool, sweep_B: int = 100_000,
               max_steps: int = 5000) -> dict[str, Any] | None:
    """Eager torch, CUDA graph and fused Triton at each B (ngd on W, float64)."""
    if not torch.cuda.is_available():
        print("CUDA: not available here, section skipped (previous results kept)", flush=True)
        return None
    from attnsvm.train._data import Problem
    from attnsvm.train._engines import TorchEngine
    from attnsvm.train._fused_triton import (
        compile_for_gpu,
        describe,
        fused_steps,
        maxnreg_default,
        num_warps_default,
    )
    from attnsvm.train.heads import get_head
    from attnsvm.train.losses import get_loss
    from attnsvm.train.models import WModel
    from attnsvm.train.optim import make_optimizer

    card = torch.cuda.get_device_name(0)
    out: dict[str, Any] = {"card": card, "torch": torch.__version__, **describe(),
                           "roofline": roofline(card), "B": {}}
    print(f"CUDA card: {card}", flush=True)

    def fused(X: Any, Z: Any, Y: Any, v: Any, W: Any, steps: int,
              launch: tuple[int, int] | None = None) -> Any:
        """``launch``: (warps per program, register cap or 0); None: the library's default."""
        P = [W.clone()]
        w, r = launch or (None, None)
        return P, _time_cuda(lambda: fused_steps(X, Z, Y, v, P, None, steps, optimizer="ngd",
                                                  lr=0.1, num_warps=w, maxnreg=r))

    # checks first: fused == torch engine, batch == one by one (bit for bit)
    X, Z, Y, v, W0 = _cuda_data(1000)
    with torch.inference_mode():
        eng = TorchEngine(WModel(W0.clone()), Problem.from_tensors(X, Z, Y, v),
                          get_loss("logistic"), get_head(None), make_optimizer("ngd", 0.1),
                          False, torch.device(CUDA_DEVICE))
        eng.advance(min(200, max_steps))
        Wt = eng.blocks()["W"]
    nchk = min(200, max_steps)
    Pf, _ = fused(X, Z, Y, v, W0, nchk)
    one = [fused(X[b:b + 1], Z[b:b + 1], Y[b:b + 1], v[b:b + 1], W0[b:b + 1], nchk)[0][0]
           for b in range(5)]
    out["checks"] = {
        "fused_vs_torch_max_rel_W_200_steps": float(((Pf[0] - Wt).abs().amax() /
                                                     Wt.abs().amax()).item()),
        "batch_equals_one_by_one": all(bool(torch.equal(o[0], Pf[0][b]))
                                       for b, o in enumerate(one)),
        "compile_sm": compile_for_gpu("W", "ngd"),
    }
    print(f"checks: {out['checks']}", flush=True)
    # launch sweep at B = 1e5: warps per program, registers per thread (0: no cap)
    X, Z, Y, v, W0 = _cuda_data(sweep_B)
    default = (num_warps_default(), maxnreg_default())
    sweep = []
    for cfg in sorted({(1, 0), (2, 0), (4, 0), (8, 0), (1, 128), (2, 96), (2, 128), (2, 168),
                       (4, 96), default}):
        fused(X, Z, Y, v, W0, 2, cfg)
        steps = min(100 if quick else 500, max_steps)
        rate = sweep_B * steps / fused(X, Z, Y, v, W0, steps, cfg)[1]
        sweep.append({"num_warps": cfg[0], "maxnreg": cfg[1], "instance_steps_per_s": rate})
        print(f"fused, {cfg[0]} warps, maxnreg {cfg[1]}, B={sweep_B}: {rate:.3e} "
              "instance-steps/s", flush=True)
    out["launch_default"] = {"num_warps": default[0], "maxnreg": default[1]}
    out["launch_sweep"] = {"B": sweep_B, "rows": sweep}
    top = max(sweep, key=lambda r: r["instance_steps_per_s"])
    best = (top["num_warps"], top["maxnreg"])
    for B in batches:
        X, Z, Y, v, W0 = _cuda_data(B)
        row: dict[str, Any] = {}
        for graph in (False, True):
            steps = int(min(1000, max_steps, max(10, 2e7 / B))) // (4 if quick else 1) or 5
            with torch.inference_mode():
                eng = TorchEngine(WModel(W0.clone()), Problem.from_tensors(X, Z, Y, v),
                                  get_loss("logistic"), get_head(None),
                                  make_optimizer("ngd", 0.1), graph, torch.device(CUDA_DEVICE))
                eng.advance(3)
                el = _time_cuda(lambda eng=eng, steps=steps: eng.advance(steps))
            row["graph" if graph else "eager"] = {"steps": steps, "seconds": el,
                                                  "instance_steps_per_s": B * steps / el}
        steps = int(min(max_steps, max(50, 2e8 / B))) // (4 if quick else 1) or 10
        for key, cfg in (("fused", default), ("fused_best_launch", best)):
            fused(X, Z, Y, v, W0, 1, cfg)
            el = fused(X, Z, Y, v, W0, steps, cfg)[1]
            row[key] = {"steps": steps, "seconds": el, "instance_steps_per_s": B * steps / el,
                        "num_warps": cfg[0], "maxnreg": cfg[1]}
        rf = out["roofline"]
        if rf:
            row["fused_fraction_of_compute_bound"] = row["fused"]["instance_steps_per_s"] / rf[
                "compute_bound"]
        out["B"][str(B)] = row
        print(f"B={B:>8}: " + ", ".join(f"{k} {v['instance_steps_per_s']:.3e}"
                                         for k, v in row.items() if isinstance(v, dict)),
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps and instances")
    ap.add_argument("--full", action="store_true", help="also 20,000-step accuracy")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated subset of {','.join(SECTIONS)}; the others are kept "
                    "from an existing train.json")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    unknown = sections - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    out = Path(args.out)
    torch.set_num_threads(1)
    quick = args.quick
    old = out / "train.json"
    result: dict[str, Any] = json.loads(old.read_text()) if old.exists() else {}
    machine = {"platform": platform.platform(), "processor": platform.processor(),
               "cpus": os.cpu_count(), "torch": torch.__version__,
               "threads": torch.get_num_threads(),
               "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None}
    # the CPU sections' machine; a GPU run (often on another machine) records its own in "cuda"
    if sections - {"cuda"} or "machine" not in result:
        result["machine"] = machine
    result |= {"shape": {"n": N, "T": T, "d": D}, "dtype": "float64"}
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
    if "cpu" in sections:
        result["cpu_single"] = bench_cpu_single(2000 if quick else 20000)
    if "cli" in sections:
        result["cli_startup"] = bench_cli_startup(1 if quick else 3)
    if "cuda" in sections:
        cuda = bench_cuda([1000, 10_000, 100_000] if quick else
                          [1000, 10_000, 100_000, 300_000, 1_000_000], quick)
        if cuda is not None:
            result["cuda"] = {"machine": machine, **cuda}
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "train.md").write_text(_markdown(result))
    print(f"wrote {out / 'train.json'} and {out / 'train.md'}")


SECTIONS = ("throughput", "accuracy", "distribution", "kq", "cpu", "cli", "cuda")


def _markdown(r: dict[str, Any]) -> str:
    from _provenance import provenance  # benchmarks/ is on sys.path

    load = r["machine"].get("loadavg")
    lines = ["# attnsvm.train benchmark", "",
             f"n={N}, T={T}, d={D}, float64, torch threads = 1, {r['machine']['platform']}, "
             f"load average at start {load}", "", provenance(), ""]
    tp = r.get("throughput")
    if tp:
        lines += ["## Throughput (normalized GD on W)", "",
                  "| B | engine | seconds | instance-steps/s | vs autograd loop |",
                  "|---|---|---|---|---|"]
        for B, v in tp["ours"].items():
            lines.append(f"| {B} | {v.get('engine', 'torch')} | {v['seconds']:.2f} "
                         f"({tp['steps']} steps) | {v['instance_steps_per_s']:.3g} | "
                         f"{tp['ratio'][B]:.1f}x |")
        lines.append(f"| autograd, one at a time | | | "
                     f"{tp['reference']['instance_steps_per_s']:.3g} | 1x |")
        lines.append("")
    lines += _cpu_markdown(r)
    acc = r.get("accuracy_W_ngd") or {}
    if acc:
        lines += ["## 1 - corr(W, W^mm) (normalized GD, lr 0.1)", "",
                  "| steps | exact median | exact max | autograd median | autograd range |",
                  "|---|---|---|---|---|"]
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
    kq = r.get("KQ") or {}
    if kq:
        lines += ["", f"## (K, Q), {kq['steps']} steps: 1 - corr(K Q^T, target)", "",
                  "| optimizer | vs W_*^mm median | max | vs W^mm median | max | min max-prob |",
                  "|---|---|---|---|---|---|"]
    for k, v in kq.items():
        if isinstance(v, dict):
            lines.append(f"| {k} | {v['nuc_median']:.2e} | {v['nuc_max']:.2e} | "
                         f"{v['fro_median']:.2e} | {v['fro_max']:.2e} | {v['max_prob_min']:.3f} |")
    lines += _cuda_markdown(r.get("cuda"))
    return "\n".join(lines) + "\n"


def _cpu_markdown(r: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    c = r.get("cpu_single")
    if c:
        lines += [f"## One instance on the CPU, {c['steps']} NGD steps (best of the repeats, "
                  "same run)", "", "| loop | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in c["seconds"].items()]
        lines += ["", f"attnsvm ({c['engine']} engine) is {c['ratio_plain_over_attnsvm']:.2f}x "
                  f"the speed of the plain NumPy loop; the final W agree to "
                  f"{c['max_rel_diff_W']:.1e} (relative).", ""]
    s = r.get("cli_startup")
    if s:
        lines += ["## `attnsvm train --steps 0 --json` (best of runs, OMP_NUM_THREADS=1)", ""]
        lines += [f"- {k}: {v:.2f} s" for k, v in s["seconds"].items()]
        lines += [f"- beyond importing torch: {s['beyond_torch']:.2f} s", ""]
    return lines


def _cuda_markdown(c: dict[str, Any] | None) -> list[str]:
    if not c:
        return ["", "## CUDA", "", "Not measured yet: run "
                "`python benchmarks/bench_train.py --sections cuda` on a machine with a GPU."]
    lines = ["", f"## CUDA ({c['card']}, torch {c.get('torch')}, triton {c.get('triton')}), "
             "NGD on W, float64", ""]
    m = c.get("machine")
    if m:
        lines += [f"`python benchmarks/bench_train.py --sections cuda` on {m['platform']}, "
                  f"{m['cpus']} CPUs.", ""]
    rf = c.get("roofline")
    if rf:
        lines += [f"Roofline ({rf['table_entry']}: {rf['fp64_flops']:.3g} FP64 FLOP/s without "
                  f"tensor cores, {rf['bandwidth']:.3g} B/s): {rf['flops_per_step']} flops per "
                  f"instance-step -> compute bound {rf['compute_bound']:.3g} instance-steps/s; "
                  f"an unfused step (X read twice) is memory bound at "
                  f"{rf['memory_bound_unfused']:.3g}.", ""]
    dl = c.get("launch_default") or {}
    lines += [f"Fused Triton at the library's default launch ({dl.get('num_warps')} warps per "
              f"program, at most {dl.get('maxnreg')} registers per thread) and at the best "
              "launch of the sweep below; instance-steps/s.", "",
              "| B | eager | CUDA graph | fused Triton | fused / compute bound | "
              "fused, best launch |", "|---|---|---|---|---|---|"]
    for B, row in c.get("B", {}).items():
        frac = row.get("fused_fraction_of_compute_bound")
        fb = row.get("fused_best_launch") or {}
        best = (f"{fb['instance_steps_per_s']:.3g} ({fb['num_warps']} warps, maxnreg "
                f"{fb['maxnreg']})" if fb else "")
        lines.append(f"| {B} | {row['eager']['instance_steps_per_s']:.3g} | "
                     f"{row['graph']['instance_steps_per_s']:.3g} | "
                     f"{row['fused']['instance_steps_per_s']:.3g} | "
                     f"{'' if frac is None else f'{frac:.1%}'} | {best} |")
    if c.get("checks"):
        lines += ["", f"Checks: {json.dumps(c['checks'])}"]
    sw = c.get("launch_sweep")
    if sw:
        lines += ["", f"Fused kernel launch sweep at B={sw['B']} (warps per program / register "
                  "cap, 0 = none: instance-steps/s): " +
                  ", ".join(f"{r['num_warps']}/{r['maxnreg']}: {r['instance_steps_per_s']:.3g}"
                            for r in sw["rows"])]
    return lines


if __name__ == "__main__":
    main()
