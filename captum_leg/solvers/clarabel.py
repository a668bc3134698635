"""Clarabel (open-source interior point) through cvxpy on the sparse scaled LP."""

from __future__ import annotations

from typing import Any, Dict

from captum_leg.solvers._cvxpy import CvxpySolver
from captum_leg.solvers.base import register_solver


class ClarabelSolver(CvxpySolver):
    """Clarabel via cvxpy.

    Options: the common ones (``time_limit`` is passed to Clarabel as the time left of
    the call); any other keyword goes to Clarabel (e.g. ``tol_gap_rel``).
    """

    name = "clarabel"
    cvxpy_solver = "CLARABEL"

    def time_limit_options(self, seconds: float) -> Dict[str, Any]:
        return {"time_limit": float(seconds)}


register_solver("clarabel", ClarabelSolver)
