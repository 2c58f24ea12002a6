"""attnsvm: softmax attention as a max-margin SVM over tokens.

Solvers for every attention SVM (:mod:`attnsvm.svm`), exact batched trainers
(:mod:`attnsvm.train`, needs PyTorch), the papers' experiments (:mod:`attnsvm.experiments`) and a
probe for pretrained transformers (:mod:`attnsvm.probe`).  Public names are imported lazily, so
``import attnsvm`` is cheap and never imports PyTorch.

Examples
--------
>>> import attnsvm
>>> inst = attnsvm.random_instance(n=6, T=8, d=10, seed=0)
>>> sol = attnsvm.solve_fro(inst)
>>> sol.status, sol.is_optimal(1e-8)
('optimal', True)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Instance": "instance",
    "random_instance": "instance",
    "TiedTokensError": "instance",
    "SVMSolution": "svm",
    "solve_fro": "svm",
    "solve_nuc": "svm",
    "solve_lp": "svm",
    "solve_fro_constraints": "svm",
    "solve_nuc_constraints": "svm",
    "solve": "svm",
    "ConstraintSet": "constraints",
    "local_optimality": "svm",
    "AttnSVMError": "exceptions",
    "InvalidInputError": "exceptions",
    "InvalidParameterError": "exceptions",
    "InstanceFileError": "exceptions",
    "InfeasibleProblemError": "exceptions",
    "SolverError": "exceptions",
    "MissingDependencyError": "exceptions",
    "ConvergenceWarning": "exceptions",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from .constraints import ConstraintSet
    from .exceptions import (
        AttnSVMError,
        ConvergenceWarning,
        InfeasibleProblemError,
        InstanceFileError,
        InvalidInputError,
        InvalidParameterError,
        MissingDependencyError,
        SolverError,
    )
    from .instance import Instance, TiedTokensError, random_instance
    from .svm import (
        SVMSolution,
        local_optimality,
        solve,
        solve_fro,
        solve_fro_constraints,
        solve_lp,
        solve_nuc,
        solve_nuc_constraints,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attnsvm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
