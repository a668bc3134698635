"""The map between grid cells and pixels: writing perturbed images, upsampling maps.

Cells follow :func:`captum_leg.grid.cell_index` (sizes differ by at most one pixel).
When they divide the image evenly, a pixel view ``(k1, r1, k2, r2)`` lets cell values
broadcast straight into the output with no upsampled intermediate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from captum_leg.grid import cell_index


class CellMap:
    """Pixel <-> cell correspondence of a ``k1 x k2`` grid on an ``H x W`` image."""

    def __init__(self, height: int, width: int, k1: int, k2: int, device: torch.device):
        self.height, self.width, self.k1, self.k2 = height, width, k1, k2
        self.rows = cell_index(height, k1, device)
        self.cols = cell_index(width, k2, device)
        self.uniform = height % k1 == 0 and width % k2 == 0
        self.row_sizes = torch.bincount(self.rows, minlength=k1)
        self.col_sizes = torch.bincount(self.cols, minlength=k2)

    def _cells_view(self, t: Tensor) -> Tensor:
        """``(..., H, W)`` as ``(..., k1, r1, k2, r2)`` (uniform cells only; no copy)."""
        r1, r2 = self.height // self.k1, self.width // self.k2
        return t.unflatten(-1, (self.k2, r2)).unflatten(-3, (self.k1, r1))

    def add_into(self, out: Tensor, base: Tensor, cells: Tensor) -> None:
        """``out = base + upsample(cells)`` with nearest (piecewise-constant) upsampling.

        Args:
            out: ``(k, N, H, W)`` destination (may be a strided view of a batch).
            base: ``(N, H, W)`` unperturbed channel.
            cells: ``(k, k1, k2)`` cell values, in ``out``'s dtype.
        """
        if self.uniform:
            torch.add(
                self._cells_view(base),
                cells[:, None, :, None, :, None],
                out=self._cells_view(out),
            )
        else:
            pixels = cells[:, self.rows][:, :, self.cols]
            torch.add(base, pixels[:, None], out=out)

    def upsample_per_pixel(self, maps: Tensor) -> Tensor:
        """Grid maps ``(..., k1, k2)`` to ``(..., H, W)``, each cell divided by its pixel count."""
        area = self.row_sizes.to(maps.dtype)[:, None] * self.col_sizes.to(maps.dtype)[None, :]
        return (maps / area)[..., self.rows, :][..., self.cols]
