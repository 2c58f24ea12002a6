"""Nuclear-norm Att-SVM ``W_*^mm``: the certified working-set interior-point solver.

* :func:`solve_nuc` / :func:`solve_nuc_constraints`: one problem (:mod:`.solver`).
* :func:`solve_nuc_many`: many problems, their interior points stacked (:mod:`.batch`).
* :func:`certify_nuclear`: the certificate of a candidate ``(W, mu)``; :func:`certified_rank`
  reads the rank from it.

The private modules hold the parts, by job: ``_presolve`` (``apply``: unit scale and reduced
coordinates; ``lift``: back), ``_rounds`` (the working-set rounds), ``_policy`` (the tolerance
ladder derived from ``tol`` and the interior-point rules), ``_sdp`` / ``_newton`` / ``_ipm``
(the SDP's operators, one step, the loop) and ``_stack`` / ``_newton_batch`` / ``_ipm_batch``
(the same for a stack of problems), ``_polish`` (tangent and face polish), ``_implied`` (the
implied rows of Graph-SVMs).
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
