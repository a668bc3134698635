"""``auto``: the chooser that picks a LEG-TV backend for a problem (not a backend).

Rule (measured with ``benchmarks/solvers.py``; tables in ``docs/method.md``, "Solvers"):

* moments on another device than the CPU (CUDA) -> ``torch`` on that device: all maps
  of the batch at once, no host round trip.
* CPU with one torch thread (``torch.get_num_threads() == 1``) -> ``torch``: fastest at
  every grid measured, single-threaded (grid 28: ~0.06 s per map in batches of 16 vs
  HiGHS ~0.27 s; grid 112: ~1.6 s vs Clarabel ~4 s; grid 224: ~9 s vs Clarabel ~45 s).
* CPU with several torch threads -> ``highs`` below 2000 cells, ``clarabel`` above (when
  cvxpy is installed; else ``highs``). The torch backend's kernels are small, and each
  multi-threaded one (BLAS, large elementwise) waits for all its threads: on the shared
  2-core machine, under load, it ran 10-70x slower with 2 threads than with 1, while the
  serial HiGHS/Clarabel are unaffected. ``auto`` reads the thread count, never sets it:
  a program that wants the fast CPU path calls ``torch.set_num_threads(1)`` itself (or
  passes ``solver="torch"``).

Options are passed unchanged to the chosen backend, so backend-specific options belong
with an explicit ``solver=``; the common ones (``tol``, ``time_limit``,
``accept_inexact``, ``verbose``) work everywhere.
"""

from __future__ import annotations

import torch

from captum_leg.solvers.base import SolverChoice, TVProblem, available_solvers, register_solver

#: below this many cells HiGHS beat Clarabel on CPU (0.08 vs 0.16 s per map at 28 x 28)
SMALL_P = 2000


def choose_backend(problem: TVProblem) -> str:
    """The backend name ``auto`` uses for ``problem`` (see the module docstring)."""
    avail = available_solvers()
    if problem.moments.device.type != "cpu" or torch.get_num_threads() == 1:
        return "torch"
    if problem.p >= SMALL_P and "clarabel" in avail:
        return "clarabel"
    return "highs" if "highs" in avail else "torch"


register_solver("auto", lambda: SolverChoice("auto", choose_backend))
