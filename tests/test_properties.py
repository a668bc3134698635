"""Property-based tests of ``LEG(model).attribute`` (Hypothesis) through the public API.

Over batch sizes, channels, image sizes, grids that need not divide the image, float32
and float64, LEG and LEG-TV, and every Captum target form (int, tuple, per-example list,
tensor), the map has the input's shape and dtype, is finite, leaves the input untouched,
and does not depend on the batch an example came in: all examples of a call share the
perturbations drawn from the seed, so explaining an example alone gives the same map.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed (captum-leg[test])")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from captum_leg import LEG  # noqa: E402
from captum_leg.grid import cell_index, get_grid  # noqa: E402

CLASSES = 3
SETTINGS = settings(max_examples=25, deadline=None)


class SmoothModel(nn.Module):
    """``tanh(<W_k, x>) + 0.1 <V_k, x>^2``: nonlinear, so the map depends on the input.

    ``rows`` > 0 gives outputs ``(N, rows, K)`` (targets are then ``(row, k)`` tuples).
    """

    def __init__(self, c: int, h: int, w: int, rows: int, dtype: torch.dtype):
        super().__init__()
        g = torch.Generator().manual_seed(c * 10_000 + h * 100 + w)
        shape = (max(rows, 1) * CLASSES, c, h, w)
        self.weight = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) / (h * w) ** 0.5
        self.quad = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) / (h * w) ** 0.5
        self.rows = rows

    def forward(self, x: Tensor) -> Tensor:
        lin = torch.einsum("nchw,kchw->nk", x, self.weight)
        out = torch.tanh(lin) + 0.1 * torch.einsum("nchw,kchw->nk", x, self.quad) ** 2
        return out.reshape(x.shape[0], self.rows, CLASSES) if self.rows else out


@st.composite
def problems(draw, penalty=None):
    n = draw(st.integers(1, 3))
    c = draw(st.sampled_from([1, 3]))
    h, w = draw(st.integers(3, 11)), draw(st.integers(3, 11))
    grid = draw(
        st.one_of(
            st.integers(1, min(h, w)),
            st.tuples(st.integers(1, h), st.integers(1, w)),
        )
    )
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    form = draw(st.sampled_from(["int", "tuple", "list", "tensor"]))
    if form == "int":
        target = draw(st.integers(0, CLASSES - 1))
    elif form == "tuple":
        target = (draw(st.integers(0, 1)), draw(st.integers(0, CLASSES - 1)))
    else:
        labels = draw(st.lists(st.integers(0, CLASSES - 1), min_size=n, max_size=n))
        target = labels if form == "list" else torch.tensor(labels)
    seed = draw(st.integers(0, 2**31 - 1))
    x = torch.rand((n, c, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    model = SmoothModel(c, h, w, rows=2 if form == "tuple" else 0, dtype=dtype)
    kwargs = dict(
        target=target,
        n_samples=2 * draw(st.integers(2, 4)),  # even: antithetic sampling uses pairs
        grid_size=grid,
        seed=draw(st.integers(0, 1000)),
        noise_level=0.05,
    )
    if penalty:
        kwargs.update(penalty=penalty, lam=draw(st.sampled_from([0.1, 0.5])))
    return model, x, kwargs


def _one(target, i: int):
    # the target of example i alone, in the same form
    if isinstance(target, list):
        return target[i : i + 1]
    if isinstance(target, Tensor):
        return target[i : i + 1]
    return target


def _check(model: nn.Module, x: Tensor, kwargs: dict) -> None:
    original = x.clone()
    attr = LEG(model).attribute(x, **kwargs)
    assert torch.equal(x, original), "the input was modified"
    assert attr.shape == x.shape and attr.dtype == x.dtype and attr.device == x.device
    assert torch.isfinite(attr).all()
    scale = float(attr.abs().max()) + 1e-12
    # rounding only (estimators may solve iteratively); a batch-dependence would be O(1)
    tol = 1e-4 if x.dtype == torch.float32 else 1e-6
    for i in range(x.shape[0]):
        alone = LEG(model).attribute(x[i : i + 1], **{**kwargs, "target": _one(kwargs["target"], i)})
        torch.testing.assert_close(alone[0], attr[i], rtol=tol, atol=tol * scale)


def _cell_maps(attr: Tensor, grid_size) -> Tensor:
    """``(N, C, k1, k2)`` cell values (element maps summed over each cell)."""
    k1, k2 = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows = torch.nn.functional.one_hot(cell_index(attr.shape[-2], k1), k1).to(attr.dtype)
    cols = torch.nn.functional.one_hot(cell_index(attr.shape[-1], k2), k2).to(attr.dtype)
    return torch.einsum("nchw,hi,wj->ncij", attr, rows, cols)


def _check_tv(model: nn.Module, x: Tensor, kwargs: dict) -> None:
    """LEG-TV's LP may have several optima, so an example alone must give *an* optimum of
    the batch's problem: feasible for the batch's estimate, with the same total variation."""
    original = x.clone()
    lam = kwargs["lam"]
    kwargs = {k: v for k, v in kwargs.items() if k not in ("penalty", "lam")}
    path = LEG(model).attribute_tv_path(x, lams=[0, lam], **kwargs)
    assert torch.equal(x, original), "the input was modified"
    assert path.shape == (2, *x.shape) and path.dtype == x.dtype and torch.isfinite(path).all()
    k = kwargs["grid_size"]
    estimate, tv = (_cell_maps(m.double(), k) for m in path)
    grid = get_grid(tuple(estimate.shape[-2:]), torch.device("cpu"), torch.float64)
    s = kwargs["noise_level"]
    bound = lam * grid.pinv_t(grid.covariance(estimate, s)).abs().amax(dim=-1)
    tol = 1e-3 if x.dtype == torch.float32 else 1e-5
    for i in range(x.shape[0]):
        alone = LEG(model).attribute(
            x[i : i + 1], **{**kwargs, "target": _one(kwargs["target"], i)}, penalty="tv", lam=lam
        )
        g = _cell_maps(alone.double(), k)[0]
        slack = grid.pinv_t(grid.covariance(g - estimate[i], s)).abs().amax(dim=-1)
        scale = float(bound[i].max()) + 1e-12
        assert (slack <= bound[i] + tol * scale).all(), "not feasible for the batch's problem"
        tv_alone = grid.diff(g).abs().sum(dim=-1)
        tv_batch = grid.diff(tv[i]).abs().sum(dim=-1)
        torch.testing.assert_close(tv_alone, tv_batch, rtol=tol, atol=tol * (float(tv_batch.max()) + 1e-12))


@SETTINGS
@given(problems())
def test_leg_shape_dtype_input_untouched_and_batch_invariance(problem):
    _check(*problem)


@settings(max_examples=12, deadline=None)
@given(problems(penalty="tv"))
def test_leg_tv_shape_dtype_input_untouched_and_batch_invariance(problem):
    _check_tv(*problem)
