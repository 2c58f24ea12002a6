"""Rotary instances (SPEC.md "Rotary instances") and what ``attnsvm solve`` reports for them.

A rotary instance adds ``freqs`` (F,) angular frequencies, ``pos`` (n, T) int key positions
and ``qpos`` (n,) int query positions to an instance with queries ``Z``; the score of key ``t``
of sequence ``i`` is ``sum_f Re(exp(1j freqs[f] (qpos[i] - pos[i, t])) X[i, t] @ M[f] @ Z[i])``
and the Att-SVM is the lifted one of :mod:`attnsvm.svm.rotary`.

Examples
--------
>>> import numpy as np
>>> from attnsvm.instance import random_instance, Instance
>>> base = random_instance(4, 5, 6, seed=0)
>>> inst = Instance(X=base.X, Z=base.Z, Y=base.Y, v=base.v, freqs=np.array([1.0, 0.1]),
...                 pos=np.tile(np.arange(5), (4, 1)), qpos=np.full(4, 5))
>>> rep = rotary_solve_report(inst, "fro")
>>> rep.status, rep.to_dict()["rotary"]
('optimal', True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .exceptions import InvalidInputError
from .instance import Instance, check_rotary_fields
from .svm.rotary import (
    RotaryConstraintSet,
    RotarySolution,
    lifted_norm,
    rotary_constraints,
    solve_lifted,
)

__all__ = ["check_rotary_fields", "rotary_problem", "RotaryReport", "rotary_solve_report"]

#: rows whose value is within this (relative) of 1 count as SVM neighbours
SUPPORT_TOL = 1e-6


def rotary_problem(inst: Instance, alpha: np.ndarray) -> RotaryConstraintSet:
    """The lifted Att-SVM rows of a rotary instance for token choice ``alpha``."""
    assert inst.Z is not None and inst.freqs is not None
    assert inst.pos is not None and inst.qpos is not None
    return rotary_constraints(inst.X, inst.Z, inst.pos, inst.qpos, inst.freqs, alpha)


def _grid(values: np.ndarray, index: np.ndarray, n: int, T: int) -> np.ndarray:
    out = np.zeros((n, T))
    out[index[:, 0], index[:, 1]] = values
    return out


def certificate_residual(problem: RotaryConstraintSet, c: np.ndarray) -> float:
    """``||sum_k c_k g_k|| / sum_k |c_k| ||g_k||`` (0 for an exact Farkas certificate)."""
    G, G0 = problem.combine(c)
    norms = np.sqrt(np.sum(np.abs(problem.A) ** 2, axis=(1, 2))) * np.linalg.norm(
        problem.Zc, axis=1)
    scale = float(np.sum(np.abs(c) * norms))
    resid = lifted_norm(G, G0)
    if resid == 0.0:
        return 0.0 if np.any(c != 0) else math.inf
    return resid / scale if scale > 0 else math.inf


@dataclass
class RotaryReport:
    """A solved (or failed) lifted Att-SVM of a rotary instance, as ``attnsvm solve`` shows it.

    Same interface as :class:`attnsvm.report_solve.SolveReport` (``status``, ``reason``,
    ``verified``, :meth:`to_dict`, :meth:`arrays`, :meth:`text`).
    """

    solution: RotarySolution
    problem: RotaryConstraintSet
    status: str
    reason: str | None
    alpha: np.ndarray
    alpha_source: str
    locally_optimal: bool | None
    tol: float
    seconds: float
    shape: tuple[int, int]

    @property
    def verified(self) -> bool:
        return self.status in ("optimal", "infeasible")

    def _support(self) -> list[list[int]]:
        sol = self.solution
        if sol.M is None:
            return []
        v = self.problem.values(sol.M, sol.W0)
        return self.problem.index[np.abs(v - 1.0) <= SUPPORT_TOL].tolist()

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``attnsvm solve --json`` for a rotary instance."""
        sol = self.solution
        feas = sol.M is not None
        info = sol.info
        return {
            "status": self.status, "solver_status": sol.status, "norm": sol.norm,
            "rotary": True, "F": int(self.problem.F),
            "objective": float(sol.objective) if feas else None,
            "margin": info.get("margin") if feas else None,
            "alpha": [int(a) for a in self.alpha], "alpha_source": self.alpha_source,
            "support": self._support(), "n_constraints": int(self.problem.m),
            "certified_gap": info.get("certified_gap") if feas else None,
            "lower_bound": info.get("lower_bound") if feas else None,
            "kkt": info.get("kkt") if feas else None,
            "ranks": info.get("ranks"),
            "certificate_residual": (certificate_residual(self.problem, sol.certificate)
                                     if sol.certificate is not None else None),
            "solver": info.get("solver"), "verified": self.verified, "reason": self.reason,
            "tol": self.tol, "locally_optimal": self.locally_optimal, "seconds": self.seconds,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """``M`` (F, d, d) complex128, ``alpha``, ``dual`` (n, T); or ``certificate`` (n, T)
        and ``alpha``; empty unless verified."""
        sol, n, T = self.solution, *self.shape
        if self.status == "optimal" and sol.M is not None:
            return {"M": np.asarray(sol.M, dtype=np.complex128), "alpha": self.alpha,
                    "dual": _grid(sol.dual, self.problem.index, n, T)}
        if self.status == "infeasible" and sol.certificate is not None:
            return {"certificate": _grid(sol.certificate, self.problem.index, n, T),
                    "alpha": self.alpha}
        return {}

    def text(self) -> str:
        """A short human summary."""
        sol = self.solution
        if self.status == "optimal":
            head = (f"optimal (lifted, {self.problem.F} frequencies): ||Theta||_{sol.norm} = "
                    f"{sol.objective:.10g}, margin {sol.info['margin']:.6g}, certified gap "
                    f"{sol.info['certified_gap']:.1e}, {len(self._support())} support "
                    f"constraints of {self.problem.m}, {self.seconds:.3g} s")
        elif self.status == "infeasible":
            head = f"infeasible: no lifted Theta separates the chosen tokens, {self.seconds:.3g} s"
        else:
            head = f"inaccurate: {self.reason}; {self.seconds:.3g} s"
        return head + "\nalpha: " + " ".join(str(int(a)) for a in self.alpha[:30])


def rotary_solve_report(inst: Instance, norm: str = "fro", *, tol: float = 1e-6
                        ) -> RotaryReport:
    """Solve a rotary instance's lifted Att-SVM in ``norm`` and verify it.

    ``optimal`` needs margins to 1e-9 and a certified relative gap <= ``tol`` (Frobenius:
    ``min(tol, 1e-9)``); ``infeasible`` a Farkas certificate cancelling to ``tol``.
    ``locally_optimal`` (with ``Y`` and ``v``): every SVM neighbour of the lifted Frobenius
    solution (rows with value 1) has a lower token score than the selected token.
    """
    if norm not in ("fro", "nuc"):
        raise InvalidInputError(
            f"A rotary instance is solved in norm 'fro' or 'nuc'. Got '{norm}' instead.")
    t0 = time.perf_counter()
    alpha_source = "given" if inst.alpha is not None else "optimal"
    alpha = inst.token_choice()
    problem = rotary_problem(inst, alpha)
    sol = solve_lifted(problem, norm, tol=min(tol, 1e-9) if norm == "fro" else tol)
    status, reason = sol.status, None
    if status == "infeasible":
        assert sol.certificate is not None
        res = certificate_residual(problem, sol.certificate)
        if not res <= tol:
            status, reason = "inaccurate", f"the certificate does not cancel (residual {res:.1e})"
    elif status != "optimal":
        reason = (f"the lifted {norm} answer fails its own check (certified gap "
                  f"{sol.info.get('certified_gap', math.nan):.1e}, primal residual "
                  f"{sol.info.get('kkt', {}).get('primal', math.nan):.1e})")
    locally_optimal: bool | None = None
    if inst.has_head and status == "infeasible":
        locally_optimal = False
    elif inst.has_head and status == "optimal":
        fro = sol if norm == "fro" else solve_lifted(problem, "fro")
        if fro.status == "optimal" and fro.M is not None:
            v = problem.values(fro.M, fro.W0)
            gamma = inst.token_scores()
            ii, tt = problem.index[np.abs(v - 1.0) <= SUPPORT_TOL].T
            locally_optimal = bool(np.all(gamma[ii, alpha[ii]] > gamma[ii, tt]))
    return RotaryReport(solution=sol, problem=problem, status=status, reason=reason,
                        alpha=alpha, alpha_source=alpha_source, locally_optimal=locally_optimal,
                        tol=tol, seconds=time.perf_counter() - t0, shape=(inst.n, inst.T))
