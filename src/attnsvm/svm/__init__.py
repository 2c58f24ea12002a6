"""Solvers for the attention SVMs.

* :func:`solve`: any norm, on an instance or a :class:`~attnsvm.constraints.ConstraintSet`.
* :func:`solve_fro` / :func:`solve_fro_constraints`: exact Frobenius Att-SVM (working-set dual).
* :func:`solve_nuc` / :func:`solve_nuc_constraints`: nuclear-norm Att-SVM.
* :func:`solve_lp`, :func:`solve_conic`: entrywise l_p Att-SVM and the cvxpy reference.
* :func:`solve_linf` / :func:`solve_spec`: max-norm (LP) and spectral (SDP) Att-SVMs, certified;
  :func:`margin_ratio` of any W in any of the four geometries.
* :func:`solve_w_dir`, :func:`solve_w_fin`, :func:`fit_svmeq`: several selected tokens.
* :func:`solve_p_svm`, :func:`solve_p_svm_relaxed`, :func:`solve_v_svm`: prompt and head SVMs.
* :func:`local_optimality`, :func:`svm_neighbors`, :func:`enumerate_local_optima`.
"""

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it, imported on first use (``attnsvm solve --norm
#: spec`` then never imports the nuclear, conic or estimator modules)
_LAZY = {
    "ConstraintSet": "..constraints",
    "VectorConstraints": "..constraints",
    "solve_conic": ".conic",
    "solve_lp": ".conic",
    "AttSVM": ".estimator",
    "solve_fro": ".frobenius",
    "solve_fro_constraints": ".frobenius",
    "LocalOptimality": ".landscape",
    "enumerate_local_optima": ".landscape",
    "local_optimality": ".landscape",
    "svm_neighbors": ".landscape",
    "solve_linf": ".linf",
    "solve_linf_constraints": ".linf",
    "MARGIN_NORMS": ".margins",
    "margin_ratio": ".margins",
    "margin_ratios": ".margins",
    "NORMS": ".norms",
    "certified_rank": ".nuclear",
    "solve_nuc": ".nuclear",
    "solve_nuc_constraints": ".nuclear",
    "solve_nuc_many": ".nuclear",
    "SOLVERS": ".registry",
    "solve": ".registry",
    "SVMEquivalence": ".several",
    "fit_svmeq": ".several",
    "selected_sets": ".several",
    "solve_w_dir": ".several",
    "solve_w_fin": ".several",
    "INACCURATE": ".solution",
    "INFEASIBLE": ".solution",
    "OPTIMAL": ".solution",
    "SVMSolution": ".solution",
    "solve_spec": ".spectral",
    "solve_spec_constraints": ".spectral",
    "solve_p_svm": ".vector",
    "solve_p_svm_relaxed": ".vector",
    "solve_v_svm": ".vector",
    "solve_vector_svm": ".vector",
}

if TYPE_CHECKING:  # pragma: no cover
    from ..constraints import ConstraintSet, VectorConstraints
    from .conic import solve_conic, solve_lp
    from .estimator import AttSVM
    from .frobenius import solve_fro, solve_fro_constraints
    from .landscape import (
        LocalOptimality,
        enumerate_local_optima,
        local_optimality,
        svm_neighbors,
    )
    from .linf import solve_linf, solve_linf_constraints
    from .margins import MARGIN_NORMS, margin_ratio, margin_ratios
    from .norms import NORMS
    from .nuclear import certified_rank, solve_nuc, solve_nuc_constraints, solve_nuc_many
    from .registry import SOLVERS, solve
    from .several import SVMEquivalence, fit_svmeq, selected_sets, solve_w_dir, solve_w_fin
    from .solution import INACCURATE, INFEASIBLE, OPTIMAL, SVMSolution
    from .spectral import solve_spec, solve_spec_constraints
    from .vector import solve_p_svm, solve_p_svm_relaxed, solve_v_svm, solve_vector_svm

__all__ = [
    "solve",
    "SOLVERS",
    "ConstraintSet",
    "VectorConstraints",
    "AttSVM",
    "solve_fro",
    "solve_fro_constraints",
    "certified_rank",
    "solve_conic",
    "solve_nuc",
    "solve_lp",
    "solve_nuc_constraints",
    "solve_nuc_many",
    "solve_w_dir",
    "solve_w_fin",
    "fit_svmeq",
    "selected_sets",
    "SVMEquivalence",
    "solve_p_svm",
    "solve_p_svm_relaxed",
    "solve_v_svm",
    "solve_vector_svm",
    "local_optimality",
    "svm_neighbors",
    "enumerate_local_optima",
    "LocalOptimality",
    "SVMSolution",
    "OPTIMAL",
    "INFEASIBLE",
    "INACCURATE",
    "NORMS",
    "solve_linf",
    "solve_linf_constraints",
    "solve_spec",
    "solve_spec_constraints",
    "margin_ratio",
    "margin_ratios",
    "MARGIN_NORMS",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'attnsvm.svm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
