"""LEG-TV linear-program solvers: problem types, registry and backends.

Importing this package registers the backends ``highs``, ``clarabel``, ``mosek``,
``admm`` (batched torch, alias ``torch``) and ``auto``.
"""

from captum_leg.solvers.base import (
    SolverError,
    TVProblem,
    TVSolution,
    TVSolver,
    available_solvers,
    evaluate_maps,
    get_solver,
    make_problem,
    register_solver,
    registered_solvers,
    solve_tv,
    solve_tv_batch,
)
from captum_leg.solvers import highs as _highs  # noqa: F401  (registers "highs")
from captum_leg.solvers import clarabel as _clarabel  # noqa: F401
from captum_leg.solvers import mosek as _mosek  # noqa: F401
from captum_leg.solvers import admm as _admm  # noqa: F401
from captum_leg.solvers import auto as _auto  # noqa: F401

__all__ = [
    "SolverError",
    "TVProblem",
    "TVSolution",
    "TVSolver",
    "available_solvers",
    "evaluate_maps",
    "get_solver",
    "make_problem",
    "register_solver",
    "registered_solvers",
    "solve_tv",
    "solve_tv_batch",
]
