"""The estimators on models whose smoothed gradient is known, their standard errors, and
the sampling controls (automatic sample size, the run record, seeds and prefixes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import NoiseTunnel

from captum_leg import LEG
from captum_leg.estimators import MAX_DENSE_FEATURES, estimator_names
from conftest import LinearModel, QuadraticModel, cell_mean

F64 = torch.float64
ESTIMATORS = ("ridge", "least_squares", "moment")


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


class CubicModel(torch.nn.Module):
    """``f(x) = <b, x> + sum_i k_i x_i^3 / 6`` per pixel: odd, so antithetic pairs keep all of it."""

    def __init__(self, b: torch.Tensor, k: torch.Tensor):
        super().__init__()
        self.b, self.k = b, k  # (1, H, W) each

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x * self.b).flatten(1).sum(1) + (self.k * x**3 / 6).flatten(1).sum(1))[:, None]

    def smoothed_gradient(self, x: torch.Tensor, s: float) -> torch.Tensor:
        # E[b + k (x + X)^2 / 2] with Var(X_i) = s^2 (4 + 1/p) on a full-resolution 2-D grid.
        p = x[0, 0].numel()
        return self.b + self.k * (x**2 + s**2 * (4 + 1 / p)) / 2


def quadratic(seed: int, h: int = 8) -> tuple:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(h * h, h * h, generator=g, dtype=F64)
    model = QuadraticModel(torch.randn(1, h, h, generator=g, dtype=F64), (q + q.T) / 4)
    return model, torch.randn(1, 1, h, h, generator=g, dtype=F64)


def cubic(seed: int, h: int = 8) -> tuple:
    g = torch.Generator().manual_seed(seed)
    model = CubicModel(torch.randn(1, h, h, generator=g, dtype=F64), 2 * torch.randn(1, h, h, generator=g, dtype=F64))
    return model, torch.randn(1, 1, h, h, generator=g, dtype=F64)


# -- known gradients ------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["ridge", "least_squares"])
@pytest.mark.parametrize("sampling", ["gaussian", "antithetic"])
def test_regression_is_exact_for_linear_models_once_n_exceeds_p(estimator: str, sampling: str) -> None:
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(2, 3, 12, 12, generator=g, dtype=F64)
    x = torch.randn(2, 3, 12, 12, generator=g, dtype=F64)
    model = lambda t: LinearModel(weight)(t) + 7.0  # noqa: E731  (an offset the intercept absorbs)
    attr = LEG(model).attribute(
        x, target=1, n_samples=40, grid_size=4, estimator=estimator, sampling=sampling, seed=0
    )  # p = 16 cells per channel, 40 samples
    expected = cell_mean(weight[1], 4, 4).expand_as(x)
    assert rel_err(attr, expected) < 1e-6


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_quadratic_model_is_estimated_consistently(estimator: str) -> None:
    model, x = quadratic(3, h=6)
    expected = model.gradient(x)  # E[grad f(x0 + X)] = grad f(x0) for a quadratic
    errs = [
        np.mean(
            [
                rel_err(
                    LEG(model).attribute(
                        x, n_samples=n, grid_size=6, noise_level=0.5, estimator=estimator,
                        sampling="gaussian", seed=s,
                    ),
                    expected,
                )
                for s in range(3)
            ]
        )
        for n in (500, 8000)
    ]
    assert errs[1] < 0.5 * errs[0], errs  # 16 x the samples: about 4 x smaller
    assert errs[1] < 0.15, errs


def test_ridge_beats_the_moment_estimator_and_degrades_gracefully_below_p() -> None:
    model, x = quadratic(4, h=8)  # p = 64 cells
    expected = model.gradient(x)
    kw = dict(grid_size=8, noise_level=0.5, sampling="gaussian")
    for n in (16, 48, 200):
        err = {
            est: np.mean(
                [
                    rel_err(LEG(model).attribute(x, n_samples=n, estimator=est, seed=s, **kw), expected)
                    for s in range(4)
                ]
            )
            for est in ("ridge", "moment")
        }
        assert err["ridge"] < err["moment"], (n, err)
        assert err["ridge"] < 1.05, (n, err)  # shrinks towards 0 rather than blowing up


# -- standard errors --------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("sampling", ["gaussian", "antithetic"])
def test_two_standard_errors_cover_95_percent(estimator: str, sampling: str) -> None:
    # Gaussian sampling: a quadratic model (the residual of a linear fit is its quadratic
    # part); antithetic pairs cancel that, so they get a cubic model instead.
    covered, z2, cells = 0.0, 0.0, 0
    for seed in range(40):
        if sampling == "gaussian":
            model, x = quadratic(seed % 8)
            truth = model.gradient(x)
        else:
            model, x = cubic(seed % 8)
            truth = model.smoothed_gradient(x, 0.5)
        attr, se = LEG(model).attribute(
            x, n_samples=400, grid_size=8, noise_level=0.5, estimator=estimator,
            sampling=sampling, seed=100 + seed, return_standard_error=True,
        )
        err = attr - truth
        covered += float((err.abs() <= 2 * se).double().sum())
        z2 += float((err / se).pow(2).sum())
        cells += err.numel()
    coverage, z_rms = covered / cells, (z2 / cells) ** 0.5
    assert 0.93 <= coverage <= 0.97, (coverage, z_rms)
    assert 0.85 < z_rms < 1.15, (coverage, z_rms)


@pytest.mark.parametrize("sampling", ["gaussian", "antithetic"])
def test_structured_ridge_on_a_full_resolution_grid(sampling: str) -> None:
    # 64 x 64 = 4096 cells > MAX_DENSE_FEATURES: ridge runs in its structured form.
    assert 64 * 64 > MAX_DENSE_FEATURES
    g = torch.Generator().manual_seed(1)
    weight = torch.zeros(1, 1, 64, 64, dtype=F64)
    weight[..., 16:40, 20:44] = torch.randn(24, 24, generator=g, dtype=F64)
    x = torch.randn(1, 1, 64, 64, generator=g, dtype=F64)
    model = LinearModel(weight)
    kw = dict(target=0, n_samples=300, grid_size=64, noise_level=0.3, sampling=sampling)
    ridge = LEG(model).attribute(x, seed=0, **kw)
    moment = LEG(model).attribute(x, seed=0, estimator="moment", **kw)
    truth = weight[0]
    assert rel_err(ridge, truth) < 0.6 * rel_err(moment, truth)
    # Its standard errors leave out part of the design's variance (docs/method.md): the
    # call says so rather than return them silently.
    with pytest.warns(UserWarning, match="structured ridge.*approximate"):
        LEG(model).attribute(x, seed=0, return_standard_error=True, **kw)


# -- automatic sample size and the run record ---------------------------------------------------
def test_target_precision_samples_in_rounds_until_reached() -> None:
    model, x = quadratic(5)
    calls = []

    def counting(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape[0])
        return model(t)

    leg = LEG(counting)
    kw = dict(grid_size=8, noise_level=0.5, seed=0, sampling="gaussian")
    leg.attribute(x, n_samples=20000, target_precision=0.1, **kw)
    run = leg.last_run
    assert run is not None and run.rounds >= 2 and bool(run.converged.all())
    assert float(run.relative_standard_error.max()) <= 0.1
    assert run.forward_passes == sum(calls) == run.samples_per_channel + 1
    assert run.samples_per_channel < 20000  # stopped before the cap
    # A precision the cap cannot reach: it spends the cap and says so.
    leg.attribute(x, n_samples=200, target_precision=0.001, **kw)
    assert leg.last_run.samples_per_channel == 200 and not bool(leg.last_run.converged.any())
    # Rounds at most double: 25 -> 50 -> 100 -> 200 (the first round is an eighth).
    assert leg.last_run.rounds == 4
    # Without a target: one round of exactly n_samples, and the precision reached.
    leg.attribute(x, n_samples=300, return_standard_error=True, **kw)
    assert leg.last_run.rounds == 1 and leg.last_run.forward_passes == 301
    assert leg.last_run.relative_standard_error.shape == (1,)


def test_a_run_is_a_prefix_of_a_longer_run_with_the_same_seed() -> None:
    # The noise stream of each channel depends on the seed only, so n_samples=n draws the
    # first n perturbations of any longer run (what benchmarks/precision.py relies on).
    model, x = quadratic(6)
    seen = {}
    for n in (40, 100):
        batches = []
        LEG(lambda t: (batches.append(t.clone()), model(t))[1]).attribute(
            x, n_samples=n, grid_size=4, seed=9, perturbations_per_eval=16, sampling="gaussian"
        )
        seen[n] = torch.cat(batches[1:])  # perturbed inputs, after f(x0)
    torch.testing.assert_close(seen[100][:40], seen[40])


# -- arguments ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(estimator="ols"), ValueError, "estimator"),
        (dict(estimator=1), TypeError, "estimator"),
        (dict(estimator="least_squares", n_samples=10), ValueError, "n_samples.*least_squares"),
        (dict(target_precision=0), ValueError, "target_precision"),
        (dict(target_precision="high"), TypeError, "target_precision"),
        (dict(perturb="all"), ValueError, "perturb"),
        (dict(solver="hgihs"), ValueError, "solver"),  # checked even without penalty="tv"
        (dict(solver_options=[1]), TypeError, "solver_options"),
        (dict(show_progress="yes"), TypeError, "show_progress"),
    ],
)
def test_every_argument_is_checked_even_when_unused(kwargs, exc, words) -> None:
    model, x = quadratic(0, h=4)
    args = dict(n_samples=20, grid_size=4, seed=0)
    args.update(kwargs)
    with pytest.raises(exc, match=words):
        LEG(model).attribute(x, **args)


def test_estimator_names() -> None:
    assert set(ESTIMATORS) <= set(estimator_names())


def test_standard_errors_are_refused_inside_noise_tunnel() -> None:
    model, x = quadratic(0, h=4)
    nt = NoiseTunnel(LEG(model))
    with pytest.raises(ValueError, match="return_standard_error.*NoiseTunnel"):
        nt.attribute(x, nt_samples=2, n_samples=20, grid_size=4, return_standard_error=True)
    out = nt.attribute(x, nt_samples=2, n_samples=20, grid_size=4)
    assert out.shape == x.shape
