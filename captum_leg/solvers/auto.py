"""``auto``: the chooser that picks a LEG-TV backend for a problem.

Rule (measured with ``benchmarks/solvers.py``; see ``docs/method.md``, "Solvers"):

* moments on a non-CPU device (CUDA) -> ``torch`` on that device (no host round trip,
  all maps of the batch at once);
* CPU -> PLACEHOLDER
"""

from __future__ import annotations

from captum_leg.solvers.base import SolverChoice, TVProblem, available_solvers, register_solver

_SMALL_P = 2000


def choose_backend(problem: TVProblem) -> str:
    """The backend name ``auto`` uses for ``problem`` (see the module docstring)."""
    avail = available_solvers()
    if problem.moments.device.type != "cpu":
        return "torch"
    if problem.p >= _SMALL_P and "clarabel" in avail:
        return "clarabel"
    return "highs" if "highs" in avail else "torch"


register_solver("auto", lambda: SolverChoice("auto", choose_backend))
