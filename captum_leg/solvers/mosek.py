"""MOSEK (commercial, needs a licence) through cvxpy on the sparse scaled LP.

Only usable with the ``mosek`` package *and* a valid licence; otherwise
:meth:`MosekSolver.unavailable_reason` says why and ``solve`` raises
:class:`~captum_leg.solvers.SolverError` naming the backends that do work.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, Optional

from captum_leg.solvers._cvxpy import CvxpySolver
from captum_leg.solvers.contract import Capabilities

#: the MOSEK options cvxpy accepts (``mosek_params`` holds MOSEK's own parameters)
MOSEK_OPTIONS = frozenset({"mosek_params", "eps", "bfs", "save_file", "accept_unknown"})


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
    """MOSEK via cvxpy.

    Options: the common ones, and cvxpy's MOSEK options ``mosek_params`` (MOSEK's own
    parameters by name), ``eps``, ``bfs``, ``save_file``, ``accept_unknown``.
    """

    name = "mosek"
    cvxpy_solver = "MOSEK"
    # not measured here: auto picks it only after HiGHS and Clarabel
    capabilities = Capabilities(devices=("cpu",), preferred_cells=None, priority=10)

    def probe(self) -> Optional[str]:
        reason = mosek_licence_problem()
        return reason if reason is not None else self._cvxpy_reason()

    def engine_options(self) -> FrozenSet[str]:
        return MOSEK_OPTIONS

    def time_limit_options(self, seconds: float) -> Dict[str, Any]:
        return {"mosek_params": {"MSK_DPAR_OPTIMIZER_MAX_TIME": float(seconds)}}
