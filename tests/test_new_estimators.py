"""The ridge estimator below ``n = p``, estimator instances, the autograd gradient path and
orthogonal sampling, on models whose smoothed gradient is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from captum_leg import LEG
from captum_leg.estimators import GradientEstimator, RidgeEstimator
from captum_leg.grid import get_grid
from captum_leg.sampling import NoiseStream
from conftest import LinearModel, QuadraticModel, cell_mean

F64 = torch.float64


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def blocks_model(size: int = 16):
    """A linear model with a piecewise-constant gradient: two blocks on a zero background."""
    weight = torch.zeros(1, 1, size, size, dtype=F64)
    weight[..., 2:8, 3:10] = 1.0
    weight[..., 9:14, 8:15] = -0.7
    return LinearModel(weight), weight


class _Design(RidgeEstimator):
    """Ridge, keeping the design and responses it saw (to compute the minimum-norm fit)."""

    def estimate(self, accumulators, contexts):  # type: ignore[no-untyped-def]
        self.seen = [(torch.cat(list(ctx.replay())), acc.responses()) for acc, ctx in zip(accumulators, contexts)]
        return super().estimate(accumulators, contexts)


# -- ridge below n = p (issue: it used to shrink a noiseless signal to zero) -----------------
@pytest.mark.parametrize("sampling", ["antithetic", "orthogonal"])
def test_ridge_below_p_on_a_noiseless_linear_model_approaches_the_minimum_norm_fit(sampling: str) -> None:
    model, weight = blocks_model()
    x = torch.zeros(1, 1, 16, 16, dtype=F64)
    truth = cell_mean(weight[0], 16, 16)[None]
    kw = dict(target=0, n_samples=500, grid_size=16, noise_level=0.09, sampling=sampling)  # 250 pairs, 256 cells
    for seed in range(3):
        est = _Design()
        ridge = LEG(model).attribute(x, seed=seed, estimator=est, **kw)
        design, y = est.seen[0]
        min_norm = design.T @ torch.linalg.solve(design @ design.T, y[:, 0])  # X^T (X X^T)^{-1} y
        err_min_norm = rel_err(min_norm.reshape(1, 1, 16, 16), truth)
        assert rel_err(ridge, truth) <= err_min_norm, (rel_err(ridge, truth), err_min_norm)
        # the marginal likelihood with a white prior (captum-leg 0.1's ridge) takes the
        # smooth signal for noise and shrinks it to nearly zero
        old = LEG(model).attribute(x, seed=seed, estimator=RidgeEstimator(penalty="evidence", envelope=False), **kw)
        assert rel_err(old, truth) > 0.8


class BlocksWithNoise(torch.nn.Module):
    """The blocks model plus ``0.5 sin(1000 <r, x>)``: odd, so symmetric pairs keep it, and so
    fast that its smoothed gradient, ``500 r E[cos(1000 <r, x0 + X>)]``, is zero to machine
    precision (``Var <r, X> ~ 0.03``): noise for a linear fit on a piecewise-constant truth."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.weight = blocks_model()
        r = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(9), dtype=F64)
        self.r = r / r.norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + 0.5 * torch.sin(1000 * (self.r * x).flatten(1).sum(1, keepdim=True))


def test_leg_tv_fed_by_ridge_beats_ridge_on_piecewise_constant_truth_at_small_n() -> None:
    model = BlocksWithNoise()
    x = torch.zeros(1, 1, 16, 16, dtype=F64)
    truth = cell_mean(model.weight[0], 16, 16)[None]
    kw = dict(n_samples=1000, grid_size=16, noise_level=0.09)  # 500 pairs, 256 cells
    err_leg, err_tv = [], []
    for seed in range(3):
        path = LEG(model).attribute_tv_path(x, lams=[0, 0.1], seed=seed, **kw)
        err_leg.append(rel_err(path[0], truth))
        err_tv.append(rel_err(path[1], truth))
    # measured 0.34 vs 0.41 (the moment estimator, whose flat prior suits a smooth truth
    # better than ridge's: 0.21 with LEG-TV, 0.26 without; docs/method.md)
    assert np.mean(err_tv) < 0.9 * np.mean(err_leg), (err_tv, err_leg)


# -- estimator instances -----------------------------------------------------------------------
def test_an_estimator_instance_carries_its_hyperparameters() -> None:
    g = torch.Generator().manual_seed(0)
    model = QuadraticModel(torch.randn(3, 8, 8, generator=g, dtype=F64), torch.randn(64, 64, generator=g, dtype=F64) / 8)
    x = torch.randn(1, 3, 8, 8, generator=g, dtype=F64)
    kw = dict(n_samples=60, grid_size=8, noise_level=0.5, seed=1)
    default = LEG(model).attribute(x, **kw)
    by_name = LEG(model).attribute(x, estimator="ridge", **kw)
    same = LEG(model).attribute(x, estimator=RidgeEstimator(), **kw)
    white = LEG(model).attribute(x, estimator=RidgeEstimator(envelope=False), **kw)
    torch.testing.assert_close(default, by_name)
    torch.testing.assert_close(default, same)
    assert rel_err(white, default) > 1e-3  # the hyperparameter changes the map
    est = RidgeEstimator(envelope_smoothing=2.0, envelope_iterations=3)
    assert est.get_params() == dict(penalty="gcv", envelope=True, envelope_smoothing=2.0, envelope_iterations=3)
    assert repr(est).startswith("RidgeEstimator(penalty='gcv'") and est == RidgeEstimator(envelope_smoothing=2.0, envelope_iterations=3)
    leg = LEG(model)
    leg.attribute(x, estimator=est, **kw)
    assert leg.last_run.estimator == "ridge"


@pytest.mark.parametrize(
    "est, words",
    [
        (RidgeEstimator(penalty="aic"), "RidgeEstimator.penalty"),
        (RidgeEstimator(envelope_smoothing=-1.0), "RidgeEstimator.envelope_smoothing"),
        (RidgeEstimator(envelope_iterations=0), "RidgeEstimator.envelope_iterations"),
        (RidgeEstimator(penalty="evidence"), "envelope=False"),
    ],
)
def test_bad_hyperparameters_are_named(est, words) -> None:
    model = LinearModel(torch.ones(1, 1, 4, 4, dtype=F64))
    with pytest.raises(ValueError, match=words):
        LEG(model).attribute(torch.zeros(1, 1, 4, 4, dtype=F64), target=0, n_samples=8, grid_size=2, estimator=est)


def test_estimator_must_be_a_name_or_an_instance() -> None:
    model = LinearModel(torch.ones(1, 1, 4, 4, dtype=F64))
    with pytest.raises(TypeError, match="estimator.*Estimator instance"):
        LEG(model).attribute(torch.zeros(1, 1, 4, 4, dtype=F64), target=0, estimator=RidgeEstimator)


# -- the gradient path ---------------------------------------------------------------------------
@pytest.mark.parametrize("sampling", ["orthogonal", "gaussian"])
def test_gradient_path_is_exact_for_linear_models(sampling: str) -> None:
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(2, 3, 12, 12, generator=g, dtype=F64)
    x = torch.randn(2, 3, 12, 12, generator=g, dtype=F64)
    leg = LEG(LinearModel(weight))
    attr = leg.attribute(x, target=1, estimator="gradient", n_samples=4, grid_size=4, sampling=sampling, seed=0)
    torch.testing.assert_close(attr, cell_mean(weight[1], 4, 4).expand_as(x))
    assert leg.last_run.backward_passes == leg.last_run.forward_passes == 3 * 4


def test_gradient_path_pairs_are_exact_for_quadratic_models() -> None:
    # grad f(x0 + X) = grad f(x0) + A X: the mean over a pair cancels A X exactly.
    g = torch.Generator().manual_seed(3)
    q = torch.randn(36, 36, generator=g, dtype=F64)
    model = QuadraticModel(torch.randn(2, 6, 6, generator=g, dtype=F64), (q + q.T) / 4)
    x = torch.randn(1, 2, 6, 6, generator=g, dtype=F64)
    attr = LEG(model).attribute(x, estimator="gradient", n_samples=4, grid_size=6, noise_level=0.5, seed=0)
    torch.testing.assert_close(attr, model.gradient(x))


class TanhModel(torch.nn.Module):
    """``tanh(<w, x>) + <v, x>^3 / 3``: smooth, with a smoothed gradient that is not its gradient at x0."""

    def __init__(self, c: int = 2, h: int = 8):
        super().__init__()
        g = torch.Generator().manual_seed(4)
        self.w = torch.randn(c, h, h, generator=g, dtype=F64) / h
        self.v = torch.randn(c, h, h, generator=g, dtype=F64) / h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = (x * self.w).flatten(1).sum(1)
        b = (x * self.v).flatten(1).sum(1)
        return (torch.tanh(a) + b**3 / 3)[:, None]


def test_gradient_path_agrees_with_the_black_box_estimate_within_standard_errors() -> None:
    model = TanhModel()
    x = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(5), dtype=F64)
    kw = dict(grid_size=4, noise_level=0.3, return_standard_error=True)
    grad, se_g = LEG(model).attribute(x, estimator="gradient", n_samples=400, seed=1, **kw)
    ridge, se_r = LEG(model).attribute(x, n_samples=4000, seed=2, **kw)
    z = (grad - ridge) / (se_g**2 + se_r**2).sqrt()
    assert float(z.pow(2).mean().sqrt()) < 1.5, z
    assert rel_err(ridge, grad) < 0.2


def test_gradient_path_standard_errors_cover_the_smoothed_gradient() -> None:
    # f = <b, x> + sum k x^3 / 6 per pixel on a full-resolution grid: E[grad] is known. The
    # unit gradients b + k (x0^2 + X^2) / 2 are skewed (chi-square), so the t-interval needs
    # some 200 independent pairs to cover as advertised. (Orthogonal pairs make sum X^2
    # nearly constant, so their per-unit spread overstates this error: conservative.)
    covered, cells = 0.0, 0
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        b, k = torch.randn(1, 6, 6, generator=g, dtype=F64), 2 * torch.randn(1, 6, 6, generator=g, dtype=F64)
        model = lambda t, b=b, k=k: ((t * b).flatten(1).sum(1) + (k * t**3 / 6).flatten(1).sum(1))[:, None]  # noqa: E731
        x = torch.randn(1, 1, 6, 6, generator=g, dtype=F64)
        s = 0.5
        truth = b + k * (x**2 + s**2 * (4 + 1 / 36)) / 2  # Var of a cell on a 2-D Dirichlet grid
        attr, se = LEG(model).attribute(x, estimator="gradient", n_samples=400, grid_size=6, noise_level=s,
                                        sampling="antithetic", seed=seed, return_standard_error=True)
        covered += float(((attr - truth).abs() <= 2 * se).double().sum())
        cells += attr.numel()
    assert 0.93 <= covered / cells <= 0.97, covered / cells


def test_gradient_path_on_signals_tuples_joint_noise_and_leg_tv() -> None:
    g = torch.Generator().manual_seed(6)
    w1, w2 = torch.randn(1, 2, 40, generator=g, dtype=F64), torch.randn(1, 1, 6, 6, generator=g, dtype=F64)
    model = lambda a, b: (a * w1).flatten(1).sum(1, keepdim=True) + (b * w2).flatten(1).sum(1, keepdim=True)  # noqa: E731
    xs = (torch.randn(2, 2, 40, generator=g, dtype=F64), torch.randn(2, 1, 6, 6, generator=g, dtype=F64))
    for perturb in ("channel", "joint"):
        out = LEG(model).attribute(xs, estimator="gradient", n_samples=4, grid_size=(10, 3), perturb=perturb, seed=0)
        assert isinstance(out, tuple)
        torch.testing.assert_close(out[0], w1.reshape(1, 2, 10, 4).mean(-1).repeat_interleave(4, -1).expand_as(xs[0]))
        torch.testing.assert_close(out[1], cell_mean(w2[0], 3, 3).expand_as(xs[1]))
    path = LEG(model).attribute_tv_path(xs, lams=[0, 0.3], estimator="gradient", n_samples=4, grid_size=(10, 3), seed=0)
    assert path[0].shape == (2, *xs[0].shape) and path[1].shape == (2, *xs[1].shape)


def test_gradient_path_refuses_a_model_autograd_cannot_differentiate() -> None:
    def detached(t: torch.Tensor) -> torch.Tensor:
        return t.detach().flatten(1).sum(1, keepdim=True)

    with pytest.raises(ValueError, match="estimator='gradient'.*autograd"):
        LEG(detached).attribute(torch.zeros(1, 1, 4, 4), estimator="gradient", n_samples=4, grid_size=2)
    assert GradientEstimator().default_samples == 332


def test_gradient_path_defaults_cost_under_a_thousand_passes_per_rgb_image() -> None:
    model = LinearModel(torch.ones(1, 3, 8, 8, dtype=F64))
    leg = LEG(model)
    leg.attribute(torch.zeros(1, 3, 8, 8, dtype=F64), target=0, estimator="gradient", grid_size=2)
    assert leg.last_run.forward_passes == leg.last_run.backward_passes == 996
    leg.attribute(torch.zeros(1, 3, 8, 8, dtype=F64), target=0, grid_size=2)
    assert leg.last_run.forward_passes == 3000 and leg.last_run.backward_passes == 0


# -- orthogonal sampling ---------------------------------------------------------------------------
def test_orthogonal_blocks_are_gaussian_one_at_a_time_and_orthogonal_together() -> None:
    grid = get_grid((5, 6))
    p = grid.p
    stream = NoiseStream([grid], seed=7, orthogonal=True)
    draws = stream.take(400 * p)  # 400 blocks
    # each draw has covariance K = L + 1 1^T / p
    eye = torch.eye(p, dtype=F64).reshape(p, 5, 6)
    k = grid.flat(grid.covariance(eye))
    emp = draws.T @ draws / draws.shape[0]
    assert float((emp - k).abs().max()) < 0.06 * float(k.abs().max())
    # within a block, whitened draws are orthogonal: K^{-1/2} X rows are r_i q_i
    block = draws[:p]
    white = torch.linalg.solve(torch.linalg.cholesky(k), block.T).T  # any whitening keeps orthogonality
    gram = white @ white.T
    off = gram - torch.diag(torch.diagonal(gram))
    assert float(off.abs().max()) < 1e-8 * float(torch.diagonal(gram).max())
    # a stream is a prefix of a longer stream, whatever the chunks
    again = NoiseStream([grid], seed=7, orthogonal=True)
    torch.testing.assert_close(torch.cat([again.take(7), again.take(p + 5)]), draws[: p + 12])


def test_orthogonal_sampling_makes_the_moment_estimator_far_more_precise() -> None:
    g = torch.Generator().manual_seed(8)
    weight = torch.randn(1, 1, 8, 8, generator=g, dtype=F64)
    x = torch.randn(1, 1, 8, 8, generator=g, dtype=F64)
    truth = cell_mean(weight[0], 8, 8)[None]
    kw = dict(target=0, n_samples=256, grid_size=8, estimator="moment")  # two full blocks of 64 pairs
    err = {s: np.mean([rel_err(LEG(LinearModel(weight)).attribute(x, sampling=s, seed=i, **kw), truth) for i in range(4)])
           for s in ("antithetic", "orthogonal")}
    # independent pairs: error ~ sqrt(p / n) ~ 0.7; orthogonal blocks leave only the lengths' spread
    assert err["orthogonal"] < 0.3 * err["antithetic"], err


# -- half precision -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_get_standard_errors_that_cover_the_rounding(dtype) -> None:
    covered, z2, cells = 0.0, 0.0, 0
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(3, 32, 32, generator=g) / 32
        x = (20 + torch.randn(1, 3, 32, 32, generator=g)).to(dtype)  # rounding steps of 1/64 (fp16), 1/8 (bf16)
        model = lambda t, w=w: (t * w.to(t.dtype)).flatten(1).sum(1, keepdim=True)  # noqa: E731
        with pytest.warns(UserWarning, match=f"inputs in {dtype}"):
            attr, se = LEG(model).attribute(x, target=0, n_samples=600, grid_size=8, seed=seed, return_standard_error=True)
        assert attr.dtype == dtype
        truth = cell_mean(w.double(), 8, 8)
        z = (attr[0].double() - truth) / se[0].double()
        covered += float((z.abs() <= 2).double().sum())
        z2 += float(z.pow(2).sum())
        cells += z.numel()
    assert 0.9 <= covered / cells <= 0.99 and (z2 / cells) ** 0.5 < 1.3, (covered / cells, (z2 / cells) ** 0.5)


def test_float32_inputs_do_not_warn() -> None:
    import warnings

    model = LinearModel(torch.ones(1, 1, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LEG(model).attribute(torch.zeros(1, 1, 4, 4), target=0, n_samples=8, grid_size=2)
