"""The command line's one output layer.

Every command writes through these helpers, so that the rules of SPEC.md hold everywhere:

* output paths are checked *before* any work is done (:func:`check_out_path`);
* result files are written last, atomically, only on success (:func:`save_npz_atomic`);
* stdout holds nothing or one complete JSON object (:func:`emit_json` serialises first, then
  writes), and a closed pipe (``attnsvm solve --json | head``) is not an error;
* progress goes to stderr, one line per update when stderr is not a terminal, with an estimate
  of the time left (:class:`Progress`).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .._io import atomic_savez
from ..exceptions import InvalidInputError

__all__ = ["check_out_path", "save_npz_atomic", "emit_json", "emit_text", "to_jsonable",
           "Progress", "json_text", "native_stdout_to_stderr", "silence_stdout", "format_warning"]

_NAME_MAX = 255


def check_out_path(path: str | os.PathLike[str] | None, field: str = "--out",
                   kind: str = "file") -> Path | None:
    """Check an output path before any computation; ``None`` passes through.

    Parameters
    ----------
    path : path-like or None
    field : str
        The option's name, used in the error message.
    kind : {"file", "dir"}
        A result file (must not be an existing folder; its folder must exist or be creatable)
        or an output folder (must not be an existing file).

    Raises
    ------
    InvalidInputError
        With a one-line message naming ``field``.
    """
    if path is None:
        return None
    p = Path(path)
    if str(path) == "":
        raise InvalidInputError(f"{field} must be a path; got an empty string")
    if any(len(part.encode()) > _NAME_MAX for part in p.parts):
        raise InvalidInputError(f"{field}: a path component is longer than {_NAME_MAX} bytes")
    if kind == "file":
        if p.is_dir():
            raise InvalidInputError(f"{field} must be a file path; '{p}' is a folder")
        parent = p.parent
    else:
        if p.exists() and not p.is_dir():
            raise InvalidInputError(f"{field} must be a folder; '{p}' is an existing file")
        parent = p
    # the nearest existing ancestor must be a writable folder
    anc = parent if str(parent) else Path(".")
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise InvalidInputError(f"{field}: '{anc}' is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{field}: the folder '{anc}' is not writable")
    return p


def save_npz_atomic(path: str | os.PathLike[str], **arrays: Any) -> None:
    """Write a ``.npz`` of plain arrays atomically (complete or absent, never half written).

    Non-finite float arrays are allowed (a certificate never has them; callers decide).
    """
    atomic_savez(path, **arrays)


def to_jsonable(obj: object) -> object:
    """``json`` default hook: NumPy scalars and arrays to Python values."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean_floats(obj: object) -> object:
    """Non-finite floats become ``None`` (JSON has no NaN/inf)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_floats(v) for v in obj]
    return obj


def silence_stdout() -> None:
    """Point stdout at ``/dev/null`` (after a broken pipe, so the flush at exit stays quiet)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # stdout without a descriptor
        pass


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (``| head``): not an error
        silence_stdout()


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # pragma: no cover - no C library
        pass


@contextlib.contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """While the block runs, native writes to descriptor 1 go to stderr.

    LAPACK/BLAS and other C or Fortran code print diagnostics straight to descriptor 1
    (``** On entry to DLASCL ...``), which would corrupt a JSON result on stdout.  Inside the
    block descriptor 1 is a copy of stderr, while Python's ``sys.stdout`` keeps writing to
    the real standard output.
    """
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    try:
        saved = os.dup(1)
    except OSError:  # no descriptor 1: nothing to protect
        yield
        return
    old = sys.stdout
    try:
        uses_fd1 = old.fileno() == 1
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        uses_fd1 = False  # captured (tests) or replaced: Python output does not touch fd 1
    replacement = None
    try:
        os.dup2(2, 1)
        if uses_fd1:
            replacement = os.fdopen(saved, "w", closefd=False,
                                    encoding=getattr(old, "encoding", None) or "utf-8",
                                    errors=getattr(old, "errors", None) or "strict")
            sys.stdout = replacement
        yield
    finally:
        _flush_c_stdio()
        if replacement is not None:
            try:
                replacement.flush()
            except BrokenPipeError:
                silence_stdout()
            except (OSError, ValueError):
                pass
            sys.stdout = old
        os.dup2(saved, 1)
        os.close(saved)


def format_warning(w: warnings.WarningMessage) -> str:
    """One line for a warning (no source line): ``warning: Category: message``."""
    msg = " ".join(str(w.message).split())
    return f"warning: {w.category.__name__}: {msg}"


def json_text(obj: object) -> str:
    """``obj`` as one line of strict JSON (NumPy values converted, NaN/inf as null)."""
    return json.dumps(_clean_floats(to_jsonable_tree(obj)), allow_nan=False,
                      default=to_jsonable)


def emit_json(obj: object) -> None:
    """Serialise ``obj`` completely (NaN/inf as null), then write it as one line to stdout."""
    _write_stdout(json_text(obj) + "\n")


def to_jsonable_tree(obj: object) -> object:
    """Recursively convert NumPy values inside dicts and lists (so NaN cleaning sees floats)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable_tree(v) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)):
        return to_jsonable_tree(to_jsonable(obj))
    return obj


def emit_text(text: str) -> None:
    """Write a human summary (one or more lines) to stdout."""
    _write_stdout(text if text.endswith("\n") else text + "\n")


class Progress:
    """Progress with an estimate of the time left, on stderr.

    On a terminal one line is redrawn; otherwise a new line is printed at most every
    ``min_interval`` seconds (and at the end), so logs and pipes see it too.

    Parameters
    ----------
    total : int
        Number of units of work.
    label : str
        What is being done (``"train"``, ``"figure rank"``, ...).
    stream : file, optional
        Default ``sys.stderr``.
    min_interval : float
        Seconds between printed updates.
    enabled : bool
        ``False`` prints nothing (e.g. for very short runs).
    """

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 min_interval: float = 2.0, enabled: bool = True) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.enabled = enabled
        self.t0 = time.perf_counter()
        self._last = -math.inf
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0

    def _line(self) -> str:
        el = time.perf_counter() - self.t0
        frac = self.done / self.total
        eta = el * (1 - frac) / frac if frac > 0 else float("nan")
        eta_s = f", about {_fmt_seconds(eta)} left" if frac > 0 and frac < 1 else ""
        return (f"{self.label}: {self.done}/{self.total} ({100 * frac:.0f} %), "
                f"{_fmt_seconds(el)} elapsed{eta_s}")

    def update(self, done: int) -> None:
        """Record ``done`` units finished and print when due."""
        self.done = min(int(done), self.total)
        now = time.perf_counter()
        if not self.enabled or (now - self._last < self.min_interval and self.done < self.total):
            return
        self._last = now
        self._print()

    def _print(self) -> None:
        try:
            if self._tty:
                self.stream.write("\r" + self._line() + "\x1b[K")
            else:
                self.stream.write(self._line() + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # pragma: no cover - stderr closed
            self.enabled = False

    def close(self) -> None:
        """Finish the line (terminal) or print the final state once."""
        if not self.enabled:
            return
        if self.done < self.total or self._tty:
            self._print()
        if self._tty:
            try:
                self.stream.write("\n")
            except (BrokenPipeError, ValueError):  # pragma: no cover
                pass


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
