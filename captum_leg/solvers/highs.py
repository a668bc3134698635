"""HiGHS backend on the sparse scaled LP (through ``scipy.optimize.linprog``), dual form.

Scaled primal (see :mod:`captum_leg.solvers.problem`), ``A = D + c 1^T / p``, ``t = lam``::

    minimise ||D h||_1   s.t.   |A h - b~| <= t

Its LP dual is ``max b~^T y - t ||y||_1 s.t. A^T y = D^T z, ||z||_inf <= 1``. With
``A^T y = D^T y + 1 (c^T y) / p`` and ``y = y+ - y-`` this is the sparse LP::

    columns  y+ (M, >= 0), y- (M, >= 0), z (M, in [-1, 1]), tau (1, free)
    minimise (t - b~)^T y+ + (t + b~)^T y-
    rows     D^T (y+ - y- - z) + 1 tau / p = 0        (p)
             c^T (y+ - y-) - tau           = 0        (1)

``h`` is minus the multiplier vector of the first ``p`` rows; ``(z, w = -(y+ - y-))`` is the dual
pair the certificate uses (:func:`~captum_leg.solvers.operators.certify`). Why the dual:
it has ``p + 1`` rows instead of the primal's ``2 M + 1`` (``M ~ 2 p`` on images), and
the rank-one term becomes one dense *row* instead of a dense *column* (which fills the
IPM's normal equations). Measured on the loaded 2-core machine, same instances
(s per map): 28 x 28 dual IPM 0.08, primal IPM 0.18; 56 x 56 dual IPM 0.6, primal IPM
1.9, dual simplex 2.6.

Why scipy's HiGHS and not ``highspy``: ``highspy.Highs()`` (1.16) prints its banner to
file descriptor 1 while being constructed, before any option can be set, and avoiding
that would need process-wide file-descriptor redirection. ``scipy.optimize.linprog``
runs the same HiGHS solvers (measured within load noise of ``highspy`` at grids 28 to
112) with all output off unless ``verbose``.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np
import scipy.sparse as sp
from scipy.optimize import OptimizeResult, linprog

from captum_leg.grid import GridShape, get_grid
from captum_leg.solvers.contract import Capabilities
from captum_leg.solvers.options import Deadline, OptionSpec, SolveOptions
from captum_leg.solvers.per_map import MapAnswer, PerMapSolver
from captum_leg.solvers.problem import SolverError

_METHODS = {"ipm": "highs-ipm", "simplex": "highs-ds"}


def _method(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in ("auto", *_METHODS):
        raise ValueError(f"{name} must be 'auto', 'ipm' or 'simplex', got {value!r}")
    return "ipm" if value == "auto" else value


@functools.lru_cache(maxsize=8)
def _dual_lp(shape: GridShape) -> Tuple[sp.csc_matrix, np.ndarray]:
    """The dual LP's constraint matrix and column bounds for one grid shape."""
    grid = get_grid(shape)
    D = grid.diff_sparse().astype(np.float64)
    M, p = D.shape
    Dt = D.T.tocsr()
    c = sp.csr_matrix(grid.c_numpy()[None, :])
    top = sp.hstack([Dt, -Dt, -Dt, sp.csr_matrix(np.full((p, 1), 1.0 / p))])
    bot = sp.hstack([c, -c, sp.csr_matrix((1, M)), sp.csr_matrix([[-1.0]])])
    lower = np.r_[np.zeros(2 * M), -np.ones(M), -np.inf]
    upper = np.r_[np.full(2 * M, np.inf), np.ones(M), np.inf]
    return sp.vstack([top, bot], format="csc"), np.c_[lower, upper]


class _DualLP(NamedTuple):
    """One map's dual LP: the shared matrix and bounds, its own cost vector."""

    A: sp.csc_matrix
    bounds: np.ndarray
    cost: np.ndarray
    method: str
    p: int
    M: int


class HighsSolver(PerMapSolver):
    """HiGHS (interior point + crossover, or dual simplex) on the dual of the scaled LP.

    Options besides ``tol``, ``time_limit``, ``accept_inexact`` and ``verbose``:

    * ``method``: ``"ipm"`` (interior point + crossover, the default; ``"auto"`` is the
      same) or ``"simplex"`` (dual simplex).
    """

    name = "highs"
    options = (OptionSpec("method", "ipm", _method, "'ipm' (or 'auto') or 'simplex'"),)
    # HiGHS beat Clarabel below 2000 cells on the CPU (0.08 vs 0.16 s per map at 28 x 28)
    capabilities = Capabilities(devices=("cpu",), preferred_cells=(0, 2000), priority=30)

    def apply(self, shape: GridShape, b: np.ndarray, lam: float, options: Dict[str, Any]) -> _DualLP:
        A, bounds = _dual_lp(shape)
        M = b.shape[0]
        cost = np.r_[lam - b, lam + b, np.zeros(M + 1)]
        return _DualLP(A, bounds, cost, options["method"], A.shape[0] - 1, M)

    def solve_map(
        self, data: _DualLP, deadline: Deadline, opts: SolveOptions, options: Dict[str, Any]
    ) -> Optional[OptimizeResult]:
        lp_opts: Dict[str, Any] = {"disp": bool(opts.verbose)}
        remaining = deadline.remaining()
        if remaining is not None:
            lp_opts["time_limit"] = float(remaining)
        res = linprog(
            data.cost, A_eq=data.A, b_eq=np.zeros(data.A.shape[0]), bounds=data.bounds,
            method=_METHODS[data.method], options=lp_opts,
        )
        if res.status == 1 and "time" in str(res.message).lower():
            return None
        if res.status != 0 or res.x is None:
            raise SolverError(f"HiGHS ({data.method}): {res.message}")
        return res

    def invert(self, solution: OptimizeResult, data: _DualLP) -> MapAnswer:
        x, M = solution.x, data.M
        h = -solution.eqlin.marginals[: data.p]  # d(objective)/d(rhs) of the dual LP = -h
        return MapAnswer(h=h, z=x[2 * M : 3 * M], w=x[M : 2 * M] - x[:M], iterations=int(solution.nit))

    def run_info(self, options: Dict[str, Any]) -> Dict[str, Any]:
        return {"method": options["method"]}
