"""Grid operators of LEG: cells, the difference operator ``D``, ``L^{-1}``, ``Sigma^{-1}``.

Everything here works on grid vectors stored as ``(..., k1, k2)`` tensors (row-major
cells) and never forms a dense ``p x p`` matrix: ``L = D^T D`` is diagonalised by the
type-I discrete sine transform, the rank-one term of ``Sigma`` is handled by
Sherman-Morrison. See ``LEG_METHOD.md`` sections 2-4.

Edge ordering of ``D g`` (length ``M = k1 (k2 + 1) + (k1 + 1) k2``): first the
``k1 x (k2 + 1)`` horizontal differences of the zero-padded rows, then the
``(k1 + 1) x k2`` vertical differences of the zero-padded columns, both row-major.
Each row is ``g[a] - g[b]`` for consecutive cells ``a`` before ``b`` (padding is 0).
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


def dst1(x: Tensor, dim: int) -> Tensor:
    """Type-I DST along ``dim`` (unnormalised, as ``scipy.fft.dst(x, type=1) / 2``).

    ``y_k = sum_n x_n sin(pi (n + 1) (k + 1) / (N + 1))``. Computed through a real FFT
    of the odd extension so that it runs on any device torch.fft supports.
    """
    x = x.movedim(dim, -1)
    n = x.shape[-1]
    zero = x.new_zeros(x.shape[:-1] + (1,))
    ext = torch.cat([zero, x, zero, -x.flip(-1)], dim=-1)
    y = -torch.fft.rfft(ext, dim=-1).imag[..., 1 : n + 1] / 2
    return y.movedim(-1, dim)


class Grid:
    """A ``k1 x k2`` perturbation grid with its structured operators.

    Instances are cheap and cached per ``(k1, k2, device, dtype)`` by :func:`get_grid`;
    treat them as immutable.
    """

    def __init__(self, k1: int, k2: int, device: torch.device, dtype: torch.dtype):
        self.k1, self.k2 = int(k1), int(k2)
        self.p = self.k1 * self.k2
        self.n_edges = self.k1 * (self.k2 + 1) + (self.k1 + 1) * self.k2
        self.device, self.dtype = device, dtype
        a = torch.arange(1, self.k1 + 1, device=device, dtype=dtype)
        b = torch.arange(1, self.k2 + 1, device=device, dtype=dtype)
        lam1 = 2 - 2 * torch.cos(math.pi * a / (self.k1 + 1))
        lam2 = 2 - 2 * torch.cos(math.pi * b / (self.k2 + 1))
        # DST-I squared is (N+1)/2 times the identity: fold both inverse scales in.
        scale = 4.0 / ((self.k1 + 1) * (self.k2 + 1))
        self._inv_eig = scale / (lam1[:, None] + lam2[None, :])
        ones = torch.ones(self.k1, self.k2, device=device, dtype=dtype)
        self.l_inv_ones = self.laplacian_solve(ones)  # L^{-1} 1
        self.ones_l_inv_ones = float(self.l_inv_ones.sum())  # 1^T L^{-1} 1
        self.c = self.diff(self.l_inv_ones)  # D L^{-1} 1, the LP's rank-one column

    # -- D and D^T ------------------------------------------------------------------
    def diff(self, g: Tensor) -> Tensor:
        """``D g``: ``(..., k1, k2) -> (..., M)``."""
        h = torch.nn.functional.pad(g, (1, 1))
        v = torch.nn.functional.pad(g, (0, 0, 1, 1))
        eh = h[..., :, :-1] - h[..., :, 1:]
        ev = v[..., :-1, :] - v[..., 1:, :]
        return torch.cat([eh.flatten(-2), ev.flatten(-2)], dim=-1)

    def diff_t(self, e: Tensor) -> Tensor:
        """``D^T e``: ``(..., M) -> (..., k1, k2)``."""
        nh = self.k1 * (self.k2 + 1)
        eh = e[..., :nh].unflatten(-1, (self.k1, self.k2 + 1))
        ev = e[..., nh:].unflatten(-1, (self.k1 + 1, self.k2))
        return torch.diff(eh, dim=-1) + torch.diff(ev, dim=-2)

    # -- L = D^T D and Sigma -------------------------------------------------------
    def laplacian(self, g: Tensor) -> Tensor:
        """``L g`` with the 5-point Dirichlet stencil."""
        return self.diff_t(self.diff(g))

    def laplacian_solve(self, v: Tensor) -> Tensor:
        """``L^{-1} v`` in ``O(p log p)`` via the type-I DST on both axes."""
        spec = dst1(dst1(v, -1), -2)
        return dst1(dst1(spec * self._inv_eig, -1), -2)

    def covariance(self, v: Tensor, noise_level: Tensor | float = 1.0) -> Tensor:
        """``Sigma v = s^2 (L v + 1 (1^T v) / p)``; ``noise_level`` broadcasts over ``...``."""
        s2 = _as_batch_scalar(noise_level, v) ** 2
        return s2 * (self.laplacian(v) + v.sum((-2, -1), keepdim=True) / self.p)

    def precision(self, v: Tensor, noise_level: Tensor | float = 1.0) -> Tensor:
        """``Sigma^{-1} v`` by Sherman-Morrison on ``L + 1 1^T / p``."""
        w = self.l_inv_ones
        lv = self.laplacian_solve(v)
        coef = (v * w).sum((-2, -1), keepdim=True) / (self.p + self.ones_l_inv_ones)
        s2 = _as_batch_scalar(noise_level, v) ** 2
        return (lv - coef * w) / s2

    def pinv_t(self, v: Tensor) -> Tensor:
        """``D^{+T} v = D L^{-1} v`` (``D`` has full column rank)."""
        return self.diff(self.laplacian_solve(v))

    # -- sampling --------------------------------------------------------------------
    def sample_standard(self, n: int, generator: Optional[torch.Generator]) -> Tensor:
        """``n`` draws of ``D^T z + w 1 / sqrt(p)``: covariance ``L + 1 1^T / p`` (s = 1)."""
        # float32 draws are several times faster and plenty for Monte-Carlo noise.
        z = torch.randn(
            n, self.n_edges + 1, generator=generator, device=self.device, dtype=torch.float32
        ).to(self.dtype)
        return self.diff_t(z[:, :-1]) + z[:, -1, None, None] / math.sqrt(self.p)

    # -- for LP backends -----------------------------------------------------------
    def diff_sparse(self) -> sp.csr_matrix:
        """``D`` as a scipy CSR matrix (``M x p``), matching :meth:`diff`."""
        return _diff_sparse(self.k1, self.k2)

    def c_numpy(self) -> np.ndarray:
        """``c = D L^{-1} 1`` as float64 numpy (for LP backends)."""
        return self.c.detach().cpu().double().numpy()


@functools.lru_cache(maxsize=32)
def _diff_sparse(k1: int, k2: int) -> sp.csr_matrix:
    def d1(k: int) -> sp.csr_matrix:
        # (k+1) x k: row j is pad[j] - pad[j+1] of the zero-padded vector.
        return sp.diags([np.ones(k), -np.ones(k)], [-1, 0], shape=(k + 1, k), format="csr")

    return sp.vstack(
        [sp.kron(sp.identity(k1), d1(k2)), sp.kron(d1(k1), sp.identity(k2))], format="csr"
    )


def _as_batch_scalar(s: Tensor | float, v: Tensor) -> Tensor | float:
    """Let a per-map tensor of noise levels ``(...)`` broadcast over ``(..., k1, k2)``."""
    if isinstance(s, Tensor):
        return s.to(device=v.device, dtype=v.dtype)[..., None, None]
    return s


def get_grid(
    k1: int, k2: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
) -> Grid:
    """The cached :class:`Grid` for a shape, device and dtype."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_grid(int(k1), int(k2), device, dtype)


@functools.lru_cache(maxsize=32)
def _cached_grid(k1: int, k2: int, device: torch.device, dtype: torch.dtype) -> Grid:
    return Grid(k1, k2, device, dtype)


def cell_index(size: int, cells: int, device: torch.device | str = "cpu") -> Tensor:
    """Cell of each pixel along one axis: ``floor(i * cells / size)``.

    Cells need not divide the image: their sizes differ by at most one pixel.
    """
    return torch.div(
        torch.arange(size, device=device) * cells, size, rounding_mode="floor"
    )


def cell_sizes(size: int, cells: int) -> Tuple[int, ...]:
    """Pixels per cell along one axis, consistent with :func:`cell_index`."""
    return tuple(torch.bincount(cell_index(size, cells), minlength=cells).tolist())
