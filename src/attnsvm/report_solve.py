"""Solve an instance's Att-SVM and report only what verifies.

:func:`solve_report` is what ``attnsvm solve`` runs: it chooses the tokens (``alpha`` of the
instance, else the optimal tokens from ``Y`` and ``v``), solves in the requested norm, checks
the answer against its own optimality conditions, tests local optimality, and returns a
:class:`SolveReport` that renders the JSON object, the human summary and the arrays of the
result file.

An answer is reported ``"optimal"`` only when every KKT residual of the solution (primal
feasibility, dual sign, stationarity, complementarity, duality gap) is finite and at most
``tol``, and ``"infeasible"`` only with a certificate that cancels to ``tol``; anything else
is ``"inaccurate"``.

Examples
--------
>>> from attnsvm import random_instance
>>> rep = solve_report(random_instance(4, 5, 6, seed=0), "fro")
>>> rep.status, rep.alpha_source, rep.locally_optimal
('optimal', 'optimal', True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .instance import Instance
from .svm import local_optimality, solve
from .svm.solution import INACCURATE, INFEASIBLE, OPTIMAL, SVMSolution

__all__ = ["SolveReport", "solve_report", "verify_solution", "DEFAULT_TOL"]

#: Default tolerance on the KKT residuals (relative) for an answer to count as verified.
DEFAULT_TOL = 1e-6


def verify_solution(sol: SVMSolution, tol: float = DEFAULT_TOL) -> tuple[str, str | None]:
    """The status an answer has earned, and why it failed when it did.

    Parameters
    ----------
    sol : SVMSolution
    tol : float
        Largest accepted KKT residual (optimal) or certificate residual (infeasible).

    Returns
    -------
    status : {"optimal", "infeasible", "inaccurate"}
    reason : str or None
        ``None`` when verified; else one sentence naming the failed check.
    """
    if sol.status == INFEASIBLE:
        with np.errstate(all="ignore"):
            cres = sol.certificate_residual()
            ok = sol.is_certified_infeasible(tol)
        if ok and math.isfinite(cres):
            return INFEASIBLE, None
        return INACCURATE, (f"the infeasibility certificate does not verify "
                            f"(residual {cres:.1e}, tolerance {tol:.0e})")
    if sol.W is None:
        return INACCURATE, f"the solver returned no W (status '{sol.status}')"
    if not np.all(np.isfinite(sol.W)):
        return INACCURATE, "W is not finite"
    with np.errstate(all="ignore"):
        objective = sol.objective
    # W = 0 is the answer only when it meets every row (no positive right-hand side: the
    # Graph-SVM whose edges all lie inside SCCs)
    zero_ok = objective == 0 and not np.any(sol.b[sol.n_eq:] > 0) and not np.any(
        sol.b[:sol.n_eq] != 0)
    if not math.isfinite(objective) or (objective <= 0 and not zero_ok):
        return INACCURATE, f"||W|| = {objective:g}, but a separating W has a positive norm"
    res = sol.kkt_residuals()
    bad = {k: v for k, v in res.items() if not (math.isfinite(v) and v <= tol)}
    if bad:
        worst = max(bad, key=lambda k: bad[k] if math.isfinite(bad[k]) else math.inf)
        return INACCURATE, (f"{worst.replace('_', ' ')} {bad[worst]:.1e} exceeds the "
                            f"tolerance {tol:.0e}")
    if sol.status != OPTIMAL or not sol.is_optimal(tol):
        return INACCURATE, f"the solver reports status '{sol.status}'"
    return OPTIMAL, None


@dataclass
class SolveReport:
    """A solved (or failed) Att-SVM with its verification.

    Attributes
    ----------
    solution : SVMSolution
    status : {"optimal", "infeasible", "inaccurate"}
        The verified status (the solver's own is ``solution.status``).
    reason : str or None
        Why the answer is ``"inaccurate"``.
    alpha : ndarray of int, shape (n,)
    alpha_source : {"given", "optimal"}
        ``alpha`` from the instance, or the optimal tokens computed from ``Y`` and ``v``.
    locally_optimal : bool or None
        Whether ``alpha`` is a locally optimal token choice (None without ``Y`` and ``v``,
        or when the Frobenius solution it needs does not verify).
    tol : float
    seconds : float
        Wall time of the whole report (solve, verification, local optimality).
    """

    solution: SVMSolution
    status: str
    reason: str | None
    alpha: np.ndarray
    alpha_source: str
    locally_optimal: bool | None
    tol: float
    seconds: float

    @property
    def verified(self) -> bool:
        """True for a verified optimum or a verified infeasibility certificate."""
        return self.status in (OPTIMAL, INFEASIBLE)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``attnsvm solve --json`` (SPEC.md keys and diagnostics)."""
        sol = self.solution
        with np.errstate(all="ignore"):
            out = sol.summary()
            has_w = sol.W is not None
            out["rank"] = sol.rank if has_w and self.status == OPTIMAL else None
        out["status"] = self.status
        out["solver_status"] = sol.status
        out["verified"] = self.verified
        out["reason"] = self.reason
        out["tol"] = self.tol
        out["is_optimal"] = self.status == OPTIMAL
        out["alpha"] = [int(a) for a in self.alpha]
        out["alpha_source"] = self.alpha_source
        out["locally_optimal"] = self.locally_optimal
        out["seconds"] = self.seconds
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """The result file's arrays: ``W``, ``alpha``, ``dual`` (n, T), or ``certificate``
        (n, T) and ``alpha`` for an infeasible problem; empty unless verified."""
        sol = self.solution
        if self.status == OPTIMAL and sol.W is not None:
            return {"W": sol.W, "alpha": self.alpha, "dual": sol.dual_matrix()}
        if self.status == INFEASIBLE:
            return {"certificate": sol.certificate_matrix(), "alpha": self.alpha}
        return {}

    def text(self, max_tokens: int = 30) -> str:
        """A short human summary: status, norm, margin, support, local optimality, tokens."""
        sol = self.solution
        lines = []
        if self.status == OPTIMAL:
            lo = {True: "yes", False: "no", None: "not tested (no Y and v)"}[
                self.locally_optimal]
            # local optimality is TF-SVM's Frobenius notion, a property of the token choice:
            # for another norm it gets a line of its own that says so
            local = f"locally optimal: {lo}, " if sol.norm == "fro" else ""
            lines.append(
                f"optimal: ||W||_{sol.norm} = {sol.objective:.10g}, margin {sol.margin:.6g}, "
                f"{len(sol.support())} support constraints of {sol.constraints.m}, "
                f"rank {sol.rank}, {local}{self.seconds:.3g} s")
            if sol.norm != "fro":
                lines.append(f"token choice locally optimal (TF-SVM's test on the Frobenius "
                             f"Att-SVM of these tokens): {lo}")
        elif self.status == INFEASIBLE:
            lines.append(
                f"infeasible: no W separates the chosen tokens (certificate residual "
                f"{sol.certificate_residual():.1e}), {self.seconds:.3g} s")
        else:
            lines.append(f"inaccurate: the {sol.norm} solution fails its own check: "
                         f"{self.reason}; {self.seconds:.3g} s")
        source = ("given in the file" if self.alpha_source == "given"
                  else "the optimal tokens from Y and v")
        shown = " ".join(str(int(a)) for a in self.alpha[:max_tokens])
        more = (f" ... ({len(self.alpha)} sequences; --json or --out for all)"
                if len(self.alpha) > max_tokens else "")
        lines.append(f"alpha ({source}): {shown}{more}")
        return "\n".join(lines)


def solve_report(instance: Instance, norm: str = "fro", *, tol: float = DEFAULT_TOL,
                 **options: Any) -> SolveReport:
    """Solve ``instance``'s Att-SVM in ``norm`` and verify the answer.

    Parameters
    ----------
    instance : Instance
        Needs ``alpha``, or ``Y`` and ``v`` (then the optimal tokens are used).
    norm : {"fro", "nuc"}
    tol : float
        Largest accepted KKT (or certificate) residual.
    **options
        Passed to :func:`attnsvm.svm.solve`.

    Returns
    -------
    SolveReport

    Raises
    ------
    InvalidInputError
        Neither ``alpha`` nor ``Y`` and ``v``; tied optimal tokens.
    """
    t0 = time.perf_counter()
    alpha_source = "given" if instance.alpha is not None else "optimal"
    alpha = instance.token_choice()
    with np.errstate(all="ignore"):
        sol = solve(instance, norm, alpha=alpha, **options)
    status, reason = verify_solution(sol, tol)
    locally_optimal: bool | None = None
    if instance.has_head:
        if status == INFEASIBLE:
            locally_optimal = False
        elif status == OPTIMAL:
            # local optimality is read from the support of the Frobenius solution (TF-SVM)
            fro = sol if norm == "fro" else sol.info.get("frobenius_solution")
            if isinstance(fro, SVMSolution):
                fro.alpha, fro.shape = sol.alpha, sol.shape
            else:
                fro = solve(instance, "fro", alpha=alpha)
            if verify_solution(fro, tol)[0] == OPTIMAL:
                locally_optimal = bool(local_optimality(instance, alpha, fro).locally_optimal)
    return SolveReport(solution=sol, status=status, reason=reason, alpha=alpha,
                       alpha_source=alpha_source, locally_optimal=locally_optimal, tol=tol,
                       seconds=time.perf_counter() - t0)
