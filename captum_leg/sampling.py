"""Structured Gaussian perturbations on the grid, drawn in a reproducible stream.

A *unit* is what enters the estimate once: one perturbation ``X`` ("gaussian") or one
symmetric pair ``X, -X`` ("antithetic", "orthogonal"). Every design group (a channel, or
all channels when they are perturbed jointly) has its own stream, seeded from the call's
seed, and draws in fixed blocks. The noise a seed produces therefore depends neither on
how the forward passes are batched (``perturbations_per_eval``), nor on how many rounds
an adaptive run takes, nor on the device: draws are made on the CPU and only the
structured transform runs on the input's device.

"orthogonal" pairs are exactly Gaussian one at a time, like "antithetic" ones, but
within a block of ``P`` units (``P`` the group's cells) their directions in the whitened
space of ``Sigma`` are orthonormal (a Haar-random basis) and their lengths independent
chi draws. The design then covers every direction about equally, so ``X^T X`` stays
close to ``n Sigma`` even near ``n = P``, where independent draws leave some directions
barely sampled: regression estimates need markedly fewer forward passes for the same
precision there (``docs/method.md``).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from captum_leg.grid import Grid

SAMPLING_SCHEMES = ("orthogonal", "antithetic", "gaussian")
#: Schemes whose units are symmetric pairs ``X, -X``.
PAIRED_SCHEMES = ("orthogonal", "antithetic")

# Fixed so that the draws are independent of the forward batch size.
_BLOCK_UNITS = 128
# Normal draws per block at most (64 MB in float32): on very fine grids (a 64^3 volume
# has 0.8 M edges) a block of 128 units would need gigabytes, so fewer units per block.
# Grids up to 255 x 255 (full resolution at 224 x 224 included) or 131 070 cells in
# 1-D keep 128 units, and so their streams.
_BLOCK_NORMALS = 1 << 24
#: Largest group (cells of all its grids) drawn in orthogonal blocks. Beyond it an
#: orthogonal basis costs seconds per block, and independent directions are already
#: orthogonal to within about ``1 / sqrt(P)``: "orthogonal" draws independent pairs there.
MAX_ORTHOGONAL_FEATURES = 2048


def spawn_seeds(seed: Optional[int], count: int) -> List[int]:
    """``count`` independent 63-bit seeds derived from ``seed`` (fresh entropy when None)."""
    seq = np.random.SeedSequence(seed)
    return [int(s.generate_state(2, np.uint64)[0] >> np.uint64(1)) for s in seq.spawn(count)]


class NoiseStream:
    """Standard noise for a group of grids, unit by unit.

    Each draw has covariance ``L + 1 1^T / p`` per grid; the grids of a group get
    independent draws. Multiply grid ``b``'s part by its noise level ``s_b`` to get
    covariance ``Sigma_b``.

    Args:
        grids: the group's grids, features concatenated in this order.
        seed: the group's seed.
        orthogonal: draw units in orthogonal blocks (see the module docstring).
    """

    def __init__(self, grids: Sequence[Grid], seed: int, orthogonal: bool = False):
        self.grids = list(grids)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)
        self.sizes = [g.p for g in self.grids]
        p = sum(self.sizes)
        self.orthogonal = orthogonal and p <= MAX_ORTHOGONAL_FEATURES
        if self.orthogonal:
            self.block_units = p
        else:
            # A function of the grids only, so the stream still ignores the batching.
            normals = sum(g.n_edges + 1 for g in self.grids)
            self.block_units = max(1, min(_BLOCK_UNITS, _BLOCK_NORMALS // normals))
        self._buffer: Optional[Tensor] = None
        self._basis: Optional[_OrthogonalBlock] = None

    def _draw_block(self) -> Tensor:
        parts = []
        for g in self.grids:
            # float32 normals: several times faster to draw, plenty for Monte-Carlo noise.
            z = torch.randn(self.block_units, g.n_edges + 1, generator=self.generator, dtype=torch.float32)
            parts.append(g.flat(g.standard_from_normal(z)))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def _draw_orthogonal(self, need: int) -> Tensor:
        """At least ``need`` more draws of the current orthogonal block (a new one when it is spent)."""
        if self._basis is None or self._basis.done == self.block_units:
            self._basis = _OrthogonalBlock(self.block_units, self.generator)
        return self._shape(self._basis.more(need))

    def _shape(self, white: Tensor) -> Tensor:
        """White draws ``(m, P)`` shaped by each grid's ``K^{1/2}``."""
        parts, lo = [], 0
        for g in self.grids:
            u = g.unflat(white[:, lo : lo + g.p].to(device=g.device, dtype=g.dtype))
            parts.append(g.flat(g.sqrt_covariance(u)))
            lo += g.p
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def take(self, n_units: int) -> Tensor:
        """The next ``n_units`` draws, ``(n_units, sum_b p_b)`` (grids concatenated)."""
        parts = []
        need = n_units
        while need > 0:
            if self._buffer is None or self._buffer.shape[0] == 0:
                self._buffer = self._draw_orthogonal(need) if self.orthogonal else self._draw_block()
            part, self._buffer = self._buffer[:need], self._buffer[need:]
            parts.append(part)
            need -= part.shape[0]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class _OrthogonalBlock:
    """``P`` white draws with Haar-random orthonormal directions and chi lengths, made
    as they are used.

    The block's random numbers are drawn whole when it is opened, so the stream does not
    depend on how it is consumed. The directions are the Gram-Schmidt orthonormalisation
    of the Gaussian matrix's columns (the Q of its QR with a positive diagonal of R: Haar
    distributed), and the first ``m`` of them depend on its first ``m`` columns only: they
    are computed on demand, block Gram-Schmidt with reorthogonalisation, so a call that
    uses ``m`` of ``P`` units pays ``O(P m^2)``, not the ``O(P^3)`` of a full basis.
    """

    def __init__(self, p: int, generator: torch.Generator):
        self.gauss = torch.randn(p, p, generator=generator, dtype=torch.float64)
        self.lengths = torch.randn(p, p, generator=generator, dtype=torch.float32).norm(dim=1).to(torch.float64)
        self.basis = torch.empty(p, p, dtype=torch.float64)
        self.done = 0  # directions computed and handed out

    def more(self, count: int) -> Tensor:
        """The next white draws, ``(m, P)``: at least ``count`` (or what is left), and at
        least as many as were made before, so that extensions are few and well sized."""
        p = self.gauss.shape[0]
        lo = self.done
        hi = min(p, lo + max(count, lo))
        known = self.basis[:, :lo]
        new = self.gauss[:, lo:hi]
        for _ in range(2):  # twice is enough (Giraud et al., 2005)
            new = new - known @ (known.T @ new)
        q, r = torch.linalg.qr(new)
        self.basis[:, lo:hi] = q * torch.sign(torch.diagonal(r))
        self.done = hi
        return self.basis[:, lo:hi].T * self.lengths[lo:hi, None]
