"""The map between grid cells and input elements: perturbing inputs, upsampling maps.

An input channel has ``d`` spatial axes (a signal, an image, a volume) and its grid has
one cell count per axis. Cells follow :func:`captum_leg.grid.cell_index` along every
axis (sizes differ by at most one element). When the cells divide the axes evenly, a
view ``(k_1, r_1, ..., k_d, r_d)`` lets cell values broadcast straight into the batch
with no upsampled intermediate.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

from captum_leg.grid import cell_index


class CellMap:
    """Element <-> cell correspondence of a grid on the spatial axes of one input channel."""

    def __init__(self, spatial: Sequence[int], grid_shape: Sequence[int], device: torch.device):
        self.spatial: Tuple[int, ...] = tuple(int(v) for v in spatial)
        self.grid_shape: Tuple[int, ...] = tuple(int(k) for k in grid_shape)
        self.ndim = len(self.spatial)
        self.index = [cell_index(n, k, device) for n, k in zip(self.spatial, self.grid_shape)]
        self.sizes = [torch.bincount(i, minlength=k) for i, k in zip(self.index, self.grid_shape)]
        self.uniform = all(n % k == 0 for n, k in zip(self.spatial, self.grid_shape))

    def _cells_view(self, t: Tensor) -> Tensor:
        """``(..., *spatial)`` as ``(..., k_1, r_1, ..., k_d, r_d)`` (uniform cells; no copy)."""
        lead = t.dim() - self.ndim
        for axis in reversed(range(self.ndim)):
            k = self.grid_shape[axis]
            t = t.unflatten(lead + axis, (k, self.spatial[axis] // k))
        return t

    def _broadcast_cells(self, cells: Tensor) -> Tensor:
        """``(k, *grid)`` as ``(k, 1, k_1, 1, ..., k_d, 1)`` against a cells view of ``(k, N, ...)``."""
        shape = [cells.shape[0], 1]
        for k in self.grid_shape:
            shape += [k, 1]
        return cells.reshape(shape)

    def upsample(self, maps: Tensor) -> Tensor:
        """Nearest (piecewise-constant) upsampling ``(..., *grid) -> (..., *spatial)``."""
        for axis, idx in enumerate(self.index):
            maps = maps.index_select(axis - self.ndim, idx)
        return maps

    def add_into(self, out: Tensor, base: Tensor, cells: Tensor) -> None:
        """``out = base + upsample(cells)``.

        Args:
            out: ``(k, N, *spatial)`` destination (may be a strided view of a batch).
            base: ``(N, *spatial)`` unperturbed channel.
            cells: ``(k, *grid)`` cell values, in ``out``'s dtype.
        """
        if self.uniform:
            view = self._cells_view(out)
            torch.add(self._cells_view(base), self._broadcast_cells(cells), out=view)
        else:
            torch.add(base, self.upsample(cells)[:, None], out=out)

    def cell_volume(self, dtype: torch.dtype) -> Tensor:
        """Elements per cell, shaped like the grid."""
        vol = self.sizes[0].to(dtype)
        for size in self.sizes[1:]:
            vol = vol[..., None] * size.to(dtype)
        return vol

    def upsample_per_pixel(self, maps: Tensor) -> Tensor:
        """Grid maps ``(..., *grid)`` to ``(..., *spatial)``, each cell divided by its size."""
        return self.upsample(maps / self.cell_volume(maps.dtype))

    def cell_sums(self, values: Tensor) -> Tensor:
        """Sum ``(..., *spatial)`` over each cell: ``(..., *grid)`` (the adjoint of upsample)."""
        for axis, (idx, k) in enumerate(zip(self.index, self.grid_shape)):
            dim = values.dim() - self.ndim + axis
            shape = list(values.shape)
            shape[dim] = k
            values = values.new_zeros(shape).index_add_(dim, idx, values)
        return values
