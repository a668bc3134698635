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
from typing import Any, Dict, FrozenSet, NamedTuple, Optional

import numpy as np

from captum_leg.grid import GridShape, get_grid
from captum_leg.solvers.options import Deadline, SolveOptions
from captum_leg.solvers.per_map import MapAnswer, PerMapSolver
from captum_leg.solvers.problem import SolverError


class CvxpyModel(NamedTuple):
    """The parametrised scaled LP of one grid shape and the handles the backends read."""

    problem: Any  # cvxpy.Problem
    h: Any  # Variable (p,)
    b: Any  # Parameter (M,)
    lam: Any  # Parameter ()
    eq: Any  # constraint e == D h
    upper: Any  # constraint  resid <= lam
    lower: Any  # constraint -resid <= lam


def _cvxpy() -> Any:
    """cvxpy, imported on first use (optional; typed ``Any``: its names are re-exported
    implicitly, which a type checker does not follow)."""
    import cvxpy

    return cvxpy


@functools.lru_cache(maxsize=4)
def build_model(shape: GridShape) -> CvxpyModel:
    """The parametrised scaled LP for one grid shape (compiled once, re-solved per map)."""
    cp = _cvxpy()

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
    return CvxpyModel(cp.Problem(cp.Minimize(cp.norm1(e)), cons), h, b, lam, eq, upper, lower)


class CvxpySolver(PerMapSolver):
    """Base of backends reached through cvxpy; subclasses set ``cvxpy_solver``.

    Options besides the common ones are the cvxpy solver's own (see
    :meth:`engine_options`), passed to it unchanged.
    """

    cvxpy_solver: str = ""

    def _cvxpy_reason(self) -> Optional[str]:
        try:
            cp = _cvxpy()
        except ImportError as exc:
            return f"cvxpy is not installed ({exc}); pip install 'captum-leg[cvxpy]'"
        if self.cvxpy_solver not in cp.installed_solvers():
            return f"cvxpy does not find the {self.cvxpy_solver} solver"
        return None

    def probe(self) -> Optional[str]:
        return self._cvxpy_reason()

    def engine_options(self) -> FrozenSet[str]:
        """The cvxpy solver's option names (forwarded unchanged)."""
        return frozenset()

    def time_limit_options(self, seconds: float) -> Dict[str, Any]:
        """The cvxpy solver's own option for a time limit of ``seconds``."""
        return {}

    def apply(self, shape: GridShape, b: np.ndarray, lam: float, options: Dict[str, Any]) -> CvxpyModel:
        model = build_model(shape)
        model.b.value, model.lam.value = b, lam
        return model

    def solve_map(
        self, data: CvxpyModel, deadline: Deadline, opts: SolveOptions, options: Dict[str, Any]
    ) -> Optional[CvxpyModel]:
        cp = _cvxpy()

        run_opts = dict(options)
        remaining = deadline.remaining()
        if remaining is not None:
            for key, value in self.time_limit_options(remaining).items():
                old = run_opts.get(key)
                run_opts[key] = {**old, **value} if isinstance(old, dict) else value
        t0 = time.perf_counter()
        try:
            data.problem.solve(solver=self.cvxpy_solver, verbose=opts.verbose, **run_opts)
        except cp.error.SolverError as exc:
            raise SolverError(str(exc)) from exc
        status = data.problem.status
        if status in (cp.USER_LIMIT, cp.OPTIMAL_INACCURATE) and deadline.expired():
            return None
        if status != cp.OPTIMAL or data.h.value is None:
            raise SolverError(f"status {status!r} after {time.perf_counter() - t0:.1f} s")
        return data

    def invert(self, solution: CvxpyModel, data: CvxpyModel) -> MapAnswer:
        w = np.asarray(solution.upper.dual_value) - np.asarray(solution.lower.dual_value)
        z = -(np.asarray(solution.eq.dual_value) + w)
        stats = solution.problem.solver_stats
        n_it = stats.num_iters if stats is not None else None
        return MapAnswer(h=np.asarray(solution.h.value), z=z, w=w, iterations=int(n_it or 0))
