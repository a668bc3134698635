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
    """MOSEK via cvxpy. Options: the common ones; others go to MOSEK through cvxpy."""

    name = "mosek"
    cvxpy_solver = "MOSEK"

    def probe(self) -> Optional[str]:
        reason = mosek_licence_problem()
        return reason if reason is not None else self._cvxpy_reason()

    def time_limit_options(self, seconds: float) -> Dict[str, Any]:
        return {"mosek_params": {"MSK_DPAR_OPTIMIZER_MAX_TIME": float(seconds)}}


register_solver("mosek", MosekSolver)
