"""Shared models and helpers for the tests: models whose true gradients are known."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from captum_leg.grid import cell_index

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def cell_mean(pixels: Tensor, k1: int, k2: int) -> Tensor:
    """Per-pixel map holding the mean of ``pixels`` over each grid cell (``(..., H, W)``)."""
    h, w = pixels.shape[-2:]
    rows, cols = cell_index(h, k1), cell_index(w, k2)
    onehot_r = torch.nn.functional.one_hot(rows, k1).to(pixels.dtype)  # (H, k1)
    onehot_c = torch.nn.functional.one_hot(cols, k2).to(pixels.dtype)  # (W, k2)
    sums = torch.einsum("...hw,ha,wb->...ab", pixels, onehot_r, onehot_c)
    means = sums / (onehot_r.sum(0)[:, None] * onehot_c.sum(0)[None, :])
    return means[..., rows, :][..., cols]


class LinearModel(torch.nn.Module):
    """``f(x) = <W_k, x>`` for K outputs: the gradient of output k is ``W_k`` everywhere."""

    def __init__(self, weight: Tensor):
        super().__init__()
        self.weight = weight  # (K, C, H, W)

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("nchw,kchw->nk", x, self.weight)


class QuadraticModel(torch.nn.Module):
    """``f(x) = <b, x> + 0.5 * sum_c <x_c, A x_c>`` acting on each channel's pixel vector."""

    def __init__(self, b: Tensor, a: Tensor):
        super().__init__()
        self.b, self.a = b, a  # (C, H, W), (HW, HW) symmetric

    def forward(self, x: Tensor) -> Tensor:
        v = x.flatten(2)  # (N, C, HW)
        quad = 0.5 * torch.einsum("ncp,pq,ncq->n", v, self.a, v)
        return (quad + (x * self.b).flatten(1).sum(1))[:, None]

    def gradient(self, x: Tensor) -> Tensor:
        return (x.flatten(2) @ self.a).reshape(x.shape) + self.b


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
