"""Shared cvxpy model of the sparse scaled LEG-TV LP (used by ``clarabel`` and ``mosek``).

One parametrised model per grid shape::

    minimise ||e||_1   s.t.   e == D h,   sigma == 1^T h,
                              e + c sigma / p - b~ <= lam,   -(e + c sigma / p - b~) <= lam

with ``b~`` and ``lam`` as cvxpy Parameters, so a batch re-solves the same compiled
problem with new data. The constraint is split into two sides so that their multipliers
``mu+, mu-`` give the dual ``w = mu+ - mu-``; with ``nu`` the multiplier of ``e == D h``,
stationarity in ``e`` gives ``z = -(nu + w)`` (see :mod:`captum_leg.solvers.operators`
for the sign convention), which the certificate repairs to exact feasibility.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from captum_leg.grid import GridShape, get_grid
from captum_leg.solvers.base import (
    Deadline,
    ScaledProblem,
    ScaledResult,
    SolveOptions,
    SolverError,
    TVSolver,
    certify_lp_result,
)


@functools.lru_cache(maxsize=4)
def build_model(shape: GridShape) -> Tuple[Any, ...]:
    """The parametrised scaled LP for one grid shape.

    Returns:
        ``(problem, h, b_param, lam_param, eq_constraint, upper, lower)``.
    """
    import cvxpy as cp

    grid = get_grid(shape)
    D = grid.diff_sparse().astype(np.float64)
    M, p = D.shape
    c = grid.c_numpy() / p
    h = cp.Variable(p)
    sigma = cp.Variable()
    e = cp.Variable(M)
    b = cp.Parameter(M)
    lam = cp.Parameter(nonneg=True)
    eq = e == D @ h
    resid = e + c * sigma - b
    upper = resid <= lam
    lower = -resid <= lam
    cons = [eq, sigma == cp.sum(h), upper, lower]
    return cp.Problem(cp.Minimize(cp.norm1(e)), cons), h, b, lam, eq, upper, lower


class CvxpySolver(TVSolver):
    """Base of backends reached through cvxpy; subclasses set ``cvxpy_solver``.

    Options besides the common ones are passed to the cvxpy solver unchanged (e.g.
    Clarabel's ``tol_gap_rel``).
    """

    cvxpy_solver: str = ""

    def _cvxpy_reason(self) -> Optional[str]:
        try:
            import cvxpy as cp
        except ImportError as exc:
            return f"cvxpy is not installed ({exc}); pip install 'captum-leg[cvxpy]'"
        if self.cvxpy_solver not in cp.installed_solvers():
            return f"cvxpy does not find the {self.cvxpy_solver} solver"
        return None

    def probe(self) -> Optional[str]:
        return self._cvxpy_reason()

    def time_limit_options(self, seconds: float) -> Dict[str, Any]:
        """The cvxpy solver's own option for a time limit of ``seconds``."""
        return {}

    def solve_scaled(
        self, scaled: ScaledProblem, opts: SolveOptions, deadline: Deadline, **extra: Any
    ) -> ScaledResult:
        import cvxpy as cp

        grid = scaled.grid
        prob, h, b, lam, eq, upper, lower = build_model(grid.shape)
        b_np = scaled.b.detach().to("cpu", torch.float64).numpy()
        lam_np = scaled.lams.detach().to("cpu", torch.float64).numpy()
        B = b_np.shape[0]
        out_h = np.zeros((B, grid.p))
        out_z = np.zeros((B, grid.n_edges))
        out_w = np.zeros((B, grid.n_edges))
        iters: List[int] = [0] * B
        solved = np.zeros(B, dtype=bool)
        why = ""
        for i in range(B):
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0:
                why = f"time limit {opts.time_limit:g} s reached"
                break
            run_opts = dict(extra)
            if remaining is not None:
                for key, value in self.time_limit_options(remaining).items():
                    old = run_opts.get(key)
                    run_opts[key] = {**old, **value} if isinstance(old, dict) else value
            b.value, lam.value = b_np[i], float(lam_np[i])
            t0 = time.perf_counter()
            try:
                prob.solve(solver=self.cvxpy_solver, verbose=opts.verbose, **run_opts)
            except cp.error.SolverError as exc:
                raise SolverError(f"LEG-TV backend {self.name!r} failed on map {i}: {exc}") from exc
            if prob.status in (cp.USER_LIMIT, cp.OPTIMAL_INACCURATE) and deadline.expired():
                why = f"time limit {opts.time_limit:g} s reached"
                break
            if prob.status != cp.OPTIMAL or h.value is None:
                raise SolverError(
                    f"LEG-TV backend {self.name!r} failed on map {i}: status {prob.status!r} "
                    f"after {time.perf_counter() - t0:.1f} s"
                )
            out_h[i] = h.value
            w = np.asarray(upper.dual_value) - np.asarray(lower.dual_value)
            out_w[i] = w
            out_z[i] = -(np.asarray(eq.dual_value) + w)
            n_it = prob.solver_stats.num_iters if prob.solver_stats is not None else None
            iters[i] = int(n_it or 0)
            solved[i] = True
        return certify_lp_result(self.name, scaled, out_h, out_z, out_w, solved, iters, opts, {}, why)
