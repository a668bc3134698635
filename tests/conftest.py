"""Shared models and helpers for the tests: models whose true gradients are known."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import pytest
import torch
from torch import Tensor

from captum_leg.grid import cell_index

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


def benchmark_script(name: str) -> types.ModuleType:
    """A script of ``benchmarks/`` imported as a module (it is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    """``f(x) = <b, x> + 0.5 * sum_c <x_c, A x_c>`` acting on each channel's pixel vector.

    Works for any spatial shape: ``b`` is ``(C, *spatial)`` and ``A`` is ``P x P`` with
    ``P`` the number of elements per channel.
    """

    def __init__(self, b: Tensor, a: Tensor):
        super().__init__()
        self.b, self.a = b, a  # (C, *spatial), (P, P) symmetric

    def forward(self, x: Tensor) -> Tensor:
        v = x.flatten(2)  # (N, C, HW)
        quad = 0.5 * torch.einsum("ncp,pq,ncq->n", v, self.a, v)
        return (quad + (x * self.b).flatten(1).sum(1))[:, None]

    def gradient(self, x: Tensor) -> Tensor:
        return (x.flatten(2) @ self.a).reshape(x.shape) + self.b


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


# -- any number of spatial axes ---------------------------------------------------------------
def cell_mean_nd(values: Tensor, grid_shape: tuple) -> Tensor:
    """Per-element map holding the mean of ``values`` over each cell of a grid on its
    trailing ``len(grid_shape)`` axes (cells as :func:`captum_leg.grid.cell_index`).

    Cells are boxes, so the box mean is the 1-D cell mean applied along one axis after
    another; each step is a small averaging matrix, independent of the library's code.
    """
    d = len(grid_shape)
    out = values
    for axis, k in enumerate(grid_shape):
        dim = out.dim() - d + axis
        n = out.shape[dim]
        onehot = torch.nn.functional.one_hot(cell_index(n, k), k).to(values.dtype)  # (n, k)
        average = onehot @ (onehot / onehot.sum(0)).T  # (n, n): element -> its cell's mean
        out = torch.movedim(torch.movedim(out, dim, -1) @ average.T, -1, dim)
    return out


class MultiLinearModel(torch.nn.Module):
    """``f(x_1, ..., x_m) = sum_i <W_i[k], x_i>`` for K outputs, any input shapes.

    The gradient of output ``k`` with respect to input ``i`` is ``W_i[k]`` everywhere.
    """

    def __init__(self, *weights: Tensor):
        super().__init__()
        self.weights = weights  # each (K, C_i, *spatial_i)

    def forward(self, *xs: Tensor) -> Tensor:
        return sum(x.flatten(1) @ w.flatten(1).T for x, w in zip(xs, self.weights))
