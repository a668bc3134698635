"""MOSEK (commercial, needs a licence) through cvxpy on the sparse scaled LP.

Only usable with the ``mosek`` package *and* a valid licence; otherwise
:meth:`MosekSolver.unavailable_reason` says why and ``solve`` raises
:class:`~captum_leg.solvers.base.SolverError` naming the backends that do work.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from captum_leg.solvers._cvxpy import CvxpySolver
from captum_leg.solvers.base import register_solver


def mosek_licence_problem() -> Optional[str]:
    """``None`` when MOSEK is importable and a licence can be checked out, else why not."""
    try:
        import mosek
    except ImportError:
        return "the mosek package is not installed"
    try:
        with mosek.Env() as env:
            env.checkoutlicense(mosek.feature.pts)
    except Exception as exc:  # mosek.Error and anything licence-related
        return f"no usable MOSEK licence ({exc})"
    return None


class MosekSolver(CvxpySolver):
    """MOSEK via cvxpy. Options: ``time_limit`` (seconds per map), ``verbose``."""

    name = "mosek"
    cvxpy_solver = "MOSEK"

    def unavailable_reason(self) -> Optional[str]:
        reason = mosek_licence_problem()
        return reason if reason is not None else self._cvxpy_reason()

    def solver_options(self, time_limit: Optional[float]) -> Dict[str, Any]:
        if time_limit is None:
            return {}
        return {"mosek_params": {"MSK_DPAR_OPTIMIZER_MAX_TIME": float(time_limit)}}


register_solver("mosek", MosekSolver)
