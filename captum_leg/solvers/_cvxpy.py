"""Shared cvxpy model of the sparse scaled LEG-TV LP (used by ``clarabel`` and ``mosek``).

One parametrised model per grid: ``minimise ||D h||_1 s.t. |D h + c sigma / p - b~| <= lam,
sigma = 1^T h`` with ``b~`` and ``lam`` as cvxpy Parameters, so a batch re-solves the same
compiled problem with new data.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from captum_leg.grid import Grid
from captum_leg.solvers.base import SolverError, TVSolver


def build_model(grid: Grid) -> Tuple[Any, Any, Any, Any]:
    """The parametrised scaled LP.

    Args:
        grid: the grid (its ``D`` and ``c``).

    Returns:
        ``(problem, h, b_param, lam_param)``.
    """
    import cvxpy as cp

    D = grid.diff_sparse().astype(np.float64)
    M, p = D.shape
    c = grid.c_numpy() / p
    h = cp.Variable(p)
    sigma = cp.Variable()
    e = cp.Variable(M)
    b = cp.Parameter(M)
    lam = cp.Parameter(nonneg=True)
    cons = [e == D @ h, sigma == cp.sum(h), cp.abs(e + c * sigma - b) <= lam]
    return cp.Problem(cp.Minimize(cp.norm1(e)), cons), h, b, lam


class CvxpySolver(TVSolver):
    """Base of backends reached through cvxpy; subclasses set ``cvxpy_solver``."""

    cvxpy_solver: str = ""

    def _cvxpy_reason(self) -> Optional[str]:
        try:
            import cvxpy as cp
        except ImportError as exc:
            return f"cvxpy is not installed ({exc}); pip install 'captum-leg[cvxpy]'"
        if self.cvxpy_solver not in cp.installed_solvers():
            return f"cvxpy does not find the {self.cvxpy_solver} solver"
        return None

    def unavailable_reason(self) -> Optional[str]:
        return self._cvxpy_reason()

    def solver_options(self, time_limit: Optional[float]) -> Dict[str, Any]:
        return {}

    def solve_scaled(
        self,
        grid: Grid,
        b_tilde: Tensor,
        lams: Tensor,
        time_limit: Optional[float] = None,
        verbose: bool = False,
        **solver_options: Any,
    ) -> Dict[str, Any]:
        import cvxpy as cp

        prob, h, b, lam = build_model(grid)
        b_np = b_tilde.detach().to("cpu", torch.float64).numpy()
        lam_np = lams.detach().to("cpu", torch.float64).numpy()
        out = np.zeros((b_np.shape[0], grid.p))
        status: List[str] = []
        iters: List[int] = []
        opts = {**self.solver_options(time_limit), **solver_options}
        for i in range(b_np.shape[0]):
            b.value, lam.value = b_np[i], float(lam_np[i])
            t0 = time.perf_counter()
            try:
                prob.solve(solver=self.cvxpy_solver, verbose=verbose, **opts)
            except cp.error.SolverError as exc:
                raise SolverError(f"LEG-TV backend {self.name!r} failed on map {i}: {exc}") from exc
            if prob.status != cp.OPTIMAL or h.value is None:
                raise SolverError(
                    f"LEG-TV backend {self.name!r} failed on map {i}: status {prob.status!r} "
                    f"after {time.perf_counter() - t0:.1f} s"
                )
            out[i] = h.value
            status.append(prob.status)
            n_it = prob.solver_stats.num_iters if prob.solver_stats is not None else None
            iters.append(int(n_it or 0))
        return {"h": torch.from_numpy(out), "status": status, "iterations": iters}
