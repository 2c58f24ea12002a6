"""Solvers for the attention SVMs (Frobenius, nuclear, l_p, several-token, prompt, head)."""

from .frobenius import solve_constraints, solve_fro, solve_fro_general
from .norms import NORMS
from .solution import INACCURATE, INFEASIBLE, OPTIMAL, SVMSolution

__all__ = [
    "solve_fro",
    "solve_constraints",
    "solve_fro_general",
    "SVMSolution",
    "OPTIMAL",
    "INFEASIBLE",
    "INACCURATE",
    "NORMS",
]
