"""The parametrizations of one-layer attention, declared once.

Every other place (validation, initial values, model construction, results, the command line)
reads this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._validation import check_choice

__all__ = ["ParamSpec", "PARAMETRIZATIONS", "PARAMS", "get_param"]


@dataclass(frozen=True)
class ParamSpec:
    """One parametrization.

    Attributes
    ----------
    name : str
    base : {"W", "KQ", "p"}
        The attention part: key-query matrix, its factors, or a prompt.
    joint : bool
        The linear head ``v`` is trained together with the base.
    description : str
    """

    name: str
    base: str
    joint: bool
    description: str

    def block_shapes(self, d: int, m: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the base's trainable blocks (without the batch axis and the head)."""
        if self.base == "W":
            return {"W": (d, d)}
        if self.base == "KQ":
            return {"K": (d, m), "Q": (d, m)}
        return {"p": (d,)}

    @property
    def has_key_query(self) -> bool:
        """True when the model has a key-query matrix (``W`` or ``K Q^T``)."""
        return self.base in ("W", "KQ")


PARAMETRIZATIONS: dict[str, ParamSpec] = {
    s.name: s for s in (
        ParamSpec("W", "W", False, "key-query matrix W (d, d)"),
        ParamSpec("KQ", "KQ", False, "factors K, Q (d, m), W = K Q^T"),
        ParamSpec("p", "p", False, "prompt p (d,) with a fixed key matrix"),
        ParamSpec("vW", "W", True, "linear head v and W, jointly"),
        ParamSpec("vp", "p", True, "linear head v and prompt p, jointly"),
    )
}

#: Names of the parametrizations, in declaration order.
PARAMS: tuple[str, ...] = tuple(PARAMETRIZATIONS)


def get_param(name: str) -> ParamSpec:
    """The :class:`ParamSpec` of ``name`` (validated)."""

    return PARAMETRIZATIONS[check_choice("param", name, PARAMS)]
