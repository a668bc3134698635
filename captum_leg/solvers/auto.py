"""The ``auto`` backend: picks a backend by device and problem size.

Rule (measured with ``benchmarks/solvers.py`` on the shared 2-core CPU machine, seconds
per map, realistic instances, lam in {0.1, 0.3}; other jobs were running, so absolute
numbers are noisy, the ordering was stable):

* CPU, ``p < 2000`` cells (grids up to ~44 x 44) -> ``highs`` (dual LP, interior point +
  crossover): 0.13 s at 28 x 28 (0.09 s in batches of 16) vs Clarabel 0.16 s; exact
  vertex solutions.
* CPU, larger -> ``clarabel`` when cvxpy/Clarabel are installed: 0.44 s at 56 x 56
  (HiGHS 0.64), 3.7 s at 112 x 112 (HiGHS 8.7), ~45 s and ~1 GB at 224 x 224; else
  ``highs``.
* The torch ``admm`` is never chosen on CPU: thousands of iterations per map (1.2 s per
  map at 28 x 28, 3.2 s at 56 x 56), and at 112 x 112 some sparse maps do not reach the
  1e-4 certified gap within 20 000 iterations.
* moments on another device (CUDA) -> ``admm`` on that device for the whole batch (no
  host round trip, all maps at once), with ``accept_inexact=True``; maps that do not
  reach the certified gap are re-solved on the CPU by the CPU rule above and merged,
  so every returned map is optimal to the backend's tolerance.

Options are passed through unchanged to the chosen backend, so backend-specific options
belong with an explicit ``solver=`` (``time_limit`` and ``verbose`` work everywhere).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from captum_leg.solvers.base import (
    TVProblem,
    TVSolution,
    TVSolver,
    available_solvers,
    finish_solution,
    get_solver,
    register_solver,
)

_SMALL_P = 2000


def cpu_choice(p: int) -> str:
    """The CPU backend ``auto`` uses for ``p`` cells."""
    avail = available_solvers()
    if p >= _SMALL_P and "clarabel" in avail:
        return "clarabel"
    if "highs" in avail:
        return "highs"
    return "clarabel" if "clarabel" in avail else "admm"


class AutoSolver(TVSolver):
    """Dispatches to another backend (see the module docstring for the rule)."""

    name = "auto"

    def choose(self, problem: TVProblem) -> str:
        """Name of the (first) backend ``auto`` uses for ``problem``."""
        if problem.moments.device.type != "cpu":
            return "admm"
        return cpu_choice(problem.p)

    def solve(self, problem: TVProblem, **options: Any) -> TVSolution:
        name = self.choose(problem)
        if name != "admm":
            return get_solver(name).solve(problem, **options)
        t0 = time.perf_counter()
        first = get_solver("admm").solve(problem, **{"accept_inexact": True, **options})
        bad = [i for i, s in enumerate(first.status) if s == "inexact"]
        if not bad or options.get("accept_inexact", False):
            return first
        # Re-solve the stragglers exactly on the CPU (LP options only: time_limit/verbose).
        lp_opts = {k: v for k, v in options.items() if k in ("time_limit", "verbose")}
        sub = TVProblem(
            problem.moments[bad].cpu(), problem.grid_shape,
            problem.noise_levels[bad], problem.lams[bad],
        )
        fallback = cpu_choice(problem.p)
        second = get_solver(fallback).solve(sub, **lp_opts)
        maps = first.maps.clone()
        maps[bad] = second.maps.to(maps)
        status, iters, gap = list(first.status), list(first.iterations), first.rel_gap.clone()
        for j, i in enumerate(bad):
            status[i] = f"{second.status[j]} ({fallback} fallback)"
            iters[i] = second.iterations[j]
            gap[i] = second.rel_gap[j]
        # rebuild objective/violation from the merged maps (beta = 1: maps are unscaled)
        ones = torch.ones(problem.batch_size, dtype=torch.float64, device=maps.device)
        return finish_solution(
            problem, maps.to(torch.float64), ones, f"admm+{fallback}", status, iters,
            time.perf_counter() - t0, gap, {"fallback": fallback, "refined": bad},
        )


register_solver("auto", AutoSolver)
