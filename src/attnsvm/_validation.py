"""Parameter and array validation shared by every public entry point.

Messages follow one pattern: ``"The 'field' ... must be <expected>. Got <what came> instead."``
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .exceptions import InvalidInputError, InvalidParameterError

__all__ = ["check_choice", "check_positive", "check_steps", "MAX_STEPS", "as_float_array",
           "as_int_array"]

#: Largest accepted number of training steps (larger runs are refused up front: split them).
MAX_STEPS = 10**9


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise :class:`InvalidParameterError`."""
    allowed = list(allowed)
    if value not in allowed:
        shown = "{" + ", ".join(repr(a) for a in allowed) + "}"
        raise InvalidParameterError(
            f"The '{name}' parameter must be one of {shown}. Got {value!r} instead."
        )
    return value


def check_positive(name: str, value: Any, *, integer: bool = False,
                   allow_zero: bool = False) -> Any:
    """Return ``value`` if it is a finite positive number (an int when ``integer``)."""
    kind = "integer" if integer else "number"
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(
        value, (int, float, np.integer, np.floating)
    )
    if isinstance(value, bool) or not ok_type or not np.isfinite(value) or (
        value < 0 or (value == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidParameterError(
            f"The '{name}' parameter must be a finite {kind} {bound}. Got {value!r} instead."
        )
    return value


def check_steps(value: Any, name: str = "steps") -> int:
    """Return ``value`` if it is an integer in ``[0, MAX_STEPS]``, else raise
    :class:`InvalidParameterError`."""
    steps = int(check_positive(name, value, integer=True, allow_zero=True))
    if steps > MAX_STEPS:
        raise InvalidParameterError(
            f"The '{name}' parameter must be at most {MAX_STEPS:.0e} (split longer runs). "
            f"Got {steps} instead.")
    return steps


def _describe(arr: Any) -> str:
    if isinstance(arr, np.ndarray):
        return f"an array of shape {arr.shape} and dtype {arr.dtype}"
    return f"{type(arr).__name__} {arr!r}"[:80]


def _check_shape(name: str, arr: np.ndarray, ndim: int,
                 shape: tuple[int | None, ...] | None) -> None:
    """Raise :class:`InvalidInputError` unless ``arr`` has ``ndim`` axes matching ``shape``."""
    if arr.ndim != ndim:
        raise InvalidInputError(
            f"The '{name}' array must have {ndim} dimension(s). Got {_describe(arr)} instead."
        )
    if shape is not None:
        for axis, want in enumerate(shape):
            if want is not None and arr.shape[axis] != want:
                expected = tuple("*" if s is None else s for s in shape)
                raise InvalidInputError(
                    f"The '{name}' array must have shape {expected}. Got shape {arr.shape} instead."
                )


def as_float_array(name: str, value: Any, ndim: int, shape: tuple[int | None, ...] | None = None
                   ) -> np.ndarray:
    """Convert to a finite float64 array with ``ndim`` dimensions (and ``shape``, None = any).

    Raises
    ------
    InvalidInputError
        On object/str/complex dtype, wrong rank or shape, NaN or infinity.
    """
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"The '{name}' array must hold real numbers. Got {_describe(arr)} instead."
        )
    _check_shape(name, arr, ndim, shape)
    out = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise InvalidInputError(
            f"The '{name}' array must be finite. Got NaN or infinity in it instead."
        )
    return out


def _fmt_value(x: Any) -> str:
    """A value as the user wrote it: integers exactly, floats in short form."""
    if isinstance(x, (float, np.floating)):
        xf = float(x)
        return str(int(xf)) if xf.is_integer() and abs(xf) < 1e16 else f"{xf:g}"
    return str(int(x))


def as_int_array(name: str, value: Any, ndim: int, shape: tuple[int | None, ...] | None = None,
                 low: int | None = None, high: int | None = None) -> np.ndarray:
    """Convert to an int64 array; floats are accepted only when integral; bounds are [low, high).

    Bounds are checked on the values as given (before any cast), so ``1e30`` or a ``uint64``
    above ``2**63`` is reported with its real value and never wraps around or warns.

    Raises
    ------
    InvalidInputError
        Non-numeric, boolean or non-integral values, wrong rank or shape, values outside
        ``[low, high)`` or outside the int64 range.
    """
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        # booleans are refused too: True/False as token indices 1/0 is a mistake, not a choice
        raise InvalidInputError(
            f"The '{name}' array must hold integers. Got {_describe(arr)} instead."
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InvalidInputError(
                f"The '{name}' array must hold integers. Got non-integral values instead."
            )
    _check_shape(name, arr, ndim, shape)
    if arr.size:
        # Python ints and floats compare exactly with the bounds, whatever the dtype
        lo_v, hi_v = arr.min().item(), arr.max().item()
        if low is not None and lo_v < low:
            raise InvalidInputError(
                f"The '{name}' values must be >= {low}. Got {_fmt_value(lo_v)} instead.")
        if high is not None and hi_v >= high:
            raise InvalidInputError(
                f"The '{name}' values must be < {high}. Got {_fmt_value(hi_v)} instead.")
        i64 = np.iinfo(np.int64)
        if lo_v < i64.min or hi_v > i64.max:
            bad = lo_v if lo_v < i64.min else hi_v
            raise InvalidInputError(
                f"The '{name}' values must fit in a 64-bit integer. Got {_fmt_value(bad)} "
                f"instead.")
    return arr.astype(np.int64)
