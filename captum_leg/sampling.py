"""Structured Gaussian perturbations on the grid, drawn in a reproducible stream.

A *unit* is what enters the estimate once: one perturbation ``X`` ("gaussian") or one
symmetric pair ``X, -X`` ("antithetic"). Every design group (a channel, or all channels
when they are perturbed jointly) has its own stream, seeded from the call's seed, and
draws in fixed blocks. The noise a seed produces therefore depends neither on how the
forward passes are batched (``perturbations_per_eval``), nor on how many rounds an
adaptive run takes, nor on the device: normal draws are made on the CPU and only the
structured transform runs on the input's device.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from captum_leg.grid import Grid

SAMPLING_SCHEMES = ("gaussian", "antithetic")

# Fixed so that the draws are independent of the forward batch size.
_BLOCK_UNITS = 128
# Normal draws per block at most (64 MB in float32): on very fine grids (a 64^3 volume
# has 0.8 M edges) a block of 128 units would need gigabytes, so fewer units per block.
# Grids up to 255 x 255 (full resolution at 224 x 224 included) or 131 070 cells in
# 1-D keep 128 units, and so their streams.
_BLOCK_NORMALS = 1 << 24


def spawn_seeds(seed: Optional[int], count: int) -> List[int]:
    """``count`` independent 63-bit seeds derived from ``seed`` (fresh entropy when None)."""
    seq = np.random.SeedSequence(seed)
    return [int(s.generate_state(2, np.uint64)[0] >> np.uint64(1)) for s in seq.spawn(count)]


class NoiseStream:
    """Standard noise for a group of grids, unit by unit.

    Each draw is ``D^T z + w 1 / sqrt(p)`` per grid (covariance ``L + 1 1^T / p``); the
    grids of a group get independent draws. Multiply grid ``b``'s part by its noise
    level ``s_b`` to get covariance ``Sigma_b``.
    """

    def __init__(self, grids: Sequence[Grid], seed: int):
        self.grids = list(grids)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)
        self.sizes = [g.p for g in self.grids]
        # A function of the grids only, so the stream still ignores the batching.
        normals = sum(g.n_edges + 1 for g in self.grids)
        self.block_units = max(1, min(_BLOCK_UNITS, _BLOCK_NORMALS // normals))
        self._buffer: Optional[Tensor] = None

    def _draw_block(self) -> Tensor:
        parts = []
        for g in self.grids:
            # float32 normals: several times faster to draw, plenty for Monte-Carlo noise.
            z = torch.randn(self.block_units, g.n_edges + 1, generator=self.generator, dtype=torch.float32)
            parts.append(g.flat(g.standard_from_normal(z)))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def take(self, n_units: int) -> Tensor:
        """The next ``n_units`` draws, ``(n_units, sum_b p_b)`` (grids concatenated)."""
        parts = []
        need = n_units
        while need > 0:
            if self._buffer is None or self._buffer.shape[0] == 0:
                self._buffer = self._draw_block()
            part, self._buffer = self._buffer[:need], self._buffer[need:]
            parts.append(part)
            need -= part.shape[0]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
