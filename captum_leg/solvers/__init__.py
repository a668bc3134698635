"""LEG-TV linear-program solvers: problem types, the solver contract, registry, backends.

Importing this package registers the backends ``torch`` (batched restarted PDHG on the
moments' device; ``admm`` is an alias), ``highs``, ``clarabel``, ``mosek``, and the
chooser ``auto``.
"""

from captum_leg.solvers.base import (
    ScaledProblem,
    ScaledResult,
    SolveOptions,
    SolverChoice,
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
    resolve_backend,
    solve_tv,
    solve_tv_batch,
)
from captum_leg.solvers import pdhg as _pdhg  # noqa: F401  (registers "torch", "admm")
from captum_leg.solvers import highs as _highs  # noqa: F401
from captum_leg.solvers import clarabel as _clarabel  # noqa: F401
from captum_leg.solvers import mosek as _mosek  # noqa: F401
from captum_leg.solvers import auto as _auto  # noqa: F401
from captum_leg.solvers.auto import choose_backend

__all__ = [
    "ScaledProblem",
    "ScaledResult",
    "SolveOptions",
    "SolverChoice",
    "SolverError",
    "TVProblem",
    "TVSolution",
    "TVSolver",
    "available_solvers",
    "choose_backend",
    "evaluate_maps",
    "get_solver",
    "make_problem",
    "register_solver",
    "registered_solvers",
    "resolve_backend",
    "solve_tv",
    "solve_tv_batch",
]
