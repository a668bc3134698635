"""Grid operators of LEG: cells, the difference operator ``D``, ``L^{-1}``, ``Sigma^{-1}``.

A grid has one or more axes (``shape = (k_1, ..., k_d)``: a signal, an image, a
volume); grid vectors are stored as ``(..., *shape)`` tensors and the operators act on
the trailing ``d`` dimensions. No dense ``p x p`` matrix is ever formed: ``L = D^T D``
is diagonalised by the type-I discrete sine transform along every axis, and the rank-one
term of ``Sigma`` is handled by Sherman-Morrison (``docs/method.md``).

Edge ordering of ``D g``: one block per axis, **last axis first** (for an image: the
horizontal differences, then the vertical ones). The block of axis ``a`` holds the
differences of the array zero-padded by one cell on both ends of that axis, shaped like
the grid with ``k_a + 1`` along ``a`` and flattened row-major; each entry is
``g[before] - g[after]`` (padding is 0).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Iterable, List, Optional, Sequence, Tuple, TypeGuard, Union

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

GridShape = Tuple[int, ...]


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
    """A perturbation grid of shape ``(k_1, ..., k_d)`` with its structured operators.

    Instances are cheap and cached per ``(shape, device, dtype)`` by :func:`get_grid`;
    treat them as immutable.
    """

    def __init__(self, shape: Sequence[int], device: torch.device, dtype: torch.dtype):
        self.shape: GridShape = tuple(int(k) for k in shape)
        self.ndim = len(self.shape)
        self.p = math.prod(self.shape)
        self.device, self.dtype = device, dtype
        self._dims = tuple(range(-self.ndim, 0))
        # Edge blocks, last axis first (see the module docstring).
        self.edge_shapes: List[GridShape] = [
            tuple(k + (i == a) for i, k in enumerate(self.shape)) for a in reversed(range(self.ndim))
        ]
        self.n_edges = sum(math.prod(es) for es in self.edge_shapes)
        eig = torch.zeros(self.shape, device=device, dtype=dtype)
        for axis, k in enumerate(self.shape):
            j = torch.arange(1, k + 1, device=device, dtype=dtype)
            lam = 2 - 2 * torch.cos(math.pi * j / (k + 1))
            eig = eig + lam.reshape((k,) + (1,) * (self.ndim - axis - 1))
        #: Eigenvalues of ``L``, one per DST-I basis vector, shaped like the grid.
        self.eigenvalues = eig
        # DST-I applied twice is (N+1)/2 times the identity: fold every inverse scale in.
        scale = math.prod(2.0 / (k + 1) for k in self.shape)
        self._inv_eig = scale / eig
        ones = torch.ones(self.shape, device=device, dtype=dtype)
        self.l_inv_ones = self.laplacian_solve(ones)  # L^{-1} 1
        self.ones_l_inv_ones = float(self.l_inv_ones.sum())  # 1^T L^{-1} 1
        self.c = self.diff(self.l_inv_ones)  # D L^{-1} 1, the LP's rank-one column
        # The square root K^{1/2} = L^{1/2} (I + r a a^T) of K = L + 1 1^T / p, with
        # a = L^{-1/2} 1 / sqrt(p) and (1 + r |a|^2)^2 = 1 + |a|^2 (see sqrt_covariance).
        a = self.spectrum(ones) / (eig.sqrt() * math.sqrt(self.p))
        a2 = float((a**2).sum())
        self._sqrt_eig = eig.sqrt()
        self._sqrt_a = a
        self._sqrt_r = (math.sqrt(1.0 + a2) - 1.0) / a2

    def flat(self, g: Tensor) -> Tensor:
        """``(..., *shape) -> (..., p)`` (a view where possible)."""
        return g.flatten(-self.ndim) if self.ndim > 1 else g

    def unflat(self, v: Tensor) -> Tensor:
        """``(..., p) -> (..., *shape)``."""
        return v.unflatten(-1, self.shape)

    def total(self, g: Tensor, keepdim: bool = False) -> Tensor:
        """Sum over the grid axes: ``1^T g``."""
        return g.sum(self._dims, keepdim=keepdim)

    # -- D and D^T ------------------------------------------------------------------
    def diff(self, g: Tensor) -> Tensor:
        """``D g``: ``(..., *shape) -> (..., M)``."""
        blocks = []
        for a in reversed(range(self.ndim)):
            dim = a - self.ndim
            pad = [0, 0] * (self.ndim - 1 - a) + [1, 1]
            h = torch.nn.functional.pad(g, pad)
            n = h.shape[dim]
            e = h.narrow(dim, 0, n - 1) - h.narrow(dim, 1, n - 1)
            blocks.append(e.flatten(-self.ndim) if self.ndim > 1 else e)
        return torch.cat(blocks, dim=-1)

    def diff_t(self, e: Tensor) -> Tensor:
        """``D^T e``: ``(..., M) -> (..., *shape)``."""
        sizes = [math.prod(block) for block in self.edge_shapes]
        parts = torch.split(e, sizes, dim=-1)
        axes = reversed(range(self.ndim))
        terms = [
            torch.diff(part.unflatten(-1, block), dim=a - self.ndim)
            for part, block, a in zip(parts, self.edge_shapes, axes)
        ]
        return functools.reduce(torch.add, terms)

    # -- L = D^T D and Sigma -------------------------------------------------------
    def laplacian(self, g: Tensor) -> Tensor:
        """``L g`` with the Dirichlet stencil (``2 d`` on the diagonal)."""
        return self.diff_t(self.diff(g))

    def laplacian_solve(self, v: Tensor) -> Tensor:
        """``L^{-1} v`` in ``O(p log p)`` via the type-I DST along every axis."""
        spec = v
        for dim in self._dims:
            spec = dst1(spec, dim)
        spec = spec * self._inv_eig
        for dim in self._dims:
            spec = dst1(spec, dim)
        return spec

    def spectrum(self, v: Tensor) -> Tensor:
        """Coefficients of ``v`` in the orthonormal DST-I basis that diagonalises ``L``."""
        for dim in self._dims:
            v = dst1(v, dim)
        return v * math.sqrt(math.prod(2.0 / (k + 1) for k in self.shape))

    def from_spectrum(self, c: Tensor) -> Tensor:
        """Inverse of :meth:`spectrum` (the orthonormal DST-I is its own inverse)."""
        return self.spectrum(c)

    def basis_diagonal(self, w: Tensor) -> Tensor:
        """``diag(F diag(w) F^T)`` for the orthonormal DST-I basis ``F``, in ``O(p log p)``.

        The squared basis functions are ``(1 - cos(2 pi j k / (K + 1))) / (K + 1)`` along
        each axis (1-based ``j, k``), so the map is separable and each axis costs one
        FFT. Used for the diagonal of spectrally filtered covariances.
        """
        for dim in self._dims:
            k = w.shape[dim]
            pad = torch.nn.functional.pad(w.movedim(dim, -1), (1, 0))
            cos_sum = torch.fft.fft(pad, dim=-1).real[..., 1:]
            w = ((w.movedim(dim, -1).sum(-1, keepdim=True) - cos_sum) / (k + 1)).movedim(-1, dim)
        return w

    def covariance(self, v: Tensor, noise_level: Union[Tensor, float] = 1.0) -> Tensor:
        """``Sigma v = s^2 (L v + 1 (1^T v) / p)``; ``noise_level`` broadcasts over ``...``."""
        s2 = self._batch_scalar(noise_level, v) ** 2
        return s2 * (self.laplacian(v) + self.total(v, keepdim=True) / self.p)

    def precision(self, v: Tensor, noise_level: Union[Tensor, float] = 1.0) -> Tensor:
        """``Sigma^{-1} v`` by Sherman-Morrison on ``L + 1 1^T / p``."""
        w = self.l_inv_ones
        lv = self.laplacian_solve(v)
        coef = self.total(v * w, keepdim=True) / (self.p + self.ones_l_inv_ones)
        s2 = self._batch_scalar(noise_level, v) ** 2
        return (lv - coef * w) / s2

    def precision_diagonal(self, noise_level: float = 1.0) -> Tensor:
        """``diag(Sigma^{-1})``, shaped like the grid, in ``O(p log p)``."""
        l_inv = self.basis_diagonal(1.0 / self.eigenvalues)
        rank_one = self.l_inv_ones**2 / (self.p + self.ones_l_inv_ones)
        return (l_inv - rank_one) / noise_level**2

    def pinv_t(self, v: Tensor) -> Tensor:
        """``D^{+T} v = D L^{-1} v`` (``D`` has full column rank)."""
        return self.diff(self.laplacian_solve(v))

    def _batch_scalar(self, s: Union[Tensor, float], v: Tensor) -> Union[Tensor, float]:
        """Let a per-map tensor of noise levels ``(...)`` broadcast over ``(..., *shape)``."""
        if isinstance(s, Tensor):
            return s.to(device=v.device, dtype=v.dtype).reshape(s.shape + (1,) * self.ndim)
        return s

    # -- sampling --------------------------------------------------------------------
    def standard_from_normal(self, z: Tensor) -> Tensor:
        """``D^T z' + w 1 / sqrt(p)`` from normal draws ``z = (z', w)``, ``(n, M + 1)``.

        The result has covariance ``L + 1 1^T / p`` (``Sigma`` at ``s = 1``).
        """
        z = z.to(device=self.device, dtype=self.dtype)
        w = z[:, -1].reshape((-1,) + (1,) * self.ndim)
        return self.diff_t(z[:, :-1]) + w / math.sqrt(self.p)

    def sqrt_covariance(self, u: Tensor) -> Tensor:
        """``K^{1/2} u`` for ``K = L + 1 1^T / p`` (``Sigma`` at ``s = 1``), ``(..., *shape)``.

        A square root in ``O(p log p)``: ``L^{1/2}`` is diagonal in the DST-I basis and
        the rank-one term is a scalar correction there, so ``K^{1/2} u`` has covariance
        ``K`` for white ``u``. Used by designs that shape white draws themselves
        (orthogonal blocks) rather than draw ``D^T z``.
        """
        spec = self.spectrum(u.to(device=self.device, dtype=self.dtype))
        along = (spec * self._sqrt_a).sum(self._dims, keepdim=True)
        return self.from_spectrum((spec + self._sqrt_r * along * self._sqrt_a) * self._sqrt_eig)

    def sample_standard(self, n: int, generator: Optional[torch.Generator]) -> Tensor:
        """``n`` draws of covariance ``L + 1 1^T / p``, shaped ``(n, *shape)``.

        The normal draws are made on the generator's device (float32: several times
        faster, and plenty for Monte-Carlo noise) and moved to the grid's device.
        """
        gen_device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.n_edges + 1, generator=generator, device=gen_device, dtype=torch.float32)
        return self.standard_from_normal(z)

    # -- for LP backends -----------------------------------------------------------
    def diff_sparse(self) -> sp.csr_matrix:
        """``D`` as a scipy CSR matrix (``M x p``), matching :meth:`diff`."""
        return _diff_sparse(self.shape)

    def c_numpy(self) -> np.ndarray:
        """``c = D L^{-1} 1`` as float64 numpy (for LP backends)."""
        return self.c.detach().cpu().double().numpy()


@functools.lru_cache(maxsize=32)
def _diff_sparse(shape: GridShape) -> sp.csr_matrix:
    def d1(k: int) -> sp.csr_matrix:
        # (k+1) x k: row j is pad[j] - pad[j+1] of the zero-padded vector.
        return sp.diags([np.ones(k), -np.ones(k)], [-1, 0], shape=(k + 1, k), format="csr")

    blocks = []
    for a in reversed(range(len(shape))):
        before = sp.identity(math.prod(shape[:a]), format="csr")
        after = sp.identity(math.prod(shape[a + 1 :]), format="csr")
        blocks.append(sp.kron(sp.kron(before, d1(shape[a])), after))
    return sp.vstack(blocks, format="csr")


def check_grid_shape(
    name: str, value: object, spatial: Optional[Sequence[int]] = None
) -> GridShape:
    """Cells per axis as a tuple of positive ints: the one check of every grid shape.

    Without ``spatial`` an int is a 1-D grid and a sequence gives any number of axes.
    With ``spatial`` (the axis sizes of the input the grid covers) an int is the same
    count on every axis, a sequence needs one entry per axis, and no axis may have more
    cells than elements.

    Raises:
        TypeError: not an int or a sequence of ints (of the right length).
        ValueError: no axis, or a count below 1 (or above the axis size).
    """
    if spatial is None:
        wanted = "an int or a sequence of ints (cells per axis)"
    else:
        wanted = f"an int or {len(spatial)} ints (one per spatial axis of {tuple(spatial)})"
    if _is_int(value):
        sizes = (int(value),) * (1 if spatial is None else len(spatial))
    else:  # tuples, lists, numpy arrays, torch.Size
        items = _items(value)
        if items is None or (spatial is not None and len(items) != len(spatial)):
            raise TypeError(f"{name}: expected {wanted}, got {value!r}")
        sizes = tuple(int(k) for k in items)
    if not sizes or min(sizes) < 1:
        raise ValueError(f"{name}: a grid shape needs one or more axes of >= 1 cells, got {value!r}")
    if spatial is not None and any(k > n for k, n in zip(sizes, spatial)):
        raise ValueError(
            f"{name}: {sizes} cells exceed the spatial size {tuple(spatial)}; at most one cell per element"
        )
    return sizes


def _is_int(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _items(value: object) -> Optional[List[numbers.Integral]]:
    """The entries of a sequence of ints, or None for anything else."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return None
    try:
        items = list(value)
    except TypeError:  # a 0-d array
        return None
    return items if all(_is_int(k) for k in items) else None


def get_grid(
    shape: Union[int, Sequence[int]],
    device: Union[torch.device, str] = "cpu",
    dtype: torch.dtype = torch.float64,
) -> Grid:
    """The cached :class:`Grid` for a shape ``(k_1, ..., k_d)``, device and dtype."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_grid(check_grid_shape("shape", shape), device, dtype)


@functools.lru_cache(maxsize=32)
def _cached_grid(shape: GridShape, device: torch.device, dtype: torch.dtype) -> Grid:
    return Grid(shape, device, dtype)


def cell_index(size: int, cells: int, device: Union[torch.device, str] = "cpu") -> Tensor:
    """Cell of each pixel along one axis: ``floor(i * cells / size)``.

    Cells need not divide the axis: their sizes differ by at most one pixel.
    """
    return torch.div(torch.arange(size, device=device) * cells, size, rounding_mode="floor")


def cell_sizes(size: int, cells: int) -> Tuple[int, ...]:
    """Pixels per cell along one axis, consistent with :func:`cell_index`."""
    return tuple(torch.bincount(cell_index(size, cells), minlength=cells).tolist())
