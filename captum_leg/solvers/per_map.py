"""Backends that solve the maps one at a time with an external engine (HiGHS, cvxpy).

:class:`PerMapSolver` runs the loop over the maps of a call against its
:class:`~captum_leg.solvers.Deadline`; for each map a subclass supplies three steps, as
in cvxpy's reduction chain:

* :meth:`~PerMapSolver.apply`: the engine's data for one scaled problem;
* :meth:`~PerMapSolver.solve_map`: run the engine with the time left;
* :meth:`~PerMapSolver.invert`: the engine's solution as a primal map and a dual point of
  the scaled LP (:class:`MapAnswer`).

The maps reached before the deadline are returned as answered, the others not; the
driver certifies all of them.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from captum_leg.grid import GridShape
from captum_leg.solvers.certification import ScaledResult
from captum_leg.solvers.contract import TVSolver
from captum_leg.solvers.options import Deadline, SolveOptions
from captum_leg.solvers.problem import ScaledProblem, SolverError


@dataclass(frozen=True)
class MapAnswer:
    """One map's answer in the scaled LP's terms (float64 arrays).

    Attributes:
        h: ``(p,)`` primal map.
        z, w: ``(M,)`` dual point (sign convention of :mod:`captum_leg.solvers.operators`).
        iterations: the engine's iteration count.
    """

    h: np.ndarray
    z: np.ndarray
    w: np.ndarray
    iterations: int


class PerMapSolver(TVSolver):
    """Base of the backends that solve one map at a time (see the module docstring)."""

    @abc.abstractmethod
    def apply(self, shape: GridShape, b: np.ndarray, lam: float, options: Dict[str, Any]) -> Any:
        """The engine's data for one scaled problem.

        Args:
            shape: the grid shape.
            b: ``(M,)`` scaled right-hand side ``b~``; lam: its level.
            options: every declared option (defaults filled) and the forwarded ones.
        """

    @abc.abstractmethod
    def solve_map(
        self, data: Any, deadline: Deadline, opts: SolveOptions, options: Dict[str, Any]
    ) -> Optional[Any]:
        """Run the engine on ``data`` within ``deadline.remaining()`` seconds.

        Returns:
            The engine's solution, or ``None`` when the time limit stopped it.

        Raises:
            SolverError: the engine failed (the loop adds the backend and map).
        """

    @abc.abstractmethod
    def invert(self, solution: Any, data: Any) -> MapAnswer:
        """The engine's ``solution`` of ``data`` as a primal map and a dual point."""

    def run_info(self, options: Dict[str, Any]) -> Dict[str, Any]:
        """Details of the call for ``TVSolution.info`` (default: none)."""
        return {}

    def solve_scaled(
        self, scaled: ScaledProblem, opts: SolveOptions, deadline: Deadline, **options: Any
    ) -> ScaledResult:
        values = self.option_values(options)
        b = scaled.b.detach().to("cpu", torch.float64).numpy()
        lams = scaled.lams.detach().to("cpu", torch.float64).numpy()
        B, M = b.shape
        h, z, w = np.zeros((B, scaled.grid.p)), np.zeros((B, M)), np.zeros((B, M))
        answered = np.zeros(B, dtype=bool)
        iters: List[int] = [0] * B
        why = ""
        for i in range(B):
            if deadline.expired():
                why = deadline.reason()
                break
            data = self.apply(scaled.grid.shape, b[i], float(lams[i]), values)
            try:
                solution = self.solve_map(data, deadline, opts, values)
            except SolverError as exc:
                raise SolverError(f"LEG-TV backend {self.name!r} failed on map {i}: {exc}") from exc
            if solution is None:
                why = deadline.reason()
                break
            answer = self.invert(solution, data)
            h[i], z[i], w[i], iters[i] = answer.h, answer.z, answer.w, answer.iterations
            answered[i] = True
        return ScaledResult(
            h=torch.from_numpy(h), z=torch.from_numpy(z), w=torch.from_numpy(w),
            iterations=iters, answered=torch.from_numpy(answered), why=why,
            info=self.run_info(values),
        )
