"""Checkpoint folders: the log-spaced schedule, writing ``step-NNNNNN/`` and finding them again.

A checkpoint is a Hugging Face model folder (``model.safetensors``, ``config.json``, the
tokenizer files) plus ``attnsvm_task.json`` (the task it was trained on) and, for synthetic
tasks, ``attnsvm_eval.txt`` (the held-out text ``attnsvm track`` probes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import InvalidInputError
from ..probe.models import PICKLE_SUFFIXES, resolve_model

__all__ = ["schedule", "step_dirname", "save_checkpoint", "Checkpoint", "find_checkpoints",
           "architecture", "TASK_FILE"]

TASK_FILE = "attnsvm_task.json"
_STEP = re.compile(r"step[-_]?(\d+)$", re.IGNORECASE)


def schedule(steps: int, checkpoints: int) -> list[int]:
    """Step 0 and ``checkpoints`` log-spaced steps ending at ``steps``, strictly increasing.

    >>> schedule(200, 4)
    [0, 1, 6, 34, 200]
    >>> schedule(3, 3)
    [0, 1, 2, 3]
    """
    raw = np.geomspace(1, steps, checkpoints) if checkpoints > 1 else np.array([steps])
    out = [0]
    for k, g in enumerate(raw):
        s = max(int(round(float(g))), out[-1] + 1)
        s = min(s, steps - (checkpoints - 1 - k))  # leave room for the later ones
        out.append(s)
    return out


def step_dirname(step: int) -> str:
    """``step-000200`` for step 200."""
    return f"step-{step:06d}"


def save_checkpoint(folder: Path, model: Any, tokenizer: Any, task_meta: dict[str, Any],
                    eval_text: str | None) -> None:
    """Write one checkpoint folder (complete: written to ``folder.partial`` then renamed)."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    (tmp / TASK_FILE).write_text(json.dumps(task_meta, indent=1, sort_keys=True) + "\n")
    if eval_text is not None:
        (tmp / str(task_meta["eval_text"])).write_text(eval_text + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


@dataclass(frozen=True)
class Checkpoint:
    """One model folder of a series.

    Attributes
    ----------
    path : pathlib.Path
    step : int or None
        From the folder name (``step-200``, ``step200``, ``step_200``), else None.
    config : dict
        Its ``config.json``.
    task : dict or None
        Its ``attnsvm_task.json`` (checkpoints of ``attnsvm pretrain``).
    """

    path: Path
    step: int | None
    config: dict[str, Any]
    task: dict[str, Any] | None


def _step_of(name: str) -> int | None:
    m = _STEP.search(name)
    if m is None:
        return None
    return int(m.group(1))


def architecture(config: dict[str, Any]) -> dict[str, Any]:
    """The fields two checkpoints of one series share (model type, layers, heads, width)."""
    def first(*keys: str) -> Any:
        return next((config[k] for k in keys if k in config), None)

    return {"model_type": config.get("model_type"),
            "layers": first("num_hidden_layers", "n_layer"),
            "heads": first("num_attention_heads", "n_head"),
            "hidden": first("hidden_size", "n_embd", "d_model"),
            "vocab": config.get("vocab_size")}


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"The {what} '{path}' is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInputError(f"The {what} '{path}' is not a JSON object.")
    return data


def _load_one(path: Path) -> Checkpoint:
    src = resolve_model(str(path))  # raises on a folder that is not a model
    if src.gguf_file is not None:
        raise InvalidInputError(
            f"The checkpoint '{path}' is a GGUF file; track reads safetensors model folders.")
    folder = src.folder
    cfg = _read_json(folder / "config.json", "model configuration")
    task_path = folder / TASK_FILE
    task = _read_json(task_path, "task file") if task_path.is_file() else None
    return Checkpoint(folder, _step_of(folder.name), cfg, task)


def find_checkpoints(paths: list[str | os.PathLike[str]]) -> list[Checkpoint]:
    """The checkpoints named by ``paths``, in step order, all of one architecture.

    Parameters
    ----------
    paths : list of path-like
        Model folders, or one folder holding ``step-*`` model folders.

    Returns
    -------
    list of Checkpoint
        Sorted by step when every folder has one (else in the order given).

    Raises
    ------
    InvalidInputError
        No path, a path that is missing or not a model folder, a folder without ``step-*``
        models, the same folder twice, or checkpoints of different architectures.
    """
    if not paths:
        raise InvalidInputError("No checkpoint given: name model folders or one folder "
                                "holding step-* folders.")
    folders: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise InvalidInputError(f"The checkpoint '{p}' does not exist.")
        subs = sorted(q for q in p.iterdir() if q.is_dir() and _step_of(q.name) is not None
                      and not q.name.endswith(".partial")) if p.is_dir() else []
        weights = p.is_dir() and (any(p.glob("*.safetensors")) or any(p.glob("*.gguf")))
        if len(paths) == 1 and subs and not weights:
            folders.extend(subs)
        elif p.is_dir() and not weights and not subs and not any(
                q.suffix in PICKLE_SUFFIXES for q in p.iterdir()):  # pickles: the probe says
            raise InvalidInputError(
                f"The checkpoint '{p}' is neither a model folder (safetensors weights and "
                "config.json) nor a folder holding step-* model folders.")
        else:
            folders.append(p)
    cks = [_load_one(f) for f in folders]
    if len({c.path.resolve() for c in cks}) != len(cks):
        raise InvalidInputError("The same checkpoint is named twice.")
    if all(c.step is not None for c in cks):
        cks.sort(key=lambda c: int(c.step or 0))
        steps = [c.step for c in cks]
        if len(set(steps)) != len(steps):
            raise InvalidInputError(f"Two checkpoints have the same step: {steps}.")
    ref = architecture(cks[0].config)
    for c in cks[1:]:
        arch = architecture(c.config)
        if arch != ref:
            diff = {k: (ref[k], arch[k]) for k in ref if ref[k] != arch[k]}
            raise InvalidInputError(
                f"The checkpoints mix architectures: '{c.path}' differs from "
                f"'{cks[0].path}' in {diff}.")
    tasks = {json.dumps(c.task, sort_keys=True) for c in cks}
    if len(tasks) > 1:
        raise InvalidInputError("The checkpoints were trained on different tasks "
                                "(their attnsvm_task.json differ).")
    return cks
