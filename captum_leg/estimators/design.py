"""Design groups: which grids are perturbed together, and their noise covariances.

A *block* is one perturbed channel of one input tensor, with its grid and noise level
``s``. A *group* is the set of blocks that one perturbation touches: a single channel
(the paper's scheme, one group per channel) or all channels at once. Within a group the
blocks get independent draws and their features are concatenated, so an estimator sees
one design matrix ``X`` of ``n`` rows and ``P = sum_b p_b`` columns, in input units
(``X_b = s_b Z_b``, ``Cov(Z_b) = L_b + 1 1^T / p_b``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from captum_leg.grid import Grid


@dataclass(frozen=True)
class Block:
    """One perturbed channel: its grid, noise level and place in the group's features."""

    grid: Grid
    noise_level: float
    offset: int

    @property
    def p(self) -> int:
        return self.grid.p

    def part(self, v: Tensor) -> Tensor:
        """This block's features of ``(..., P)``, shaped ``(..., *grid.shape)``."""
        return self.grid.unflat(v[..., self.offset : self.offset + self.p])


class DesignGroup:
    """Blocks perturbed together; block-diagonal ``Sigma = diag(s_b^2 K_b)``."""

    def __init__(self, grids: Sequence[Grid], noise_levels: Sequence[float]):
        blocks: List[Block] = []
        offset = 0
        for grid, s in zip(grids, noise_levels):
            blocks.append(Block(grid, float(s), offset))
            offset += grid.p
        self.blocks: Tuple[Block, ...] = tuple(blocks)
        self.p = offset
        self.device = blocks[0].grid.device
        self.dtype = blocks[0].grid.dtype

    def _blockwise(self, v: Tensor, op: str) -> Tensor:
        parts = [b.grid.flat(getattr(b.grid, op)(b.part(v), b.noise_level)) for b in self.blocks]
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def precision(self, v: Tensor) -> Tensor:
        """``Sigma^{-1} v`` for ``(..., P)``."""
        return self._blockwise(v, "precision")

    def precision_diagonal(self) -> Tensor:
        """``diag(Sigma^{-1})``, ``(P,)``."""
        parts = [b.grid.flat(b.grid.precision_diagonal(b.noise_level)) for b in self.blocks]
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def covariance(self, v: Tensor) -> Tensor:
        """``Sigma v`` for ``(..., P)``."""
        return self._blockwise(v, "covariance")

    def scale(self, draws: Tensor) -> Tensor:
        """Standard draws ``Z`` ``(k, P)`` to perturbations ``X = s_b Z_b`` in input units."""
        if len(self.blocks) == 1:
            return draws * self.blocks[0].noise_level
        s = torch.cat(
            [draws.new_full((b.p,), b.noise_level) for b in self.blocks]
        )
        return draws * s
