"""Declarative figure configurations.

Every figure of :mod:`attnsvm.experiments.figures` is a frozen dataclass of settings (the
papers' values as defaults) plus a ``QUICK`` mapping of the overrides used by
``attnsvm reproduce --quick``.  A configuration is plain data: it turns into JSON for the
report's provenance, and its :meth:`FigureConfig.key` names the sweep folder, so results of
different settings never mix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from ..exceptions import InvalidParameterError
from ..reporting import to_jsonable

__all__ = ["FigureConfig", "config_key", "jsonable"]

C = TypeVar("C", bound="FigureConfig")


def jsonable(value: Any) -> Any:
    """``value`` with tuples turned into lists and numpy scalars into Python numbers
    (:func:`attnsvm.reporting.to_jsonable`, non-finite floats kept: this names folders)."""
    return to_jsonable(value, strict=False)


def config_key(data: Any, length: int = 12) -> str:
    """A short stable hash of JSON-able ``data`` (sorted keys)."""
    text = json.dumps(jsonable(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class FigureConfig:
    """Base class of the figure configurations.

    Attributes
    ----------
    seeds : int
        Number of random instances (seeds ``seed0 .. seed0 + seeds - 1``).
    seed0 : int
        First seed.
    chunk : int
        Seeds per sweep cell (the unit that is written to disk and resumed).
    quick : bool
        True for the reduced ``--quick`` variant (set by :meth:`quick_variant`).
    """

    seeds: int = 100
    seed0: int = 0
    chunk: int = 25
    quick: bool = False

    #: Overrides applied by :meth:`quick_variant`.
    QUICK: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        for name in ("seeds", "chunk"):
            val = getattr(self, name)
            if not isinstance(val, int) or val < 1:
                raise InvalidParameterError(
                    f"The '{name}' setting must be a positive integer. Got {val!r} instead.")

    def quick_variant(self: C) -> C:
        """The reduced configuration of ``--quick``."""
        return dataclasses.replace(self, quick=True, **self.QUICK)

    def seed_list(self) -> list[int]:
        """All seeds of the figure."""
        return list(range(self.seed0, self.seed0 + self.seeds))

    def seed_chunks(self) -> list[tuple[int, ...]]:
        """Seeds split into cells of ``chunk``."""
        s = self.seed_list()
        return [tuple(s[k:k + self.chunk]) for k in range(0, len(s), self.chunk)]

    def to_dict(self) -> dict[str, Any]:
        """Settings as JSON-able data."""
        return jsonable(dataclasses.asdict(self))

    def key(self) -> str:
        """Stable hash of the settings (names the sweep folder)."""
        return config_key({"class": type(self).__name__, **self.to_dict()})

    def replace(self: C, **changes: Any) -> C:
        """A copy with some settings changed (unknown names raise InvalidParameterError)."""
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise InvalidParameterError(
                f"Unknown settings {bad} for {type(self).__name__}; valid: {sorted(names)}.")
        return dataclasses.replace(self, **changes)
