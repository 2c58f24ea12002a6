"""The per-frequency picture of rotary heads: where each head and its lifted Att-SVM put
their mass (Barbero et al., arXiv 2410.06205: high frequencies positional, low ones semantic).

For every layer, the mean over its rotary heads of ``freq_share_head`` (the share of
``||M_f||_F^2`` in the head's lifted parameter) and of ``freq_share_svm`` (the same of its
lifted Frobenius Att-SVM), against the frequency index f (f = 0 is the highest frequency,
``omega_0 = 1`` rad per position in HF's rotate_half layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..reporting import new_figure, save_png

__all__ = ["freq_profiles", "write_freq_figure", "has_rotary"]


def has_rotary(records: list[dict[str, Any]]) -> bool:
    """Whether some head has per-frequency shares."""
    return any(r.get("freq_share_head") for r in records)


def freq_profiles(records: list[dict[str, Any]], key: str) -> dict[int, np.ndarray]:
    """Per layer, the mean over its heads of the list ``record[key]``, shape (F,)."""
    out: dict[int, list[np.ndarray]] = {}
    for r in records:
        v = r.get(key)
        if v:
            out.setdefault(int(r["layer"]), []).append(np.asarray(v, dtype=np.float64))
    return {li: np.mean(np.stack(vs), axis=0) for li, vs in sorted(out.items())
            if len({v.shape for v in vs}) == 1}


def write_freq_figure(records: list[dict[str, Any]], path: Path) -> None:
    """Write a PNG: per layer, mean frequency shares of the heads (left) and their lifted
    Att-SVMs (right)."""
    fig, ax2 = new_figure(2, 1, 4.5, 3.4)
    axes = ax2.ravel()
    for ax, key, title in ((axes[0], "freq_share_head", "heads: share of ||M_f||^2"),
                           (axes[1], "freq_share_svm", "lifted Frobenius Att-SVM")):
        prof = freq_profiles(records, key)
        n = max(len(prof), 1)
        for k, (li, v) in enumerate(prof.items()):
            ax.plot(np.arange(v.size), v, color=(k / n, 0.2, 1 - k / n), lw=1,
                    label=f"layer {li}")
        ax.set_xlabel("frequency index f (0 = highest)")
        ax.set_title(title, fontsize=9)
    axes[0].set_ylabel("share of the squared norm")
    if len(freq_profiles(records, "freq_share_head")) <= 12:
        axes[0].legend(fontsize=6)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
