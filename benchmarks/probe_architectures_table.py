"""The per-head table of ``benchmarks/results/probe_architectures.md`` from probe summaries.

Usage::

    python benchmarks/probe_architectures_table.py OUT_DIR [OUT_DIR ...]

Each ``OUT_DIR`` is the ``--out`` folder of an ``attnsvm probe`` run (its ``summary.json``).
Prints one Markdown row per head (layers in order; a layer found twice is taken from the
first folder) and, after the table, the counts the results page quotes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f(x: Any, nd: int = 4) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _top_share(shares: list[float] | None, k: int) -> float | None:
    return None if not shares else float(sum(shares[:k]))


def rows(dirs: list[str]) -> list[dict[str, Any]]:
    """The head records of the folders, each layer from the first folder that holds it."""
    seen: dict[int, list[dict[str, Any]]] = {}
    for d in dirs:
        s = json.loads((Path(d) / "summary.json").read_text())
        by_layer: dict[int, list[dict[str, Any]]] = {}
        for h in s["heads"]:
            by_layer.setdefault(int(h["layer"]), []).append(h)
        for li, hs in by_layer.items():
            seen.setdefault(li, hs)
    return [h for li in sorted(seen) for h in sorted(seen[li], key=lambda r: r["head"])]


def main(argv: list[str]) -> int:
    heads = rows(argv)
    k = 16  # the 16 highest of the head's frequencies (f = 0 is the highest)
    print("| layer | head | exact | sel. repr. | P error | rope status | corr_rope (control, max)"
          f" | pos-free status | corr_fro (control) | argmax repr. (pos-free) | top-{k} share "
          "head / svm | max prob |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    beat = beat_max = pf_beat = pf_n = n_exact = 0
    for h in heads:
        cr, cc, cm = h.get("corr_rope"), h.get("corr_rope_control"), h.get("corr_rope_control_max")
        if cr is not None and cc is not None:
            beat += int(cr > cc)
            beat_max += int(cm is not None and cr > cm)
        if h.get("corr_fro") is not None and h.get("corr_control") is not None:
            pf_n += 1
            pf_beat += int(h["corr_fro"] > h["corr_control"])
        n_exact += int(bool(h.get("exact")))
        print(f"| {h['layer']} | {h['head']} | {str(h.get('exact')).lower()} | "
              f"{_f(h.get('selections_reproduced'), 3)} | {h.get('exact_prob_error', 0):.1e} | "
              f"{h.get('rope_status') or '-'} | {_f(cr)} ({_f(cc)}, {_f(cm)}) | "
              f"{h.get('status') or '-'} | {_f(h.get('corr_fro'))} ({_f(h.get('corr_control'))}) | "
              f"{_f(h.get('argmax_reproduced'), 3)} | "
              f"{_f(_top_share(h.get('freq_share_head'), k), 2)} / "
              f"{_f(_top_share(h.get('freq_share_svm'), k), 2)} | "
              f"{_f(h.get('max_prob_mean'), 2)} |")
    print()
    print(f"heads: {len(heads)}; exact: {n_exact}; corr_rope above its mean control: {beat}; "
          f"above the best other head of its layer: {beat_max}; position-free corr_fro above "
          f"its control: {pf_beat} of {pf_n} feasible")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
