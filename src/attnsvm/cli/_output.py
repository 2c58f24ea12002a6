"""The command line's one output layer.

Every command writes through these helpers, so that the rules of SPEC.md hold everywhere:

* output paths are checked *before* any work is done (:func:`check_out_path`);
* result files are written last, atomically, only on success (:func:`save_npz_atomic`);
* stdout holds nothing or one complete JSON object (:func:`emit_json` serialises first, then
  writes), and a closed pipe (``attnsvm solve --json | head``) is not an error;
* progress goes to stderr, one line per update when stderr is not a terminal, with an estimate
  of the time left (:class:`attnsvm.progress.Progress`, re-exported here);
* native (C/Fortran) writes to descriptor 1 go to stderr while a command runs
  (:func:`native_stdout_to_stderr`), and warnings become one line each (:func:`format_warning`).

JSON conversion is :func:`attnsvm.reporting.to_jsonable`, shared with the report writers.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._io import atomic_savez, check_output_path
from ..progress import Progress
from ..reporting import to_jsonable

__all__ = ["check_out_path", "save_npz_atomic", "emit_json", "emit_text", "to_jsonable",
           "Progress", "json_text", "native_stdout_to_stderr", "silence_stdout", "format_warning",
           "write_warnings"]

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
    return check_output_path(path, field, kind)


def save_npz_atomic(path: str | os.PathLike[str], **arrays: Any) -> None:
    """Write a ``.npz`` of plain arrays atomically (complete or absent, never half written).

    Non-finite float arrays are allowed (a certificate never has them; callers decide).
    """
    atomic_savez(path, **arrays)


def _json_default(obj: object) -> object:
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


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
    try:
        os.dup2(2, 1)
    except OSError:  # no usable stderr: leave descriptor 1 alone
        os.close(saved)
        yield
        return
    replacement = None
    try:
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


def write_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Each distinct warning once, one line each (:func:`format_warning`), to stderr."""
    for line in dict.fromkeys(format_warning(w) for w in caught):
        sys.stderr.write(line + "\n")


def json_text(obj: object) -> str:
    """``obj`` as one line of strict JSON (NumPy values converted, NaN/inf as null)."""
    return json.dumps(to_jsonable(obj), allow_nan=False, default=_json_default)


def emit_json(obj: object) -> None:
    """Serialise ``obj`` completely (NaN/inf as null), then write it as one line to stdout."""
    _write_stdout(json_text(obj) + "\n")


def emit_text(text: str) -> None:
    """Write a human summary (one or more lines) to stdout."""
    _write_stdout(text if text.endswith("\n") else text + "\n")
