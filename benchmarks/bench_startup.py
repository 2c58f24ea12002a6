"""Start-up of the command line: this tree against a baseline tree, alternating, in one run.

Each command runs in a fresh process (``python -m attnsvm.cli.main ...``) with ``PYTHONPATH``
set to one tree's ``src``; the two trees alternate (order flipped every repetition) and the
medians are reported with their ratio, so a shared machine's load affects both alike.  Both
wall-clock seconds and the child's CPU seconds (user + system, less sensitive to other
processes on a loaded machine) are shown.

Usage (the baseline exported from a commit)::

    mkdir -p /tmp/base && git archive <commit> src | tar -x -C /tmp/base
    python benchmarks/bench_startup.py --baseline /tmp/base/src --reps 7
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "src"


def _commands(inst: str, ntp: str) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "attnsvm.cli.main"]
    return {
        "import attnsvm.cli.main": [sys.executable, "-c", "import attnsvm.cli.main"],
        "attnsvm --help": [*cli, "--help"],
        "solve (40,12,24) --norm spec --json": [*cli, "solve", inst, "--norm", "spec", "--json"],
        "solve (40,12,24) --norm fro --json": [*cli, "solve", inst, "--norm", "fro", "--json"],
        "ntp (8,4,10,7) --json": [*cli, "ntp", ntp, "--json"],
    }


def _data(folder: Path) -> tuple[str, str]:
    import numpy as np

    sys.path.insert(0, str(HERE))
    from attnsvm import random_instance
    from attnsvm.ntp import random_ntp_dataset

    inst = folder / "inst.npz"
    random_instance(40, 12, 24, seed=0).save(inst)
    ds = random_ntp_dataset(8, 4, 10, 7, cyclic=True, seed=0)
    ntp = folder / "ntp.npz"
    np.savez(ntp, E=ds.E, tokens=ds.tokens, labels=ds.labels)
    return str(inst), str(ntp)


def _strip_times(text: str) -> object:
    obj = json.loads(text)
    return {k: v for k, v in obj.items() if "time" not in k and "seconds" not in k}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="the baseline tree's src folder")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    roots = {"baseline": args.baseline, "this tree": str(HERE)}
    with tempfile.TemporaryDirectory() as tmp:
        cmds = _commands(*_data(Path(tmp)))
        times: dict[str, dict[str, list[float]]] = {k: {r: [] for r in roots} for k in cmds}
        cpu: dict[str, dict[str, list[float]]] = {k: {r: [] for r in roots} for k in cmds}
        same: dict[str, bool] = {}
        for rep in range(args.reps):
            order = list(roots.items()) if rep % 2 == 0 else list(reversed(roots.items()))
            for name, cmd in cmds.items():
                outs = {}
                for label, path in order:
                    env = dict(os.environ, PYTHONPATH=path)
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t0 = time.perf_counter()
                    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    times[name][label].append(time.perf_counter() - t0)
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu[name][label].append(r1.ru_utime - r0.ru_utime + r1.ru_stime
                                            - r0.ru_stime)
                    if res.returncode != 0:
                        raise SystemExit(f"{label}: {name} failed: {res.stderr.strip()}")
                    outs[label] = res.stdout
                if "--json" in cmd and rep == 0:
                    same[name] = _strip_times(outs["baseline"]) == _strip_times(outs["this tree"])
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"medians of {args.reps} runs each\n")
    print("| command | wall: baseline (s) | this tree (s) | ratio | CPU: baseline (s) | "
          "this tree (s) | ratio | same JSON |")
    print("|---|---|---|---|---|---|---|---|")
    for name in cmds:
        b = statistics.median(times[name]["baseline"])
        a = statistics.median(times[name]["this tree"])
        cb = statistics.median(cpu[name]["baseline"])
        ca = statistics.median(cpu[name]["this tree"])
        print(f"| `{name}` | {b:.3f} | {a:.3f} | {a / b:.2f} | {cb:.3f} | {ca:.3f} | "
              f"{ca / cb:.2f} | "
              f"{'yes' if same.get(name) else ('no' if name in same else '-')} |")


if __name__ == "__main__":
    main()
