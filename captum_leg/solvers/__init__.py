"""LEG-TV linear-program solvers: problem types, the backend contract, registry, backends.

Users call :func:`solve_tv` / :func:`solve_tv_batch` with a backend name: ``"auto"``
(chooses by the backends' declared capabilities), ``"torch"`` (batched restarted PDHG on
the moments' device; ``"admm"`` is an alias), ``"highs"``, ``"clarabel"``, ``"mosek"``.
The registry (:data:`~captum_leg.solvers.registry.BUILTIN_SOLVERS`) imports a backend's
module the first time it is used.

Writing a backend: subclass :class:`TVSolver` (or :class:`PerMapSolver` for an engine
that solves one map at a time), declare its :attr:`~TVSolver.options`
(:class:`OptionSpec`) and :class:`Capabilities`, return primal maps and dual points as a
:class:`ScaledResult`, and :func:`register_solver` it. The driver (:meth:`TVSolver.solve`)
checks the options, certifies every map (:func:`certify_result`) and applies ``tol`` and
``accept_inexact``; ``docs/method.md`` ("Solving the LP") states the contract.

Modules: :mod:`~captum_leg.solvers.problem` (problem and solution types),
:mod:`~captum_leg.solvers.options` (options, validators, deadline),
:mod:`~captum_leg.solvers.contract` (capabilities, :class:`TVSolver` and its driver),
:mod:`~captum_leg.solvers.certification` (the driver's certificate),
:mod:`~captum_leg.solvers.per_map` (per-map engines),
:mod:`~captum_leg.solvers.registry`, :mod:`~captum_leg.solvers.auto`,
:mod:`~captum_leg.solvers.api` (the entry points),
:mod:`~captum_leg.solvers.operators` (structured operators and bounds), and the backends
:mod:`~captum_leg.solvers.pdhg`, :mod:`~captum_leg.solvers.highs`,
:mod:`~captum_leg.solvers.clarabel`, :mod:`~captum_leg.solvers.mosek`.
"""

from captum_leg.solvers.api import make_problem, solve_tv, solve_tv_batch
from captum_leg.solvers.auto import choose_backend, rank_backends
from captum_leg.solvers.certification import CertifiedMaps, ScaledResult, certify_result
from captum_leg.solvers.contract import Capabilities, TVSolver
from captum_leg.solvers.operators import LPOperators, get_operators
from captum_leg.solvers.options import (
    Deadline,
    OptionSpec,
    SolveOptions,
    UnknownOptionError,
    check_options,
    one_of,
    option_values,
    positive_int,
    positive_number,
)
from captum_leg.solvers.per_map import MapAnswer, PerMapSolver
from captum_leg.solvers.problem import (
    ScaledProblem,
    SolverError,
    TVProblem,
    TVSolution,
    evaluate_maps,
)
from captum_leg.solvers.registry import (
    SolverChoice,
    available_backends,
    available_solvers,
    get_solver,
    register_solver,
    registered_solvers,
    resolve_backend,
    unregister_solver,
)

__all__ = [
    # entry points and problem types
    "solve_tv",
    "solve_tv_batch",
    "make_problem",
    "TVProblem",
    "TVSolution",
    "SolverError",
    "evaluate_maps",
    # registry and auto
    "register_solver",
    "unregister_solver",
    "get_solver",
    "registered_solvers",
    "available_solvers",
    "available_backends",
    "resolve_backend",
    "SolverChoice",
    "choose_backend",
    "rank_backends",
    # for backend authors
    "TVSolver",
    "PerMapSolver",
    "MapAnswer",
    "Capabilities",
    "ScaledProblem",
    "ScaledResult",
    "SolveOptions",
    "OptionSpec",
    "UnknownOptionError",
    "check_options",
    "option_values",
    "positive_int",
    "positive_number",
    "one_of",
    "Deadline",
    "certify_result",
    "CertifiedMaps",
    "LPOperators",
    "get_operators",
]
