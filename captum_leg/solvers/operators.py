"""Structured operators and certificates of the scaled LEG-TV LP, on any grid.

Scaled problem (see :mod:`captum_leg.solvers.problem`) on a grid with ``p`` cells and ``M``
edges, ``A = D + c 1^T / p``, ``c = D L^{-1} 1``, ``t = lam``::

    primal   minimise ||D h||_1         s.t.  |A h - b| <= t
    dual     maximise -b^T w - t ||w||_1  s.t.  D^T z + A^T w = 0,  ||z||_inf <= 1

Weak duality: for feasible ``h`` and dual-feasible ``(z, w)``,
``||D h||_1 >= -z^T D h = w^T A h >= -b^T w - t ||w||_1``. Two identities make every
operator cheap: ``D^T c = 1`` (so ``A^T w = D^T w + 1 (c^T w) / p``) and
``A = D L^{-1} S`` with ``S = L + 1 1^T / p`` (so ``A^+ = S^{-1} D^T`` and the LEG map
``h_LEG = S^{-1} D^T b`` satisfies ``A h_LEG = b`` exactly, as ``b`` lies in the range of
``D``). ``L^{-1}`` is diagonal in the type-I sine basis along every axis; on grids up to
:data:`MATMUL_DST_MAX` cells per axis the sine transform is applied as a ``k x k`` matrix
product per axis, which on CPU was 10-100x faster than :meth:`Grid.laplacian_solve`'s FFT
path for small batches (fewer, larger kernels; measured on the shared 2-core machine) and
maps onto GPU matrix units. Nothing here forms a dense ``p x p`` matrix.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from captum_leg.grid import Grid

#: Largest axis length for which ``L^{-1}`` uses dense ``k x k`` sine matrices.
MATMUL_DST_MAX = 512


class LPOperators:
    """The operators of the scaled LP on one grid, in the grid's device and dtype.

    Vectors on cells are ``(..., *grid.shape)``, vectors on edges ``(..., M)``. Get one
    with :func:`get_operators` (cached per grid); treat instances as immutable.

    Attributes:
        sine_matrices: per axis, the ``k x k`` type-I sine matrix when every axis has at
            most :data:`MATMUL_DST_MAX` cells, else ``None`` (then ``L^{-1}`` runs through
            the grid's FFT path).
        inverse_eigenvalues: ``(*grid.shape)`` tensor with
            ``L^{-1} v = sine(sine(v) * inverse_eigenvalues)`` (:meth:`sine_transform`;
            the scales of the two transforms are folded in), or ``None`` with the sine
            matrices.
        cc: ``c^T c``.
    """

    def __init__(self, grid: Grid):
        self.grid = grid
        self.shape = grid.shape
        self.ndim = grid.ndim
        self.p = grid.p
        self.n_edges = grid.n_edges
        self.c = grid.c
        self.c_over_p = grid.c / grid.p
        self.l_inv_ones = grid.l_inv_ones
        self.ones_l_inv_ones = grid.ones_l_inv_ones
        self.cc = float((grid.c * grid.c).sum())
        self.sine_matrices: Optional[Tuple[Tensor, ...]] = None
        self.inverse_eigenvalues: Optional[Tensor] = None
        if max(self.shape) <= MATMUL_DST_MAX:
            self._build_sines()

    def _build_sines(self) -> None:
        dev, dt = self.grid.device, self.grid.dtype
        sines = []
        eig = torch.zeros(self.shape, device=dev, dtype=torch.float64)
        for axis, k in enumerate(self.shape):
            j = torch.arange(1, k + 1, device=dev, dtype=torch.float64)
            sines.append(torch.sin(math.pi * torch.outer(j, j) / (k + 1)).to(dt))
            lam = 2 - 2 * torch.cos(math.pi * j / (k + 1))
            eig = eig + lam.reshape((k,) + (1,) * (self.ndim - axis - 1))
        # the sine matrix squared is (k+1)/2 times the identity: fold the scales in
        scale = math.prod(2.0 / (k + 1) for k in self.shape)
        self.sine_matrices = tuple(sines)
        self.inverse_eigenvalues = (scale / eig).to(dt)

    # -- L^{-1} and its rank-one relatives -----------------------------------------
    def sine_transform(
        self, x: Tensor, out: Optional[Tensor] = None, spare: Optional[Tensor] = None
    ) -> Tensor:
        """The separable type-I sine transform of cell vectors ``x`` (unnormalised).

        Args:
            x: ``(B, *shape)`` cell vectors.
            out, spare: optional buffers shaped like ``x`` (both or neither); the axes
                alternate between them, so on one or two axes nothing is allocated. ``x``
                is not modified unless it is one of them.

        Returns:
            The transform: a new tensor, or ``out`` or ``spare`` when they are given.

        Raises:
            RuntimeError: the grid has no sine matrices (:attr:`sine_matrices` is None).
        """
        if self.sine_matrices is None:
            raise RuntimeError(f"no sine matrices on grid {self.shape} (axes > {MATMUL_DST_MAX})")
        nd = self.ndim
        src = x
        for axis, s in enumerate(self.sine_matrices):
            dst = None if out is None else (spare if src is out else out)
            if axis == nd - 1:
                src = torch.matmul(src, s, out=dst)  # symmetric matrix: no transposition
            elif axis == nd - 2:
                src = torch.matmul(s, src, out=dst)
            else:  # third-from-last axes and beyond (volumes): allocates
                moved = torch.matmul(s, src.movedim(axis - nd, -2)).movedim(-2, axis - nd)
                src = moved if dst is None else dst.copy_(moved)
        return src

    def laplacian_solve(self, v: Tensor) -> Tensor:
        """``L^{-1} v``."""
        if self.inverse_eigenvalues is None:
            return self.grid.laplacian_solve(v)
        return self.sine_transform(self.sine_transform(v) * self.inverse_eigenvalues)

    def _total(self, v: Tensor) -> Tensor:
        return self.grid.total(v, keepdim=True)

    def s_solve(self, v: Tensor) -> Tensor:
        """``S^{-1} v`` with ``S = L + 1 1^T / p`` (Sherman-Morrison)."""
        y = self.laplacian_solve(v)
        coef = self._total(y) / (self.p + self.ones_l_inv_ones)
        return y - coef * self.l_inv_ones

    # -- D, A and their transposes ---------------------------------------------------
    def diff(self, h: Tensor) -> Tensor:
        return self.grid.diff(h)

    def diff_t(self, e: Tensor) -> Tensor:
        return self.grid.diff_t(e)

    def rank_one(self, e: Tensor, total: Tensor) -> Tensor:
        """``e + c * total / p`` for edge vectors ``e`` and per-map ``total`` ``(...,)``."""
        return e + total[..., None] * self.c_over_p

    def A(self, h: Tensor) -> Tensor:
        """``A h = D h + c (1^T h) / p``."""
        return self.rank_one(self.diff(h), self.grid.total(h))

    def At(self, w: Tensor) -> Tensor:
        """``A^T w = D^T w + 1 (c^T w) / p``."""
        return self.diff_t(w) + self._cells(w @ self.c_over_p)

    def _cells(self, s: Tensor) -> Tensor:
        return s.reshape(s.shape + (1,) * self.ndim)

    def leg(self, b: Tensor) -> Tensor:
        """``A^+ b = S^{-1} D^T b``: the LEG map of the scaled problem (``A h = b``)."""
        return self.s_solve(self.diff_t(b))


@functools.lru_cache(maxsize=16)
def get_operators(grid: Grid) -> LPOperators:
    """The (cached) operators of ``grid`` (grids are cached by :func:`~captum_leg.grid.get_grid`)."""
    return LPOperators(grid)


# ---------------------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------------------
def lower_bound(ops: LPOperators, b: Tensor, t: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """A certified lower bound on the optimum from an approximate dual pair ``(z, w)``.

    Two exactly dual-feasible repairs of ``(clip(z), w)`` are scored and the better bound
    kept (both valid by weak duality):

    * fix ``w``: with ``r = D^T z + A^T w``, ``w' = w - D S^{-1} r`` gives
      ``A^T w' = A^T w - r`` (``A^T D = S``), so ``(z, w')`` is feasible and ``z`` keeps
      its box. This was the tighter bound on saturated duals (most ``|z| = 1``).
    * fix ``z``: ``z' = z - D L^{-1} r`` (``D^T D L^{-1} = I``), then scale ``(z', w)`` by
      ``1 / max(1, ||z'||_inf)``.

    Args:
        ops: the grid's operators.
        b: ``(B, M)`` scaled right-hand sides. t: ``(B,)`` levels ``lam``.
        z: ``(B, M)``; w: ``(B, M)`` dual estimates (any accuracy).

    Returns:
        ``(B,)`` lower bounds (``-inf`` never occurs; can be negative, then useless).
    """
    z = z.clamp(-1.0, 1.0)
    r = ops.diff_t(z) + ops.At(w)
    w_fix = w - ops.diff(ops.s_solve(r))
    lb_w = -(b * w_fix).sum(-1) - t * w_fix.abs().sum(-1)
    z_fix = z - ops.diff(ops.laplacian_solve(r))
    scale = z_fix.abs().amax(-1).clamp(min=1.0)
    lb_z = (-(b * w).sum(-1) - t * w.abs().sum(-1)) / scale
    return torch.maximum(lb_w, lb_z)


def make_feasible(
    ops: LPOperators,
    b: Tensor,
    t: Tensor,
    h: Tensor,
    h_leg: Tensor,
    max_repairs: int = 50,
    slack: float = 0.0,
) -> Tuple[Tensor, Tensor]:
    """An exactly feasible map near ``h`` and its objective (a certified upper bound).

    First alternating projections between the box ``|u - b| <= t`` and ``range(A)``
    (``h += A^+ (clip(A h) - A h)`` moves ``A h`` by the orthogonal projection of the
    correction onto ``range(A) = range(D)``), until the blend below would cost at most
    ``slack`` (relative objective) or the violation is at rounding level; then the blend
    ``(1 - theta) h + theta h_LEG`` with the smallest ``theta`` that is feasible
    (``A h_LEG = b``, the box centre). The projections matter: ``h_LEG`` has a large TV,
    so blending an unrepaired iterate costs orders of magnitude more.

    Args:
        ops: operators. b: ``(B, M)``. t: ``(B,)``. h, h_leg: ``(B, *shape)``.
        max_repairs: most projection rounds (each one ``L^{-1}`` solve).
        slack: relative objective increase the blend may cost without more rounds.

    Returns:
        ``(h_feasible (B, *shape), objective (B,))``.
    """
    eps = torch.finfo(h.dtype).eps
    lo, hi = b - t[:, None], b + t[:, None]
    tv_leg = ops.diff(h_leg).abs().sum(-1)
    ah = ops.A(h)
    for _ in range(max_repairs):
        viol = (ah - b).abs().amax(-1)
        theta = torch.clamp(1 - t / viol.clamp(min=torch.finfo(h.dtype).tiny), min=0.0)
        tv = ops.diff(h).abs().sum(-1)
        cost = theta * (tv_leg - tv).clamp(min=0) / tv.clamp(min=torch.finfo(h.dtype).tiny)
        if not bool(((viol - t > 8 * eps) & (cost > slack)).any()):
            break
        h = h + ops.leg(torch.minimum(torch.maximum(ah, lo), hi) - ah)
        ah = ops.A(h)
    viol = (ah - b).abs().amax(-1)
    theta = torch.clamp(1 - t / viol.clamp(min=torch.finfo(h.dtype).tiny), min=0.0)
    # a small margin absorbs the rounding of the blend itself
    theta = torch.where(theta > 0, torch.clamp(theta + 16 * eps, max=1.0), theta)
    h = torch.lerp(h, h_leg, theta.reshape(theta.shape + (1,) * ops.ndim))
    return h, ops.diff(h).abs().sum(-1)


def relative_gap(ub: Tensor, lb: Tensor) -> Tensor:
    """``(ub - lb) / ub`` clamped at 0; 0 where the optimum is 0 (``ub == 0``)."""
    gap = (ub - lb) / ub.clamp(min=torch.finfo(ub.dtype).tiny)
    return torch.where(ub <= 0, torch.zeros_like(gap), gap.clamp(min=0.0))


def certify(
    ops: LPOperators,
    b: Tensor,
    t: Tensor,
    h: Tensor,
    z: Tensor,
    w: Tensor,
    h_leg: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Feasible maps and certified relative gaps from approximate primal-dual solutions.

    Args:
        ops: operators. b: ``(B, M)``. t: ``(B,)``. h: ``(B, *shape)`` primal maps.
        z, w: ``(B, M)`` dual estimates (sign convention of the module docstring).
        h_leg: the LEG maps ``ops.leg(b)`` when already at hand.

    Returns:
        ``(h_feasible, objective, rel_gap)``, each batched over maps.
    """
    h_feas, ub = make_feasible(ops, b, t, h, ops.leg(b) if h_leg is None else h_leg)
    lb = lower_bound(ops, b, t, z, w)
    return h_feas, ub, relative_gap(ub, lb)
