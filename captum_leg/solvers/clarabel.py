"""Clarabel (open-source interior point) through cvxpy on the sparse scaled LP."""

from __future__ import annotations

from typing import Any, Dict, Optional

from captum_leg.solvers._cvxpy import CvxpySolver
from captum_leg.solvers.base import register_solver


class ClarabelSolver(CvxpySolver):
    """Clarabel via cvxpy.

    Options:
        time_limit: seconds per map. verbose: solver log. Other keywords go to Clarabel.
    """

    name = "clarabel"
    cvxpy_solver = "CLARABEL"

    def solver_options(self, time_limit: Optional[float]) -> Dict[str, Any]:
        return {} if time_limit is None else {"time_limit": float(time_limit)}


register_solver("clarabel", ClarabelSolver)
