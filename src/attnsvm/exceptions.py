"""The one exception hierarchy of attnsvm.

Every error the package raises on purpose derives from :class:`AttnSVMError`, and each
subclass also derives from the matching built-in error so that generic ``except ValueError``
code keeps working.  The command line maps the classes to exit codes
(``attnsvm.cli.main.error_code``).
"""

from __future__ import annotations

__all__ = [
    "AttnSVMError",
    "InvalidInputError",
    "InvalidParameterError",
    "InstanceFileError",
    "InfeasibleProblemError",
    "SolverError",
    "MissingDependencyError",
    "ConvergenceWarning",
]


class AttnSVMError(Exception):
    """Base class of every error raised by attnsvm."""


class InvalidInputError(AttnSVMError, ValueError):
    """An input array or value is malformed (wrong shape, dtype, non-finite, out of range)."""


class InvalidParameterError(InvalidInputError):
    """A parameter of a function or estimator is not one of its allowed values."""


class InstanceFileError(InvalidInputError, OSError):
    """An instance file is missing, unreadable, or not a valid ``.npz`` instance."""


class InfeasibleProblemError(AttnSVMError, ArithmeticError):
    """An SVM has no feasible point; the solution object carries the certificate."""


class SolverError(AttnSVMError, RuntimeError):
    """A numerical backend failed or did not reach its tolerance."""


class MissingDependencyError(AttnSVMError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ConvergenceWarning(UserWarning):
    """A solver or trainer stopped before reaching its tolerance (soft failure)."""


def require(module: str, extra: str) -> object:
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"transformers"``.
    extra : str
        The ``pip install attnsvm[extra]`` that provides it.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise MissingDependencyError(
            f"the optional package '{module}' is required here; install it with "
            f"`pip install 'attnsvm[{extra}]'`"
        ) from exc
