"""Benchmark: the max-norm and spectral Att-SVMs of one MiniLM head (probe scale).

Run from the repository root (needs the ``probe`` extra and the packaged MiniLM)::

    python benchmarks/bench_geometry_head.py                       # layer 2, head 3
    python benchmarks/bench_geometry_head.py --seq-len 16 --max-queries 128 --norms linf,spec
    python benchmarks/bench_geometry_head.py --layer 0 --head 0,1,2,3,4,5,6,7,8,9,10,11 \
        --seq-len 32 --max-queries 16      # the probe's layer-0 instances (992 rows each)

The head's instance is built the way the probe builds it (:mod:`attnsvm.probe.instance`:
every position a query, ``z = [x_q; 1]``, the head's own argmax selections), saved once to
``--cache`` (.npz), and ``attnsvm.svm.solve(constraints, norm)`` is timed in this process.
Prints one line per norm: seconds, status, certified gap, interior-point iterations, whether
the least-Frobenius optimum was reached, the working set of rows (None: all rows at once).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--head", default="3", help="a head, or several: 0,1,2")
    ap.add_argument("--seq-len", type=int, default=16)
    ap.add_argument("--max-queries", type=int, default=128)
    ap.add_argument("--norms", default="linf,spec")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    ap.add_argument("--cache", default="/tmp/attnsvm-minilm-L{layer}-H{head}-T{seq}-Q{q}.npz",
                    help="each head's constraints (built once; the fields are filled in)")
    return ap.parse_args()


ARGS = _parse()
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)

import numpy as np  # noqa: E402

from attnsvm.constraints import ConstraintSet  # noqa: E402
from attnsvm.svm import solve  # noqa: E402

_CAPTURES: list = []


def head_constraints(head: int) -> ConstraintSet:
    """The head's constraint set, from ``--cache`` or built with the probe's internals."""
    path = Path(ARGS.cache.format(layer=ARGS.layer, head=head, seq=ARGS.seq_len,
                                  q=ARGS.max_queries))
    if not path.exists():
        from attnsvm.probe.corpus import make_sequences, read_corpus
        from attnsvm.probe.instance import build_instance
        from attnsvm.probe.models import load_model

        if not _CAPTURES:
            _, ad = load_model("minilm")
            seqs = make_sequences(ad.tokenizer, read_corpus(None), seq_len=ARGS.seq_len,
                                  max_queries=ARGS.max_queries)
            _CAPTURES.extend(ad.capture(s, [ARGS.layer]) for s in seqs)
        inst = build_instance(_CAPTURES, ARGS.layer, head, causal=False)
        np.savez(path, A=inst.A, Zc=inst.Zc, index=inst.index)
    with np.load(path) as f:
        return ConstraintSet.from_arrays(f["A"], f["Zc"], f["index"])


def main() -> None:
    for head in (int(h) for h in ARGS.head.split(",")):
        cons = head_constraints(head)
        print(f"MiniLM layer {ARGS.layer} head {head}: m = {cons.m}, A {cons.A.shape}, "
              f"Zc {cons.Zc.shape}, {cons.groups[0].shape[0]} queries; load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        for norm in ARGS.norms.split(","):
            t0 = time.perf_counter()
            sol = solve(cons, norm)
            print(f"{norm}: {time.perf_counter() - t0:.1f} s, {sol.status}, certified gap "
                  f"{sol.info.get('certified_gap'):.1e}, {sol.info.get('ipm_iterations')} "
                  f"iterations ({sol.info.get('newton')} Newton), least Frobenius "
                  f"{sol.info.get('least_frobenius')}, working set "
                  f"{sol.info.get('working_set')}", flush=True)


if __name__ == "__main__":
    main()
