"""The LEG-TV problem and its solution: what goes into a solve and what comes out.

The problem for one map (``docs/method.md``, LEG-TV), on a grid of any number of axes
``(k_1, ..., k_d)`` with ``p`` cells, ``D`` the first differences along every axis
(anisotropic TV)::

    minimise  ||D g||_1   s.t.   ||D^{+T} (Sigma g - m)||_inf <= lam ||D^{+T} m||_inf

With ``Sigma = s^2 (L + 1 1^T / p)`` and ``D^{+T} = D L^{-1}`` the constraint reads
``s^2 |A g - b| <= lam s^2 ||b||_inf`` where ``A = D + c 1^T / p``, ``c = D L^{-1} 1`` and
``b = D L^{-1} m / s^2``. Backends solve the *scaled* problem (O(1) data, well
conditioned)::

    minimise  ||D h||_1   s.t.   |A h - b~| <= lam,     b~ = b / beta,  beta = ||b||_inf

and the map is ``g = beta h`` (the objective scales by ``beta``; the constraint is
homogeneous in ``(g, b)``). ``m = 0`` gives ``beta = 0`` and ``g = 0`` without a solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from captum_leg.grid import Grid, GridShape, get_grid
from captum_leg.solvers.operators import LPOperators, get_operators

Device = Union[torch.device, str, None]


class SolverError(RuntimeError):
    """A LEG-TV solve failed (infeasible, limit reached, licence or backend missing).

    Raised instead of ever returning a map that is not certified to the requested gap
    (unless the caller passed ``accept_inexact=True``).
    """


@dataclass
class ScaledProblem:
    """The scaled LP data of the rows that need a solve (all on the working device/dtype).

    Attributes:
        grid: the grid (its operators), in the working device and dtype.
        b: ``(B, M)`` scaled right-hand sides ``b~`` (``||b~||_inf = 1``).
        lams: ``(B,)`` levels ``lam``.
    """

    grid: Grid
    b: Tensor
    lams: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.b.shape[0])

    @property
    def ops(self) -> LPOperators:
        """The structured operators of the LP on :attr:`grid` (cached per grid)."""
        return get_operators(self.grid)

    def rows(self, index: Tensor) -> "ScaledProblem":
        """The sub-problem of the rows ``index``."""
        return ScaledProblem(self.grid, self.b[index], self.lams[index])


@dataclass
class TVProblem:
    """A batch of LEG-TV problems sharing one grid.

    Attributes:
        moments: ``(B, p)`` moment vectors ``m`` (row-major grid cells).
        grid_shape: ``(k_1, ..., k_d)`` with ``prod(grid_shape) == p`` (any ``d >= 1``).
        noise_levels: ``(B,)`` noise levels ``s > 0`` (float64, CPU).
        lams: ``(B,)`` relative constraint levels in ``(0, 1)`` (float64, CPU).
    """

    moments: Tensor
    grid_shape: GridShape
    noise_levels: Tensor
    lams: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.moments.shape[0])

    @property
    def p(self) -> int:
        return math.prod(self.grid_shape)

    @property
    def device(self) -> torch.device:
        """The device of the moments (where the maps are returned)."""
        return self.moments.device

    def grid(self, dtype: torch.dtype = torch.float64, device: Device = None) -> Grid:
        """The cached :class:`~captum_leg.grid.Grid` (default: float64 on the moments' device)."""
        dev = self.moments.device if device is None else device
        return get_grid(self.grid_shape, dev, dtype)

    def scaled(
        self, dtype: torch.dtype = torch.float64, device: Device = None
    ) -> Tuple[ScaledProblem, Tensor]:
        """Data of the scaled problem for every row.

        Args:
            dtype: working precision.
            device: working device (default: the moments' device).

        Returns:
            ``(scaled, beta (B,))``; rows with ``beta == 0`` (``m = 0``) have ``b~ == 0``
            and are answered with ``g = 0``.
        """
        grid = self.grid(dtype, device)
        m = self.moments.to(device=grid.device, dtype=dtype)
        s2 = self.noise_levels.to(device=grid.device, dtype=dtype) ** 2
        b = grid.pinv_t(grid.unflat(m)) / s2[:, None]
        beta = b.abs().amax(-1)
        b_tilde = b / torch.where(beta > 0, beta, torch.ones_like(beta))[:, None]
        lams = self.lams.to(device=grid.device, dtype=dtype)
        return ScaledProblem(grid, b_tilde, lams), beta


@dataclass
class TVSolution:
    """Solutions of a :class:`TVProblem`.

    Attributes:
        maps: ``(B, p)`` LEG-TV maps ``g`` (device/dtype of the moments).
        objective: ``(B,)`` ``||D g||_1`` (float64, CPU).
        max_violation: ``(B,)`` relative constraint violation
            ``max(0, ||D^{+T}(Sigma g - m)||_inf - lam ||D^{+T} m||_inf) / ||D^{+T} m||_inf``
            measured in float64 on the returned maps.
        rel_gap: ``(B,)`` relative duality gap certified by the solver driver (0 for
            ``m = 0`` rows).
        backend: name of the backend that produced the maps.
        status: per-map ``"optimal"``, ``"inexact"`` or ``"zero moment"``.
        iterations: per-map iteration counts (backend-specific meaning).
        solve_time: wall-clock seconds of the whole batch.
        info: free-form backend details (``"reported_gap"``: the backend's own gap
            estimates, when it gives them; never used for ``status`` or ``rel_gap``).
    """

    maps: Tensor
    objective: Tensor
    max_violation: Tensor
    rel_gap: Tensor
    backend: str
    status: List[str]
    iterations: List[int]
    solve_time: float
    info: Dict[str, Any] = field(default_factory=dict)


def evaluate_maps(problem: TVProblem, maps: Tensor) -> Tuple[Tensor, Tensor]:
    """Objective ``||D g||_1`` and relative violation of maps, in float64 (structured).

    Args:
        problem: the problem the maps answer.
        maps: ``(B, p)`` candidate maps.

    Returns:
        ``(objective (B,), max_violation (B,))`` as float64 CPU tensors. Where
        ``D^{+T} m = 0`` the violation is the absolute ``||D^{+T} Sigma g||_inf``.
    """
    grid = problem.grid(torch.float64)
    g = grid.unflat(maps.to(device=grid.device, dtype=torch.float64).reshape(problem.batch_size, -1))
    m = grid.unflat(problem.moments.to(device=grid.device, dtype=torch.float64))
    s2 = problem.noise_levels.to(device=grid.device, dtype=torch.float64) ** 2
    lams = problem.lams.to(device=grid.device, dtype=torch.float64)
    dg = grid.diff(g)
    # D^{+T} Sigma g = s^2 (D g + c 1^T g / p)
    sigma_g = s2[:, None] * (dg + grid.c * grid.total(g)[:, None] / grid.p)
    dm = grid.pinv_t(m)
    scale = dm.abs().amax(-1)
    resid = (sigma_g - dm).abs().amax(-1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    viol = torch.clamp(resid - lams * scale, min=0) / safe
    return dg.abs().sum(-1).cpu(), viol.cpu()


def unscale(
    problem: TVProblem,
    h: Tensor,
    beta: Tensor,
    backend: str,
    status: List[str],
    iterations: List[int],
    solve_time: float,
    rel_gap: Tensor,
    info: Optional[Dict[str, Any]] = None,
) -> TVSolution:
    """The solution from scaled maps: ``g = beta h`` in the moments' dtype/device, measured."""
    h = h.to(device=beta.device, dtype=beta.dtype).reshape(problem.batch_size, -1)
    g = (beta[:, None] * h).to(device=problem.moments.device, dtype=problem.moments.dtype)
    obj, viol = evaluate_maps(problem, g)
    return TVSolution(
        maps=g,
        objective=obj,
        max_violation=viol,
        rel_gap=rel_gap.detach().to("cpu", torch.float64),
        backend=backend,
        status=list(status),
        iterations=list(iterations),
        solve_time=float(solve_time),
        info=dict(info or {}),
    )
