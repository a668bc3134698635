"""From responses to grid maps: the Monte-Carlo moment, LEG, its standard error, LEG-TV.

All arrays are grid-shaped ``(N, C, k1, k2)`` (examples x channels) in float64 on the
input's device. Channel ``c`` has noise level ``s_c``; its perturbations are
``X = s_c * Z`` with ``Z`` the standard draws of :class:`captum_leg.sampling.NoiseStream`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_leg.grid import Grid


class MomentAccumulator:
    """Streams ``m = (1/U) sum_j r_j X_j`` per example and channel over forward batches.

    ``r_j`` is a unit's response: ``f(x0 + X) - f(x0)`` for Gaussian sampling, and
    ``(f(x0 + X) - f(x0 - X)) / 2`` for an antithetic pair (same expectation of ``r X``,
    and ``f(x0)`` cancels). With ``track_variance`` it also accumulates the second
    moment of the per-unit LEG estimates ``r_j Sigma^{-1} X_j`` for standard errors.
    """

    def __init__(
        self,
        grid: Grid,
        n_examples: int,
        noise_levels: Tensor,
        units_per_channel: int,
        track_variance: bool = False,
    ):
        self.grid = grid
        self.noise_levels = noise_levels  # (C,)
        self.units = units_per_channel
        shape = (n_examples, noise_levels.numel(), grid.k1, grid.k2)
        self._sum = torch.zeros(shape, device=grid.device, dtype=grid.dtype)
        self._sq = torch.zeros(shape, device=grid.device, dtype=grid.dtype) if track_variance else None

    def add(self, responses: Tensor, segments: Sequence[Tuple[int, int, int]], draws: Tensor) -> None:
        """Add ``k`` units.

        Args:
            responses: ``(k, N)`` unit responses ``r``.
            segments: ``(lo, hi, channel)`` runs of units sharing a channel.
            draws: ``(k, k1, k2)`` standard draws ``Z`` (``X = s_c Z``).
        """
        flat = draws.flatten(1)
        per_unit = self.grid.precision(draws).flatten(1) if self._sq is not None else None
        for lo, hi, c in segments:
            s = self.noise_levels[c]
            r = responses[lo:hi].T  # (N, units)
            self._sum[:, c] += (s * (r @ flat[lo:hi])).view_as(self._sum[:, c])
            if per_unit is not None:
                # r Sigma^{-1} X = (r / s) (L + 1 1^T / p)^{-1} Z
                sq = ((r / s) ** 2) @ per_unit[lo:hi] ** 2
                self._sq[:, c] += sq.view_as(self._sq[:, c])

    def moment(self) -> Tensor:
        """``m``, shaped ``(N, C, k1, k2)``."""
        return self._sum / self.units

    def leg(self) -> Tensor:
        """The closed-form LEG estimate ``Sigma^{-1} m`` per example and channel."""
        return self.grid.precision(self.moment(), self.noise_levels)

    def standard_error(self) -> Tensor:
        """Per-cell standard error of :meth:`leg` (sample std of unit estimates / sqrt(U))."""
        if self._sq is None:
            raise RuntimeError("standard errors need track_variance=True")
        if self.units < 2:
            return torch.full_like(self._sum, float("nan"))
        mean = self.leg()
        var = (self._sq / self.units - mean**2).clamp_min(0) * (self.units / (self.units - 1))
        return (var / self.units).sqrt()


def leg_tv(
    moment: Tensor,
    grid: Grid,
    noise_levels: Tensor,
    lams: Sequence[float],
    solver: str = "auto",
    solver_options: Optional[Dict[str, Any]] = None,
) -> Tensor:
    """LEG-TV maps for every example, channel and lambda in one batched LP solve.

    Args:
        moment: ``(N, C, k1, k2)`` moments.
        grid: the grid the moments live on.
        noise_levels: ``(C,)`` noise level of each channel.
        lams: the relative constraint levels, each in (0, 1).
        solver: a name registered in :mod:`captum_leg.solvers`, or "auto".
        solver_options: passed to the backend's ``solve``.

    Returns:
        ``(len(lams), N, C, k1, k2)`` maps.
    """
    from captum_leg.solvers import solve_tv_batch

    n, c = moment.shape[:2]
    n_lam = len(lams)
    flat = moment.reshape(1, n * c, grid.p).expand(n_lam, -1, -1).reshape(-1, grid.p)
    s = noise_levels.reshape(1, 1, c).expand(n_lam, n, c).reshape(-1)
    lam = torch.tensor(list(lams), dtype=grid.dtype, device=grid.device)
    lam = lam.reshape(n_lam, 1).expand(n_lam, n * c).reshape(-1)
    solution = solve_tv_batch(flat, (grid.k1, grid.k2), s, lam, solver=solver, **(solver_options or {}))
    return solution.maps.reshape(n_lam, n, c, grid.k1, grid.k2)
