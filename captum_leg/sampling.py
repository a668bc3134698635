"""Structured Gaussian perturbations on the grid, drawn in a reproducible stream.

A *unit* is what enters the moment once: one perturbation ``X`` ("gaussian") or one
symmetric pair ``X, -X`` ("antithetic"). Units are drawn in fixed blocks from one
``torch.Generator``, so the noise a seed produces does not depend on how the forward
passes are batched (``perturbations_per_eval``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from captum_leg.grid import Grid

SAMPLING_SCHEMES = ("gaussian", "antithetic")

# Fixed so that the draws are independent of the forward batch size.
_BLOCK_UNITS = 128


def make_generator(seed: Optional[int], device: torch.device) -> torch.Generator:
    """A dedicated generator on ``device``: seeded, or from fresh entropy when ``seed`` is None."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


class NoiseStream:
    """Standard grid noise ``D^T z + w 1 / sqrt(p)`` (covariance ``L + 1 1^T / p``), unit by unit.

    Multiply by the noise level ``s`` to get covariance ``Sigma`` (LEG_METHOD.md section 3).
    """

    def __init__(self, grid: Grid, generator: torch.Generator):
        self.grid = grid
        self.generator = generator
        self._buffer = grid.l_inv_ones.new_empty((0, *grid.shape))

    def take(self, n_units: int) -> Tensor:
        """The next ``n_units`` draws, shaped ``(n_units, k1, k2)``."""
        parts = []
        need = n_units
        while need > 0:
            if self._buffer.shape[0] == 0:
                self._buffer = self.grid.sample_standard(_BLOCK_UNITS, self.generator)
            part, self._buffer = self._buffer[:need], self._buffer[need:]
            parts.append(part)
            need -= part.shape[0]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
