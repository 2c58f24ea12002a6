"""Checks of a model folder before any model is built: architecture, layers, sequence length,
weight dtypes, parameter count and memory.

For a safetensors folder :func:`preflight` reads ``config.json`` (through transformers'
``AutoConfig``, which builds no weights) and the weight files' headers, then

- refuses an architecture without a probe adapter (before the load prints anything);
- checks ``--layers`` against the config's layer count and ``--seq-len`` against its
  ``max_position_embeddings``;
- refuses quantized integer weights (``I8``, ``U8``, ``F8_*``, ...): the probe analyses float
  weights and never casts them silently;
- counts the parameters the config declares (the model built on PyTorch's ``meta`` device,
  which allocates nothing) against the elements the weight files hold: a folder whose files
  lack most of them would be probed with random weights and is refused;
- estimates the working memory (float32 parameters, twice for the load, plus the probe's
  activations) and refuses, with the estimate and the limit, what exceeds the memory the
  machine has available.

Every refusal is an :class:`~attnsvm.exceptions.InvalidInputError` (exit 2, one line).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..exceptions import InvalidInputError, require
from .adapters import SUPPORTED

__all__ = ["Preflight", "preflight", "available_memory", "weight_summary", "QUANTIZED_DTYPES",
           "SUPPORTED_MODEL_TYPES", "check_in_memory"]

#: safetensors dtypes refused as weights (quantized or integer formats).
QUANTIZED_DTYPES = {"I8", "U8", "I4", "U4", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3",
                    "F6_E3M2"}
#: Integer tensors that are buffers, not weights (allowed).
_BUFFER_SUFFIXES = ("position_ids", "token_type_ids", "position_ids_buffer")

#: model_type values with an adapter (BERT-style encoders listed by name).
SUPPORTED_MODEL_TYPES = {
    "llama", "qwen2", "mistral", "gemma2", "qwen3", "olmo2", "gemma3_text", "phi", "gpt_neox",
    "gpt2", "distilbert", "bert", "roberta", "xlm-roberta", "electra", "camembert",
}

_MAX_CONFIG = 10_000_000


@dataclass(frozen=True)
class Preflight:
    """What the checks found.

    Attributes
    ----------
    model_type : str
    num_layers : int or None
    max_positions : int or None
    n_params : int or None
        Parameters the config declares.
    n_weights : int
        Elements the weight files hold.
    estimate_bytes : int
        Estimated working memory of loading and probing the model.
    """

    model_type: str
    num_layers: int | None
    max_positions: int | None
    n_params: int | None
    n_weights: int
    estimate_bytes: int


def available_memory() -> int | None:
    """Bytes of memory available to this process (MemAvailable, capped by a cgroup limit)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        avail = None
    for cg in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(cg).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < (1 << 60):
            avail = int(raw) if avail is None else min(avail, int(raw))
    return avail


def weight_summary(files: list[Path]) -> tuple[int, list[str]]:
    """``(elements of float weights, names of refused quantized tensors)`` from headers."""
    total, bad = 0, []
    for f in files:
        with f.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n).decode("utf-8"))
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            count = 1
            for s in entry.get("shape", []):
                count *= int(s)
            dtype = str(entry.get("dtype", ""))
            if dtype in QUANTIZED_DTYPES or (dtype.startswith(("I", "U"))
                                              and not name.endswith(_BUFFER_SUFFIXES)):
                bad.append(f"{name} ({dtype})")
            elif not dtype.startswith(("I", "U", "BOOL")):
                total += count
    return total, bad


def _config_int(cfg: Any, *names: str) -> int | None:
    for n in names:
        v = getattr(cfg, n, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _declared_params(cfg: Any) -> int | None:
    """Parameters of the model the config declares, built on the meta device."""
    import torch

    transformers: Any = require("transformers", "probe")
    try:
        with torch.device("meta"):
            model = transformers.AutoModel.from_config(cfg)
    except Exception:  # noqa: BLE001 - an unbuildable config is reported by the real load
        return None
    return int(sum(p.numel() for p in model.parameters()))


def preflight(folder: Path, gguf_file: str | None, seq_len: int, max_queries: int
              ) -> Preflight | None:
    """Check a model folder before it is loaded (see the module docstring).

    Returns
    -------
    Preflight or None
        None for GGUF checkpoints (checked by their loader).

    Raises
    ------
    InvalidInputError
        Unsupported architecture, quantized weights, weight files missing most parameters,
        or a memory estimate above what is available.
    """
    if gguf_file is not None:
        return None
    cfg_path = folder / "config.json"
    try:
        if cfg_path.stat().st_size > _MAX_CONFIG:
            raise InvalidInputError(f"The config '{cfg_path}' is larger than 10 MB.")
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"The config '{cfg_path}' is not readable JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInputError(f"The config '{cfg_path}' is not a JSON object.")
    mtype = str(raw.get("model_type", ""))
    if mtype not in SUPPORTED_MODEL_TYPES:
        raise InvalidInputError(
            f"No probe adapter for model_type '{mtype or '?'}' (config.json of '{folder}'); "
            f"supported: {SUPPORTED}."
        )
    transformers: Any = require("transformers", "probe")
    try:
        cfg = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"The config '{cfg_path}' is not valid: {exc}") from exc
    n_weights, bad = weight_summary(sorted(folder.glob("*.safetensors")))
    if bad:
        raise InvalidInputError(
            f"The weights of '{folder}' include quantized or integer tensors ({bad[0]}"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
            + "); the probe analyses float weights only and does not cast them."
        )
    layers = _config_int(cfg, "num_hidden_layers", "n_layer", "n_layers")
    positions = _config_int(cfg, "max_position_embeddings", "n_positions")
    d = _config_int(cfg, "hidden_size", "n_embd", "dim") or 0
    n_params = _declared_params(cfg)
    if n_params is not None and n_weights < 0.5 * n_params:
        raise InvalidInputError(
            f"The weight files of '{folder}' hold {n_weights:,} values but the config declares "
            f"{n_params:,} parameters; refusing to probe a model with missing (random) weights."
        )
    count = max(n_params or 0, n_weights)
    act = 8 * (layers or 1) * max(int(seq_len), 1) * (d + 1) * 64 + 8 * int(max_queries) * d * d
    estimate = 8 * count + act + (256 << 20)
    limit = available_memory()
    if limit is not None and estimate > limit:
        raise InvalidInputError(
            f"Probing '{folder}' needs about {estimate / 2**30:.1f} GiB ({count:,} parameters "
            f"in float32, loaded twice, plus activations); this machine has "
            f"{limit / 2**30:.1f} GiB available."
        )
    return Preflight(mtype, layers, positions, n_params, n_weights, estimate)


def _quant_method(model: Any) -> str | None:
    """The quantization method of a transformers model ('?' when unnamed), None without."""
    q = getattr(getattr(model, "hf_quantizer", None), "quantization_config", None)
    if q is None:
        q = getattr(getattr(model, "config", None), "quantization_config", None)
    if q is None:
        return "?" if getattr(model, "is_quantized", False) else None
    m = q.get("quant_method") if isinstance(q, dict) else getattr(q, "quant_method", None)
    return str(getattr(m, "value", m) or "?").lower()


def check_in_memory(model: Any) -> None:
    """Refuse a model object whose weights the probe cannot analyse exactly.

    A quantized model (an ``hf_quantizer`` or ``quantization_config`` of any method but
    ``gguf``, ``is_quantized``, or any integer parameter, as bitsandbytes and torch.ao store
    them) runs on weights that are not the float tensors the probe would read; a float16 /
    bfloat16 model computes its attention in a precision the probe's float64 form cannot match
    to 1e-4.  A GGUF file de-quantized by transformers at load time (quant_method ``gguf``) is
    float32 in memory and passes: the probe analyses that de-quantized model.

    Raises
    ------
    InvalidInputError
    """
    method = _quant_method(model)
    if method is not None and method != "gguf":
        raise InvalidInputError(
            f"The model is quantized ({method}); the probe analyses float32/float64 weights "
            "only (load it without quantization)."
        )
    for name, p in model.named_parameters():
        if not p.is_floating_point():
            raise InvalidInputError(
                f"The model holds quantized or integer weights ({name}: {p.dtype}); the probe "
                "analyses float32/float64 weights only."
            )
        if str(p.dtype) not in ("torch.float32", "torch.float64"):
            raise InvalidInputError(
                f"The model's weights are {p.dtype} ({name}); the probe compares its exact "
                "form with the model's own attention in float32 or float64: convert it with "
                "model.float() first."
            )
