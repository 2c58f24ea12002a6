"""attnsvm: softmax attention as a max-margin SVM over tokens.

Solvers for every attention SVM (:mod:`attnsvm.svm`), exact batched trainers
(:mod:`attnsvm.train`, needs PyTorch), the papers' experiments (:mod:`attnsvm.experiments`) and a
probe for pretrained transformers (:mod:`attnsvm.probe`).  Importing ``attnsvm`` does not import
PyTorch.
"""

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
from .svm import SVMSolution, solve_constraints, solve_fro

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Instance",
    "random_instance",
    "TiedTokensError",
    "SVMSolution",
    "solve_fro",
    "solve_constraints",
    "AttnSVMError",
    "InvalidInputError",
    "InvalidParameterError",
    "InstanceFileError",
    "InfeasibleProblemError",
    "SolverError",
    "MissingDependencyError",
    "ConvergenceWarning",
]
