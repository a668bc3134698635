"""LEG-TV: the total-variation linear program, fed with the best available estimate.

The LP (``docs/method.md``) constrains ``D^{+T} (Sigma g - m)`` around a moment ``m``.
It is fed ``m = Sigma beta_hat`` for the estimate ``beta_hat`` of the chosen estimator,
the moment that estimate implies: for the moment estimator this is the Monte-Carlo
moment itself (``beta_hat = Sigma^{-1} m``), for regression estimators it swaps the
noisy moment for the more precise estimate, so the LP looks for the simplest map close
to the better estimate.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor

from captum_leg.grid import Grid


def leg_tv(
    maps: Tensor,
    grid: Grid,
    noise_levels: Tensor,
    lams: Sequence[float],
    solver: str,
    solver_options: Optional[Dict[str, Any]] = None,
) -> Tensor:
    """LEG-TV maps for every example, channel and lambda in one batched LP solve.

    Args:
        maps: ``(N, C, *grid.shape)`` estimates ``beta_hat`` (cell gradients).
        grid: the grid the maps live on.
        noise_levels: ``(C,)`` noise level of each channel.
        lams: relative constraint levels, each in (0, 1).
        solver: a name registered in :mod:`captum_leg.solvers`, or "auto".
        solver_options: passed to the backend.

    Returns:
        ``(len(lams), N, C, *grid.shape)`` maps.
    """
    from captum_leg.solvers import solve_tv_batch

    n, c = maps.shape[:2]
    n_lam = len(lams)
    moments = grid.covariance(maps, noise_levels.reshape(1, c).expand(n, c))
    flat = grid.flat(moments).reshape(1, n * c, grid.p).expand(n_lam, -1, -1).reshape(-1, grid.p)
    s = noise_levels.reshape(1, 1, c).expand(n_lam, n, c).reshape(-1)
    lam = torch.tensor(list(lams), dtype=grid.dtype, device=grid.device)
    lam = lam.reshape(n_lam, 1).expand(n_lam, n * c).reshape(-1)
    solution = solve_tv_batch(flat, grid.shape, s, lam, solver=solver, **(solver_options or {}))
    return solution.maps.reshape(n_lam, n, c, *grid.shape)
