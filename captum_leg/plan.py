"""The layout of one call: input tensors, their grids, blocks and design groups.

Each input tensor ``(N, C, *spatial)`` gets a grid over its spatial axes and a noise
level per channel; every (tensor, channel) pair is a *block*. The blocks are perturbed
one at a time (``perturb="channel"``, the paper's scheme: one design group per block)
or all at once with independent draws (``perturb="joint"``: one group).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from captum_leg.estimators.design import DesignGroup
from captum_leg.grid import Grid, get_grid
from captum_leg.pixels import CellMap


@dataclass
class InputLayout:
    """One input tensor: its grid, cell map and per-channel noise levels."""

    index: int
    shape: Tuple[int, ...]  # (N, C, *spatial)
    grid: Grid
    cells: CellMap
    noise_levels: Tensor  # (C,), on the grid's device and dtype

    @property
    def channels(self) -> int:
        return self.shape[1]


@dataclass(frozen=True)
class BlockRef:
    """Where a block of a design group lives: input tensor and channel."""

    input_index: int
    channel: int


@dataclass
class Plan:
    """Layouts of all inputs and the design groups built from their blocks."""

    layouts: List[InputLayout]
    groups: List[DesignGroup]
    members: List[List[BlockRef]]  # blocks of each group, in feature order

    @property
    def n_examples(self) -> int:
        return self.layouts[0].shape[0]


def grid_dtype(device: torch.device) -> torch.dtype:
    """Estimates are kept in float64 wherever the device has it."""
    return torch.float32 if device.type == "mps" else torch.float64


def make_plan(
    inputs: Sequence[Tensor],
    grid_shapes: Sequence[Tuple[int, ...]],
    noise_levels: Sequence[Sequence[float]],
    perturb: str,
) -> Plan:
    """Build the layouts and design groups (arguments already validated)."""
    layouts: List[InputLayout] = []
    for i, (x, shape, levels) in enumerate(zip(inputs, grid_shapes, noise_levels)):
        dtype = grid_dtype(x.device)
        grid = get_grid(shape, x.device, dtype)
        cells = CellMap(x.shape[2:], shape, x.device)
        s = torch.tensor([float(v) for v in levels], device=x.device, dtype=dtype)
        layouts.append(InputLayout(i, tuple(x.shape), grid, cells, s))
    refs = [BlockRef(lay.index, c) for lay in layouts for c in range(lay.channels)]

    def group_of(blocks: List[BlockRef]) -> DesignGroup:
        return DesignGroup(
            [layouts[b.input_index].grid for b in blocks],
            [float(layouts[b.input_index].noise_levels[b.channel]) for b in blocks],
        )

    members = [[r] for r in refs] if perturb == "channel" else [refs]
    return Plan(layouts, [group_of(m) for m in members], members)
