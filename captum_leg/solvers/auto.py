"""``auto``: the chooser that picks a LEG-TV backend for a problem (not a backend).

Rule (measured with ``benchmarks/solvers.py``; tables in ``docs/method.md``, "Solving the
LP"). It depends on the problem only (device, size), so the same call gives the same
maps whatever the thread settings:

* moments on another device than the CPU (CUDA) -> ``torch`` on that device: all maps
  of the batch at once, no host round trip;
* CPU -> ``highs`` below 2000 cells, ``clarabel`` above (when cvxpy is installed; else
  ``highs``): exact (vertex or interior-point) optima, serial C++/Rust code that is not
  slowed down by other processes. The ``torch`` backend is faster on CPU only when torch
  runs single-threaded (grid 112: 1.6 s vs Clarabel's 3.4 s of CPU per map); with two
  threads on a loaded 2-core machine it ran 10-40x slower. Picking it by the thread count
  was tried and dropped: the maps then depended on ``OMP_NUM_THREADS`` (two optimal maps
  of a non-unique LP optimum, both within the tolerance, differ). Programs that run
  torch single-threaded can pass ``solver="torch"``.

Options are passed unchanged to the chosen backend, so backend-specific options belong
with an explicit ``solver=``; the common ones (``tol``, ``time_limit``,
``accept_inexact``, ``verbose``) work everywhere.
"""

from __future__ import annotations

from captum_leg.solvers.base import SolverChoice, TVProblem, available_solvers, register_solver

#: below this many cells HiGHS beat Clarabel on CPU (0.08 vs 0.16 s per map at 28 x 28)
SMALL_P = 2000


def choose_backend(problem: TVProblem) -> str:
    """The backend name ``auto`` uses for ``problem`` (see the module docstring)."""
    avail = available_solvers()
    if problem.moments.device.type != "cpu":
        return "torch"
    if problem.p >= SMALL_P and "clarabel" in avail:
        return "clarabel"
    return "highs" if "highs" in avail else "torch"


register_solver("auto", lambda: SolverChoice("auto", choose_backend))
