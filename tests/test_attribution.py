"""LEG against models with known gradients, and the Captum API contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from captum.attr import NoiseTunnel, PerturbationAttribution
from captum.attr import visualization as viz
from captum.metrics import sensitivity_max

from captum_leg import LEG, LinearlyEstimatedGradient
from conftest import LinearModel, QuadraticModel, cell_mean

F64 = torch.float64


def linear_setup(n_out: int = 3, c: int = 3, h: int = 12, w: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(n_out, c, h, w, generator=g, dtype=F64)
    x = torch.randn(2, c, h, w, generator=g, dtype=F64)
    return LinearModel(weight), weight, x


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# -- known gradients ----------------------------------------------------------------------
def test_linear_model_converges_like_one_over_sqrt_n() -> None:
    model, weight, x = linear_setup()
    expected = cell_mean(weight[1], 4, 4).expand_as(x)
    errs = {}
    for n in (200, 3200):
        errs[n] = np.mean(
            [
                rel_err(
                    LEG(model).attribute(x, target=1, n_samples=n, grid_size=4, seed=s, estimator="moment"),
                    expected,
                )
                for s in range(3)
            ]
        )
    # 16 x more samples -> 4 x smaller error (Monte-Carlo rate), with slack for noise.
    ratio = errs[200] / errs[3200]
    assert 2.8 < ratio < 5.7, errs
    assert errs[3200] < 0.12


def test_linear_model_uneven_cells_and_rectangular_grid() -> None:
    model, weight, x = linear_setup(c=2, h=13, w=10)
    attr = LEG(model).attribute(x, target=0, n_samples=20000, grid_size=(4, 3), seed=3)
    expected = cell_mean(weight[0], 4, 3).expand_as(x)
    assert rel_err(attr, expected) < 0.05


def test_quadratic_model_gives_gradient_at_x0() -> None:
    g = torch.Generator().manual_seed(5)
    h = w = 6
    q = torch.randn(h * w, h * w, generator=g, dtype=F64)
    model = QuadraticModel(torch.randn(1, h, w, generator=g, dtype=F64), (q + q.T) / 4)
    x = 2 * torch.randn(1, 1, h, w, generator=g, dtype=F64)
    expected = model.gradient(x)  # full-resolution grid: cells are pixels
    # Antithetic pairs: (f(x0 + X) - f(x0 - X)) / 2 = <grad f(x0), X> exactly, so the
    # regression on the pairs returns the gradient up to rounding.
    attr = LEG(model).attribute(
        x, n_samples=4000, grid_size=6, sampling="antithetic", noise_level=0.5, seed=0
    )
    assert rel_err(attr, expected) < 1e-6
    # Gaussian sampling is unbiased too (the quadratic term only adds variance): the
    # error is what the standard error says. If it is calibrated, ||error|| / ||SE|| is
    # about chi_p / sqrt(p) (p = 36 cells), which exceeds 3 with negligible probability.
    leg = LEG(model)
    gauss, se = leg.attribute(
        x, n_samples=40000, grid_size=6, sampling="gaussian", noise_level=0.5, seed=1, return_standard_error=True
    )
    assert leg.last_run.forward_passes == 40000 + 1  # one-sided draws need f(x0)
    assert float((gauss - expected).norm()) < 3 * float(se.norm())
    assert float(se.norm() / expected.norm()) < 0.05  # and it is small at this n


def test_antithetic_cancels_the_even_part() -> None:
    g = torch.Generator().manual_seed(2)
    q = torch.randn(64, 64, generator=g, dtype=F64)
    model = QuadraticModel(torch.randn(1, 8, 8, generator=g, dtype=F64), 5 * (q + q.T))
    # Near x0 = 0 the even (quadratic) part dominates the response: pairs cancel it.
    x = 0.1 * torch.randn(1, 1, 8, 8, generator=g, dtype=F64)
    expected = cell_mean(model.gradient(x), 4, 4)
    kw = dict(n_samples=2000, grid_size=4, noise_level=0.3, estimator="moment")
    err_g = np.mean(
        [rel_err(LEG(model).attribute(x, seed=s, sampling="gaussian", **kw), expected) for s in range(3)]
    )
    err_a = np.mean(
        [rel_err(LEG(model).attribute(x, seed=s, sampling="antithetic", **kw), expected) for s in range(3)]
    )
    assert err_a < 0.5 * err_g


def test_moment_standard_error_is_calibrated() -> None:
    model, weight, x = linear_setup(c=1, h=8, w=8)
    x = x[:1]
    kw = dict(target=2, n_samples=300, grid_size=4, estimator="moment")
    runs = [LEG(model).attribute(x, seed=s, return_standard_error=True, **kw) for s in range(40)]
    maps = torch.stack([r[0] for r in runs])
    ses = torch.stack([r[1] for r in runs])
    empirical = maps.std(0)
    reported = ses.mean(0)
    ratio = float((reported / empirical).mean())
    assert 0.8 < ratio < 1.25, ratio
    # About 95% of cells lie within 2 SE of the truth.
    expected = cell_mean(weight[2], 4, 4)
    coverage = float(((maps - expected).abs() <= 2 * ses).double().mean())
    assert 0.9 < coverage < 0.99, coverage


def test_contrast_target_explains_the_difference() -> None:
    model, weight, x = linear_setup()
    attr = LEG(model).attribute(x, target=0, contrast_target=2, n_samples=8000, grid_size=3, seed=0)
    expected = cell_mean(weight[0] - weight[2], 3, 3).expand_as(x)
    assert rel_err(attr, expected) < 0.1
    # The probability-contrast recipe of the reference: softmax in the forward function.
    leg = LEG(lambda t: model(t).softmax(-1))
    kw = dict(target=0, n_samples=64, grid_size=3, seed=0)
    probs = leg.attribute(x, contrast_target=[1, 2], **kw)
    # one contrast per example: each example's map is its own contrast's
    alone = [leg.attribute(x[i : i + 1], contrast_target=c, **kw) for i, c in enumerate((1, 2))]
    torch.testing.assert_close(probs, torch.cat(alone))
    assert not torch.allclose(alone[0], leg.attribute(x[:1], contrast_target=2, **kw))


# -- API contract ---------------------------------------------------------------------------
def test_is_a_captum_perturbation_attribution() -> None:
    leg = LinearlyEstimatedGradient(lambda t: t.sum((1, 2, 3)))
    assert isinstance(leg, PerturbationAttribution)
    assert LEG is LinearlyEstimatedGradient
    assert leg.multiplies_by_inputs is False
    assert hasattr(LEG.attribute, "__wrapped__")
    with pytest.raises(NotImplementedError):
        leg.attribute_future(torch.zeros(1, 1, 2, 2))


def test_tensor_in_tensor_out_tuple_in_tuple_out_dtype_device() -> None:
    model, _, x = linear_setup()
    x32 = x.float()
    leg = LEG(lambda t: model(t.double()).float())
    out = leg.attribute(x32, target=0, n_samples=8, grid_size=4, seed=0)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == torch.float32
    assert out.device == x32.device
    out_t = leg.attribute((x32,), target=0, n_samples=8, grid_size=4, seed=0)
    assert isinstance(out_t, tuple) and len(out_t) == 1
    torch.testing.assert_close(out_t[0], out)


def test_targets_in_every_captum_form() -> None:
    model, _, x = linear_setup()
    leg = LEG(model)
    kw = dict(n_samples=16, grid_size=4, seed=7)
    per_example = [leg.attribute(x[i : i + 1], target=t, **kw) for i, t in enumerate((2, 0))]
    expected = torch.cat(per_example)
    for target in ([2, 0], torch.tensor([2, 0])):
        torch.testing.assert_close(leg.attribute(x, target=target, **kw), expected)
    same = leg.attribute(x, target=torch.tensor(1), **kw)
    torch.testing.assert_close(same, leg.attribute(x, target=1, **kw))
    # Outputs with two trailing dims: a tuple index, and one tuple per example.
    model3 = lambda t: model(t).reshape(-1, 1, 3)  # noqa: E731
    torch.testing.assert_close(LEG(model3).attribute(x, target=(0, 2), **kw), leg.attribute(x, target=2, **kw))
    torch.testing.assert_close(LEG(model3).attribute(x, target=[(0, 2), (0, 0)], **kw), expected)
    # A model returning one scalar per example needs no target.
    scalar = LEG(lambda t: model(t)[:, 1]).attribute(x, **kw)
    torch.testing.assert_close(scalar, leg.attribute(x, target=1, **kw))


def test_batch_invariance_and_perturbations_per_eval() -> None:
    model, _, x = linear_setup()
    leg = LEG(model)
    kw = dict(target=1, n_samples=40, grid_size=4, seed=11)
    for sampling, sizes in (("gaussian", (1, 7, 200)), ("antithetic", (1, 3, 64))):
        both = leg.attribute(x, sampling=sampling, **kw)
        torch.testing.assert_close(both[1:], leg.attribute(x[1:], sampling=sampling, **kw))
        for ppe in sizes:
            torch.testing.assert_close(leg.attribute(x, sampling=sampling, perturbations_per_eval=ppe, **kw), both)


def test_default_perturbations_per_eval_bounds_cpu_calls() -> None:
    from captum_leg.attribution import CPU_CALL_BYTES, default_perturbations_per_eval

    image = torch.zeros(1, 3, 224, 224)
    assert default_perturbations_per_eval([image]) == CPU_CALL_BYTES // image.nbytes == 13
    assert default_perturbations_per_eval([torch.zeros(4, 3, 224, 224)]) == 3
    assert default_perturbations_per_eval([torch.zeros(1, 1, 100)]) == 64
    assert default_perturbations_per_eval([torch.zeros(64, 3, 512, 512)]) == 1
    # the forward calls LEG makes by default stay within the bound
    sizes = []

    def model(x: torch.Tensor) -> torch.Tensor:
        sizes.append(x.shape[0])
        return x.flatten(1).sum(1, keepdim=True)

    LEG(model).attribute(torch.rand(2, 3, 160, 160), target=0, n_samples=40, grid_size=4, seed=0)
    assert max(sizes) * 3 * 160 * 160 * 4 <= CPU_CALL_BYTES and max(sizes) > 2


def test_seeds_are_reproducible_and_leave_the_global_rng_alone() -> None:
    model, _, x = linear_setup()
    leg = LEG(model)
    state = torch.get_rng_state()
    a = leg.attribute(x, target=0, n_samples=20, grid_size=4, seed=3)
    b = leg.attribute(x, target=0, n_samples=20, grid_size=4, seed=3)
    c = leg.attribute(x, target=0, n_samples=20, grid_size=4, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(state, torch.get_rng_state())
    d = leg.attribute(x, target=0, n_samples=20, grid_size=4)
    e = leg.attribute(x, target=0, n_samples=20, grid_size=4)
    assert not torch.equal(d, e)


def test_forward_pass_count_and_batch_sizes() -> None:
    model, _, x = linear_setup(c=3)
    sizes = []

    def counting(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.shape[0])
        return model(t)

    LEG(counting).attribute(
        x, target=0, n_samples=50, grid_size=4, perturbations_per_eval=32, seed=0, sampling="gaussian"
    )
    assert sum(sizes) == x.shape[0] * (3 * 50 + 1)  # C * n_samples + 1 per example
    assert max(sizes) == 32 * x.shape[0]
    sizes.clear()
    LEG(counting).attribute(x, target=0, n_samples=50, grid_size=4, sampling="antithetic", seed=0)
    assert sum(sizes) == x.shape[0] * 3 * 50  # f(x0) cancels in pairs


def test_additional_forward_args_are_expanded() -> None:
    model, weight, x = linear_setup()
    scale = torch.tensor([[2.0], [-1.0]], dtype=F64)

    def scaled(t: torch.Tensor, factor: torch.Tensor, offset: float) -> torch.Tensor:
        return model(t) * factor + offset

    leg = LEG(scaled)
    kw = dict(target=0, n_samples=30, grid_size=4, seed=2, perturbations_per_eval=7)
    out = leg.attribute(x, additional_forward_args=(scale, 5.0), **kw)
    base = LEG(model).attribute(x, **kw)
    torch.testing.assert_close(out, base * scale.view(2, 1, 1, 1))


def test_caller_tensors_are_not_modified() -> None:
    model, _, x = linear_setup()
    x_copy = x.clone()
    target = torch.tensor([0, 1])
    t_copy = target.clone()
    noise = [0.1, 0.2, 0.3]
    LEG(model).attribute(x, target=target, n_samples=10, grid_size=4, noise_level=noise, seed=0)
    assert torch.equal(x, x_copy) and torch.equal(target, t_copy) and noise == [0.1, 0.2, 0.3]


def test_per_channel_noise_levels_match_single_channel_runs() -> None:
    model, _, x = linear_setup(c=2)
    both = LEG(model).attribute(x, target=0, n_samples=4000, grid_size=3, noise_level=[0.05, 0.5], seed=0)
    expected = cell_mean(model.weight[0], 3, 3).expand_as(x)
    assert rel_err(both, expected) < 0.15


def test_works_with_noise_tunnel_sensitivity_max_and_visualization() -> None:
    model, _, x = linear_setup()
    x = x.float()
    f = lambda t: model(t.double()).float()  # noqa: E731
    leg = LEG(f)
    nt = NoiseTunnel(leg)
    kw = dict(target=0, n_samples=40, grid_size=4, seed=0)  # more pairs than cells: well conditioned
    # A linear model's map does not depend on the input, and every call draws the same
    # noise from the seed: SmoothGrad over LEG is LEG's map, and its sensitivity is 0
    # (up to float32 rounding of the responses).
    ref = leg.attribute(x, **kw)
    out = nt.attribute(x, nt_type="smoothgrad", nt_samples=3, stdevs=0.1, **kw)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    sens = sensitivity_max(leg.attribute, x, n_perturb_samples=2, **kw)
    assert sens.shape == (2,) and float(sens.max()) < 1e-5
    img = ref[0].permute(1, 2, 0).numpy()
    fig, _ = viz.visualize_image_attr(img, x[0].permute(1, 2, 0).numpy(), method="heat_map", use_pyplot=False)
    assert len(fig.axes) >= 1


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(n_samples=0), ValueError, "n_samples"),
        (dict(n_samples=2.5), TypeError, "n_samples"),
        (dict(noise_level=0.0), ValueError, "noise_level"),
        (dict(noise_level=-1.0), ValueError, "noise_level"),
        (dict(noise_level=[0.1, 0.2]), ValueError, "noise_level"),
        (dict(noise_level="big"), TypeError, "noise_level"),
        (dict(penalty="l1"), ValueError, "penalty"),
        (dict(penalty="tv", lam=0.0), ValueError, "lam"),
        (dict(penalty="tv", lam=1.5), ValueError, "lam"),
        (dict(penalty="tv", lam=[0.1, 1.0]), ValueError, "lam"),
        (dict(lam=[0.1, 0.3]), ValueError, "lam"),
        (dict(grid_size=0), ValueError, "grid_size"),
        (dict(grid_size=13), ValueError, "grid_size"),
        (dict(grid_size=(2, 2, 2)), TypeError, "grid_size"),
        (dict(penalty="tv", solver="gurobi-nope"), ValueError, "solver"),
        (dict(penalty="tv", solver=3), TypeError, "solver"),
        (dict(sampling="sobol"), ValueError, "sampling"),
        (dict(sampling="antithetic", n_samples=5), ValueError, "n_samples"),
        (dict(perturbations_per_eval=0), ValueError, "perturbations_per_eval"),
        (dict(target=[0, 1, 2]), ValueError, "target"),
        (dict(target=torch.tensor([0, 1, 2])), ValueError, "target"),
        (dict(target=7), ValueError, "target"),
        (dict(target=None), ValueError, "target"),
        (dict(target=0.5), TypeError, "target"),
        (dict(contrast_target=[1]), ValueError, "contrast_target"),
        (dict(penalty="tv", return_standard_error=True), ValueError, "return_standard_error"),
    ],
)
def test_bad_arguments_raise_specific_errors(kwargs, exc, words) -> None:
    model, _, x = linear_setup()
    args = dict(target=0, n_samples=4, grid_size=4, seed=0)
    args.update(kwargs)
    with pytest.raises(exc, match=words):
        LEG(model).attribute(x, **args)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(lam=0.3), "lam"),
        (dict(lam=0.1), "lam"),  # the documented default value, passed explicitly
        (dict(solver="highs"), "solver"),
        (dict(solver="auto"), "solver"),
        (dict(solver_options={"tol": 1e-3}), "solver_options"),
        (dict(penalty=None, lam=0.3), "lam"),
    ],
)
def test_arguments_without_effect_are_errors(kwargs, name) -> None:
    model, _, x = linear_setup()
    with pytest.raises(ValueError, match=f'^{name}: has no effect without penalty="tv".*pass penalty="tv"'):
        LEG(model).attribute(x, target=0, n_samples=4, grid_size=4, seed=0, **kwargs)


def test_leg_tv_defaults_are_lam_0_1_and_the_auto_solver() -> None:
    model, _, x = linear_setup()
    kw = dict(target=0, n_samples=40, grid_size=4, seed=0, penalty="tv")
    default = LEG(model).attribute(x, **kw)
    torch.testing.assert_close(default, LEG(model).attribute(x, lam=0.1, solver="auto", **kw), rtol=0, atol=0)
    assert not torch.allclose(default, LEG(model).attribute(x, lam=0.3, **kw))


def test_tv_path_refuses_solver_options_when_no_program_is_solved() -> None:
    model, _, x = linear_setup()
    kw = dict(target=0, n_samples=4, grid_size=4, seed=0)
    for extra in (dict(solver="highs"), dict(solver_options={"tol": 1e-3})):
        name = next(iter(extra))
        with pytest.raises(ValueError, match=f"^{name}: has no effect when every lam is 0"):
            LEG(model).attribute_tv_path(x, lams=[0.0], **kw, **extra)
    # lam 0 alone is the estimate itself; with a positive lam the solver is used
    torch.testing.assert_close(LEG(model).attribute_tv_path(x, lams=[0.0], **kw)[0], LEG(model).attribute(x, **kw))
    assert LEG(model).attribute_tv_path(x, lams=[0.0, 0.2], solver="highs", **kw).shape == (2, *x.shape)


def test_bad_inputs_and_model_outputs() -> None:
    model, _, x = linear_setup()
    leg = LEG(model)
    kw = dict(target=0, n_samples=4, grid_size=4, sampling="gaussian")  # f(x0) comes first
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="inputs.*NaN"):
        leg.attribute(bad, **kw)
    with pytest.raises(ValueError, match="inputs.*no spatial axis"):
        leg.attribute(x[0, 0], **kw)
    with pytest.raises(ValueError, match="inputs.*same batch size"):
        leg.attribute((x, x[:1]), **kw)
    with pytest.raises(TypeError, match="inputs"):
        leg.attribute(x.numpy(), **kw)
    with pytest.raises(TypeError, match="inputs"):
        leg.attribute(x.long(), **kw)
    with pytest.raises(ValueError, match="NaN or inf"):
        LEG(lambda t: model(t) * float("inf")).attribute(x, **kw)
    calls = []

    def nan_when_perturbed(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        out = model(t)
        return out if len(calls) == 1 else out * float("nan")

    with pytest.raises(ValueError, match="NaN or inf.*perturbed"):
        LEG(nan_when_perturbed).attribute(x, **kw)
    with pytest.raises(TypeError, match="forward_func"):
        LEG(lambda t: model(t).numpy()).attribute(x, **kw)
    with pytest.raises(ValueError, match="one output row"):
        LEG(lambda t: model(t)[:1]).attribute(x, **kw)
    with pytest.raises(TypeError, match="forward_func"):
        LEG("model")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_inputs_stay_on_the_device_and_match_the_cpu_map() -> None:
    model, weight, x = linear_setup()
    model_cuda = LinearModel(weight.cuda())
    for estimator in ("ridge", "moment"):
        kw = dict(target=0, n_samples=2000, grid_size=4, seed=0, estimator=estimator)
        out = LEG(model_cuda).attribute(x.cuda(), **kw)
        assert out.device.type == "cuda"
        # The noise is drawn on the CPU from the seed: the same map on every device.
        torch.testing.assert_close(out.cpu(), LEG(model).attribute(x, **kw), rtol=1e-6, atol=1e-9)
    expected = cell_mean(weight[0], 4, 4).expand_as(x)
    assert rel_err(out.cpu(), expected) < 0.2


def test_inputs_kept_or_edited_by_the_model_are_never_overwritten() -> None:
    model, _, x = linear_setup()
    kept = []

    def keeping(t: torch.Tensor) -> torch.Tensor:
        kept.append((t, t.clone()))
        return model(t)

    kw = dict(target=0, n_samples=40, grid_size=4, seed=1, perturbations_per_eval=8)
    ref = LEG(model).attribute(x, **kw)
    torch.testing.assert_close(LEG(keeping).attribute(x, **kw), ref)
    assert all(torch.equal(t, copy) for t, copy in kept)  # no batch was reused under them
    views = []
    LEG(lambda t: (views.append(t[:, :1]), model(t))[1]).attribute(x, **kw)
    assert len({v.untyped_storage().data_ptr() for v in views}) == len(views)

    def editing(t: torch.Tensor) -> torch.Tensor:
        out = model(t)
        t.mul_(0)  # a model that clobbers its input in place
        return out

    torch.testing.assert_close(LEG(editing).attribute(x, **kw), ref)
