"""The papers' story with attnsvm, step by step: run ``python examples/tutorial.py``.

Tarzanagh et al. (MMTS, NeurIPS 2023; TF-SVM, 2023) show that softmax attention trained by
gradient descent converges in direction to the solution of a hard-margin SVM over tokens, the
Att-SVM.  This script walks through that claim on one instance:

1. an instance (tokens, queries, labels, head) and its optimal tokens;
2. its Att-SVM ``W^mm`` (Frobenius) and ``W_*^mm`` (nuclear), certified by their KKT conditions;
3. training: normalized GD on ``W`` and the correlation curve with the SVM of the tokens GD
   selects;
4. local optima: GD may end at a locally optimal token choice, and its direction is then that
   choice's Att-SVM;
5. (``--probe``, 10 to 20 s on a 2-core CPU) a real transformer head: does its
   ``W_K^T W_Q`` align with the Att-SVM of its own selections?

Every section is a function that prints what it shows and returns its numbers; the test suite
runs them (tests/test_figures_tutorial.py), so this file cannot rot.  Each step takes well under a
second on a laptop CPU except the probe.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

import attnsvm
from attnsvm.reporting import correlation
from attnsvm.svm import enumerate_local_optima, local_optimality


def section(title: str) -> None:
    print(f"\n== {title} ==")


def an_instance(seed: int = 0) -> dict[str, Any]:
    """1. The papers' random instance: n = 6 sequences of T = 8 unit tokens in d = 10."""
    section("1. An instance")
    inst = attnsvm.random_instance(n=6, T=8, d=10, seed=seed)
    gamma = inst.token_scores()  # (n, T): gamma_it = Y_i v^T x_it
    opt = inst.optimal_tokens()  # argmax_t gamma_it (ties are an error, never broken silently)
    assert inst.Y is not None
    print(f"X {inst.X.shape} tokens, Z {inst.queries.shape} queries, "
          f"Y {inst.Y.astype(int).tolist()}")
    print(f"optimal token per sequence: {opt.tolist()}")
    # Instances are plain .npz files (no pickle): save, load, same data.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "instance.npz"
        inst.save(path)
        again = attnsvm.Instance.load(path)
    assert np.array_equal(again.X, inst.X) and np.array_equal(again.optimal_tokens(), opt)
    return {"instance": inst, "scores": gamma, "opt": opt}


def its_att_svm(inst: attnsvm.Instance) -> dict[str, Any]:
    """2. W^mm = argmin ||W||_F s.t. (x_{i,opt_i} - x_it)^T W z_i >= 1, and the nuclear W_*^mm."""
    section("2. Its Att-SVM")
    fro = attnsvm.solve_fro(inst)
    nuc = attnsvm.solve_nuc(inst)
    assert fro.W is not None and nuc.W is not None  # feasible: the generic case for d >= n
    smallest = inst.margin(fro.W, normalized=False)  # min over i, t != opt_i
    print(f"W^mm: {fro.status}, ||W^mm||_F = {fro.objective:.4f}, rank {fro.rank}, "
          f"{len(fro.support())} support constraints, KKT-certified: {fro.is_optimal(1e-8)}")
    print(f"smallest constraint value (x_opt - x_t)^T W^mm z = {smallest:.6f} "
          f"(the margin 1 is attained on the support)")
    print(f"W_*^mm (nuclear): {nuc.status}, rank {nuc.rank} <= rank W^mm = {fro.rank}")
    return {"fro": fro, "nuc": nuc, "min_constraint": smallest}


def training(inst: attnsvm.Instance, steps: int = 2000) -> dict[str, Any]:
    """3. Normalized GD on W (lr 0.1, the papers' protocol) and the correlation curve."""
    from attnsvm.train import train

    section("3. Training and the correlation curve")
    record = [0, 10, 30, 100, 300, 1000, steps]
    res = train(inst, param="W", optimizer="ngd", lr=0.1, steps=steps, record_steps=record)
    selected = res.selected
    # The limit direction is the Att-SVM of the tokens GD *selects* (largest probability).
    sol = attnsvm.solve_fro(inst, selected)
    curve = train(inst, param="W", optimizer="ngd", lr=0.1, steps=steps, record_steps=record,
                  targets={"svm": sol.W}).history
    print("step   ||W||      1 - corr(W(k), W^mm_selected)")
    for _, row in curve.iterrows():
        print(f"{int(row['step']):>5}  {row['norm']:9.3f}  {1 - row['corr_svm']:.2e}")
    opt = inst.optimal_tokens()
    print(f"GD selects {selected.tolist()}; the optimal tokens are {opt.tolist()}")
    return {"selected": selected, "solution": sol, "curve": curve,
            "final_corr": float(curve["corr_svm"].iloc[-1]), "W": res.W}


def local_optima(inst: attnsvm.Instance, selected: np.ndarray) -> dict[str, Any]:
    """4. The SVM-neighbour test: is GD's choice locally optimal?  And every local optimum of a
    small instance, with GD started in the cone of a non-global one."""
    from attnsvm.train import train

    section("4. Local optima")
    lo = local_optimality(inst, selected)
    glob = bool(np.array_equal(selected, inst.optimal_tokens()))
    print(f"GD's choice is {'the global optimum' if glob else 'not the global optimum'}; "
          f"SVM-neighbour test: locally optimal = {lo.locally_optimal}")
    small = attnsvm.random_instance(n=3, T=4, d=4, seed=0)
    optima = enumerate_local_optima(small)  # all T^n = 64 choices tried
    opt = small.optimal_tokens()
    others = [o.solution for o in optima if o.solution is not None
              and not np.array_equal(np.asarray(o.solution.alpha), opt)]
    print(f"small instance (n=3, T=4, d=4): {len(optima)} locally optimal choices "
          f"({len(others)} besides the global one {opt.tolist()})")
    out: dict[str, Any] = {"locally_optimal": lo.locally_optimal, "global": glob,
                           "n_local_optima": len(optima)}
    if others:
        beta = np.asarray(others[0].alpha)
        Wb = others[0].W
        assert Wb is not None
        # The local theorem needs a start in the cone around W^mm_beta *and* of large enough
        # norm: from norm 5 this run escapes to the global optimum, from norm 20 it stays.
        out["beta"], out["starts"] = beta, {}
        for scale in (5.0, 20.0):
            res = train(small, param="W", optimizer="ngd", lr=0.1, steps=1000,
                        init=scale * Wb / np.linalg.norm(Wb))
            corr = correlation(res.W, Wb)
            print(f"GD started at {scale:g} W^mm_beta / ||W^mm_beta||, beta = {beta.tolist()}: "
                  f"selects {res.selected.tolist()}, corr(W, W^mm_beta) = {corr:.4f}")
            out["starts"][scale] = (res.selected, corr)
    return out


def a_real_head(max_queries: int = 64) -> dict[str, Any]:
    """5. Layer 0 of the default model (MiniLM, shipped with the package, offline)."""
    from attnsvm.probe import ProbeOptions, probe

    section("5. A real head")
    res = probe("minilm", layers=[0], out=None, options=ProbeOptions(nuclear=False),
                max_queries=max_queries)
    heads = sorted(res.heads, key=lambda h: -(h["corr_fro"] or -1))
    for h in heads[:3]:
        print(f"layer {h['layer']} head {h['head']}: corr(W_K^T W_Q, its Att-SVM) = "
              f"{h['corr_fro']:.3f} against {h['corr_control']:.3f} for the other heads")
    above = sum(1 for h in res.heads
                if h["corr_fro"] is not None and h["corr_control"] is not None
                and h["corr_fro"] > h["corr_control"])
    print(f"{above} of {len(res.heads)} heads align better with their own Att-SVM than the "
          f"other heads do")
    return {"heads": res.heads, "above_control": above}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="also probe a real model's layer 0")
    args = parser.parse_args(argv)
    one = an_instance()
    inst = one["instance"]
    out = {"instance": one, "svm": its_att_svm(inst)}
    out["training"] = training(inst)
    out["local"] = local_optima(inst, out["training"]["selected"])
    if args.probe:
        out["probe"] = a_real_head()
    return out


if __name__ == "__main__":
    main()
