"""Working memory of a command, estimated from declared shapes before anything is allocated.

A ``.npz`` file is bounded by its stored bytes (:data:`attnsvm._io.MAX_ARRAY_BYTES`), but a
command needs more than that: an ``int8`` or ``bool`` ``X`` becomes float64 (8 bytes an entry),
the Att-SVM holds its ``n (T-1)`` constraint factors, ``W`` is ``d x d`` whatever ``n`` is, the
working-set solver builds Gram blocks.  :func:`solve_memory`, :func:`train_memory` and
:func:`ntp_memory` estimate that from the headers alone (:func:`attnsvm._io.npz_headers`), and
:func:`check_memory` refuses an estimate above the memory this process can have:
``MemAvailable`` of ``/proc/meminfo`` (else ``os.sysconf``), the cgroup's ``memory.max`` and
the address-space limit ``RLIMIT_AS``, whichever is smallest, or the environment variable
``ATTNSVM_MEMORY_LIMIT`` (bytes, or with a suffix ``K``, ``M``, ``G``, ``T``: ``2.5G``) when set.

The estimates count the large arrays (a few copies each); they are meant to tell a run that
fits from one that cannot, not to predict the peak to the byte.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._io import npz_headers
from .exceptions import InvalidInputError
from .svm._working_set import default_chunk

__all__ = ["ENV_VAR", "memory_limit", "check_memory", "format_bytes", "parse_bytes",
           "solve_memory", "train_memory", "ntp_memory", "ntp_solve_memory",
           "check_file_memory"]

#: environment variable that sets the memory limit (overrides what the machine reports)
ENV_VAR = "ATTNSVM_MEMORY_LIMIT"

Headers = Mapping[str, tuple[tuple[int, ...], Any]]

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str, field: str = ENV_VAR) -> int:
    """``"2.5G"`` -> 2684354560; plain numbers are bytes; ``K, M, G, T`` (optionally followed
    by ``B`` or ``iB``) are powers of 1024.

    Raises
    ------
    InvalidInputError
        Not a positive size.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*",
                     str(text), flags=re.IGNORECASE)
    if m is None:
        raise InvalidInputError(
            f"{field} must be a size in bytes such as 2500000000 or 2.5G. Got {text!r} instead.")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"{field} must be a positive size. Got {text!r} instead.")
    return int(value)


def format_bytes(n: float) -> str:
    """``6710886400`` -> ``"6.25 GiB"``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo(key: str, path: str = "/proc/meminfo") -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_limit() -> tuple[int | None, str]:
    """The memory this process may still use, and where that number comes from.

    Returns
    -------
    limit : int or None
        Bytes; None when the machine reports nothing.
    source : str
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return parse_bytes(env), ENV_VAR
    cands: list[tuple[int, str]] = []
    avail = _meminfo("MemAvailable")
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = None
    if avail is not None:
        cands.append((avail, "available memory (MemAvailable)"))
    cg_max = _read_int("/sys/fs/cgroup/memory.max")
    if cg_max is not None:
        used = _read_int("/sys/fs/cgroup/memory.current") or 0
        cands.append((max(cg_max - used, 0), "the cgroup's memory.max"))
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            used = _meminfo("VmSize", "/proc/self/status") or 0
            cands.append((max(soft - used, 0), "the address-space limit (RLIMIT_AS)"))
    except (ImportError, OSError, ValueError):  # pragma: no cover - not on POSIX
        pass
    if not cands:
        return None, "unknown"
    return min(cands)


def check_memory(estimate: float, what: str) -> None:
    """Refuse ``estimate`` bytes of working memory when the machine cannot give them.

    Raises
    ------
    InvalidInputError
        One line with the estimate and the limit.
    """
    limit, source = memory_limit()
    if limit is not None and estimate > limit:
        raise InvalidInputError(
            f"{what} needs about {format_bytes(estimate)} of working memory, more than the "
            f"{format_bytes(limit)} this process can use ({source}); use smaller data or set "
            f"{ENV_VAR}")


def _prod(shape: tuple[int, ...]) -> int:
    return math.prod(int(s) for s in shape)


def _stored(headers: Headers) -> int:
    return sum(_prod(sh) * int(getattr(dt, "itemsize", 8)) for sh, dt in headers.values())


def _att_svm(n: int, T: int, d: int, norm: str) -> int:
    """Bytes of one Att-SVM solve: constraint factors and their scaled copies, W-sized
    matrices, the working set's Gram blocks (nuclear: its interior-point matrices)."""
    m = n * max(T - 1, 0)
    c = min(m, default_chunk(m, d * d))
    total = 5 * 8 * m * d + 6 * 8 * d * d + 2 * 8 * c * c
    if norm != "fro":
        total += 12 * 8 * (2 * d) ** 2 + 2 * 8 * m * d
    return total


def solve_memory(headers: Headers, norm: str = "fro") -> int | None:
    """Estimated bytes of ``attnsvm solve`` on an instance file (None without a 3-d ``X``).

    The arrays read (twice their stored size), ``X`` and ``Z`` as float64, then one
    Att-SVM solve in ``norm``.
    """
    if "X" not in headers or len(headers["X"][0]) != 3:
        return None
    n, T, d = (int(s) for s in headers["X"][0])
    return 2 * _stored(headers) + 8 * n * T * d + 8 * n * d + _att_svm(n, T, d, norm)


def train_memory(headers: Headers, param: str = "W") -> int | None:
    """Estimated bytes of ``attnsvm train``: the instance, the training state (tokens,
    scores, ``W`` or ``K, Q`` with gradients and optimizer state) and the Frobenius and
    nuclear solves of the selected tokens (one after the other)."""
    base = solve_memory(headers, "nuc")
    if base is None:
        return None
    n, T, d = (int(s) for s in headers["X"][0])
    return base + 6 * 8 * n * T * d + 8 * 8 * n * T + (16 if param == "KQ" else 10) * 8 * d * d


def ntp_memory(headers: Headers, steps: int = 0) -> int | None:
    """Estimated bytes of ``attnsvm ntp`` known from the headers alone (None without a 2-d
    ``E`` and ``tokens``): the arrays read, the embedded sequences ``E[tokens]`` (float64),
    at most ``n T`` Graph-SVM rows, the ``d x d`` matrices, and the training state."""
    if "E" not in headers or "tokens" not in headers:
        return None
    if len(headers["E"][0]) != 2 or len(headers["tokens"][0]) != 2:
        return None
    K, d = (int(s) for s in headers["E"][0])
    n, T = (int(s) for s in headers["tokens"][0])
    total = 2 * _stored(headers) + 8 * K * d + 3 * 8 * n * T + 8 * n * T * d
    total += ntp_solve_memory(min(n * T, K ** 3), 0, d)
    if steps > 0:
        total += 6 * 8 * n * T * d + 10 * 8 * d * d
    return total


def ntp_solve_memory(m: int, fin_rows: int, d: int) -> int:
    """Bytes of the Graph-SVM with ``m`` rows and of ``W_fin`` with ``fin_rows`` generators
    of ``S_fin`` (each a ``d x d`` matrix, SVD included)."""
    return _att_svm(m, 2, d, "fro") + 3 * 8 * fin_rows * d * d


def check_file_memory(command: str, path: str | os.PathLike[str], **options: Any) -> None:
    """Estimate ``attnsvm COMMAND`` on ``path`` from its headers and refuse it, before any
    array is read, when it exceeds :func:`memory_limit` (unreadable files pass: the full read
    reports them).

    Parameters
    ----------
    command : {"solve", "train", "ntp"}
    path : path-like
    **options
        ``norm`` (solve), ``param`` (train), ``steps`` (ntp).

    Raises
    ------
    InvalidInputError
        The estimate exceeds the limit.
    """
    headers = npz_headers(path)
    if command == "solve":
        est = solve_memory(headers, str(options.get("norm", "fro")))
    elif command == "train":
        est = train_memory(headers, str(options.get("param", "W")))
    else:
        est = ntp_memory(headers, int(options.get("steps", 0)))
    if est is not None:
        check_memory(est, f"attnsvm {command} on '{path}'")
