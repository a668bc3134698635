"""The ridge prior's envelope: where on the grid the gradient is large, learnt from the data.

A network's cell gradient is concentrated on the object and, among the channels of an
input, in the same places (the magnitudes of the channel maps are alike even where their
signs are not). The envelope ``v`` (one value per cell, shared by the channels of an
input, mean one) scales the prior's variance cell by cell. Each update is an
expectation-maximisation step for the prior variances, ``E[beta_j^2] / tau^2`` averaged
over the input's channels, followed by a Gaussian smoothing over neighbouring cells, so
a cell borrows strength from its neighbours and from the other channels.
"""

from __future__ import annotations

import math
from typing import Dict, Iterator, List, Sequence

import torch
from torch import Tensor

from captum_leg.estimators.base import GroupContext
from captum_leg.estimators.spectral_fit import SpectralFit
from captum_leg.grid import Grid

#: Lowest envelope value, relative to its mean: no cell's prior is shut completely.
FLOOR = 1e-3


def envelope_scales(fits: Sequence[SpectralFit], contexts: Sequence[GroupContext], smoothing: float) -> Iterator[Tensor]:
    """The prior scales ``(N, P)`` of each group after one update from the current fits."""
    seconds = []
    for fit in fits:
        tau2 = fit.tau2.clamp_min(torch.finfo(fit.tau2.dtype).tiny)[:, None]
        seconds.append((fit.coef**2 + fit.posterior_var) / tau2)  # E[beta_j^2] / tau^2, (N, P)
    return _scales(seconds, contexts, smoothing)


def initial_scales(moments: Sequence[Tensor], contexts: Sequence[GroupContext], smoothing: float) -> Iterator[Tensor]:
    """The first envelope, from the moment estimates ``Sigma^{-1} X^T y / n`` ``(N, P)``.

    The moment estimate is unbiased whatever the signal, so it cannot mistake a smooth
    signal for noise, as a first fit with a white prior can when there are fewer units
    than cells (it then shrinks everything to zero and leaves the envelope flat).
    """
    seconds = []
    for m in moments:
        seconds.append(m**2 / (m**2).mean(-1, keepdim=True).clamp_min(torch.finfo(m.dtype).tiny))
    return _scales(seconds, contexts, smoothing)


def _scales(seconds: Sequence[Tensor], contexts: Sequence[GroupContext], smoothing: float) -> Iterator[Tensor]:
    """Average each input's per-cell second moments over its channels, smooth, normalise."""
    energy: Dict[int, Tensor] = {}
    count: Dict[int, int] = {}
    grids: Dict[int, Grid] = {}
    for second, ctx in zip(seconds, contexts):
        for block, index in zip(ctx.group.blocks, ctx.inputs):
            part = block.part(second)  # (N, *grid)
            energy[index] = energy[index] + part if index in energy else part
            count[index] = count.get(index, 0) + 1
            grids[index] = block.grid
    shapes: Dict[int, Tensor] = {}
    for index, total in energy.items():
        grid = grids[index]
        smooth = gaussian_smooth(total / count[index], grid.ndim, smoothing)
        mean = grid.total(smooth, keepdim=True) / grid.p
        shapes[index] = (smooth / mean.clamp_min(torch.finfo(mean.dtype).tiny)).clamp_min(FLOOR)
    for ctx in contexts:
        parts: List[Tensor] = [b.grid.flat(shapes[i]) for b, i in zip(ctx.group.blocks, ctx.inputs)]
        yield torch.cat(parts, -1) if len(parts) > 1 else parts[0]


def gaussian_smooth(t: Tensor, ndim: int, sigma: float) -> Tensor:
    """Separable Gaussian smoothing of the last ``ndim`` axes (edges extended)."""
    if sigma <= 0:
        return t
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=t.dtype, device=t.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).reshape(1, 1, -1)
    for axis in range(-ndim, 0):
        moved = t.movedim(axis, -1)
        flat = moved.reshape(-1, 1, moved.shape[-1])
        padded = torch.nn.functional.pad(flat, (radius, radius), mode="replicate")
        out = torch.nn.functional.conv1d(padded, kernel)
        t = out.reshape(moved.shape).movedim(-1, axis)
    return t
