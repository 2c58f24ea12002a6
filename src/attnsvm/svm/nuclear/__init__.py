"""Nuclear-norm Att-SVM ``W_*^mm``: the certified working-set interior-point solver.

* :func:`solve_nuc` / :func:`solve_nuc_constraints`: one problem (:mod:`.solver`).
* :func:`solve_nuc_many`: many problems, their interior points stacked (:mod:`.batch`).
* :func:`certify_nuclear`: the certificate of a candidate ``(W, mu)``; :func:`certified_rank`
  reads the rank from it.

The private modules hold the parts: ``_ipm`` / ``_ipm_batch`` the interior point (one problem,
a stack), ``_polish`` the tangent and face polish, ``_implied`` the implied rows of Graph-SVMs.
"""

from .._instance import validated_constraints
from .batch import solve_nuc_many
from .solver import (
    METHOD,
    certified_rank,
    certify_nuclear,
    solve_nuc,
    solve_nuc_constraints,
)

__all__ = [
    "solve_nuc",
    "solve_nuc_constraints",
    "solve_nuc_many",
    "certify_nuclear",
    "certified_rank",
    "validated_constraints",
    "METHOD",
]
