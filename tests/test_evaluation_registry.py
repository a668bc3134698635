"""The method registry: every builder's map shape and measured cost, options, extension."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from captum_leg import LEG
from captum_leg.estimators import estimator_names
from captum_leg.evaluation import (
    METHOD_NAMES,
    MethodSpec,
    build_method,
    explain_func,
    grid_feature_mask,
    method_entry,
    method_names,
    register_method,
)
from captum_leg.evaluation import methods as methods_module
from captum_leg.evaluation.runner import ForwardCounter

HAS_GRADIENT = "gradient" in estimator_names()
SINGLE = [n for n in method_names() if n not in ("leg-tv-path", "leg-gradient")]


def tiny_cnn() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                             nn.Linear(16, 5))


X = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
T = torch.tensor([1, 3])
KW = dict(grid_size=4, feature_grid=4, noise_level=0.05)


@pytest.mark.parametrize("name", SINGLE)
def test_each_builder_makes_a_map_of_the_inputs_shape_at_its_stated_cost(name):
    counter = ForwardCounter(tiny_cnn())
    spec = build_method(name, counter, 31, **KW)
    counter.reset()
    maps = spec.explain(X, T, 0)
    assert list(maps) == [name] and maps[name].shape == X.shape
    assert torch.isfinite(maps[name]).all()
    # images forwarded, plus 2 per image backpropagated, per image: the stated cost exactly
    assert counter.forward_equivalents == 2 * spec.cost, (counter.forward_rows, counter.backward_rows, spec.cost)
    assert (counter.backward_rows > 0) == method_entry(name).needs_gradients == spec.needs_gradients
    assert spec.cost <= 31 or name == "ablation"


def test_stated_costs():
    model = tiny_cnn()
    costs = {n: build_method(n, model, 31, **KW).cost for n in SINGLE}
    assert costs == {
        "leg": 30, "leg-tv": 30,  # 3 channels x 10 (even: symmetric pairs)
        "lime": 31, "kernelshap": 31, "lime-ridge": 31,
        "ig": 30, "smoothgrad": 30, "saliency": 3, "gradcam": 3,  # 3 per forward + backward
        "ablation": 17, "random": 0,  # 4 x 4 cells + the unablated image
    }
    assert build_method("ig", model, 31, n_steps=50).cost == 150
    assert build_method("smoothgrad", model, 31, nt_samples=7).cost == 21
    assert build_method("leg", model, 31, leg_kwargs=dict(sampling="gaussian")).cost == 31  # 3 x 10 + f(x0)


def test_leg_tv_path_gives_both_lambdas_from_one_set_of_samples():
    counter = ForwardCounter(tiny_cnn())
    spec = build_method("leg-tv-path", counter, 31, lams=(0.1, 0.3), **KW)
    assert spec.variants == ("leg-tv-0.1", "leg-tv-0.3") and spec.cost == 30
    counter.reset()
    maps = spec.explain(X, T, 0)
    assert counter.forward_rows == 2 * 30  # one sampling pass for both
    direct = LEG(counter).attribute_tv_path(X, target=T, seed=0, lams=[0.1, 0.3], n_samples=10, grid_size=4,
                                             noise_level=0.05)
    for i, name in enumerate(spec.variants):
        assert maps[name].shape == X.shape
        torch.testing.assert_close(maps[name], direct[i])
    assert not torch.equal(maps["leg-tv-0.1"], maps["leg-tv-0.3"])
    with pytest.raises(ValueError, match="several maps"):
        explain_func(tiny_cnn(), X.numpy(), T.numpy(), method="leg-tv-path", budget=31, **KW)


@pytest.mark.parametrize("name, model_name", [("lime", None), ("lime-ridge", "ridge"), ("kernelshap", None)])
def test_surrogate_methods_are_captums_on_the_grid(name, model_name):
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import KernelShap, Lime

    from captum_leg.evaluation.seeding import seeded_global_rng

    model = tiny_cnn()
    spec = build_method(name, model, 40, feature_grid=4, perturbations_per_eval=8)
    if name == "kernelshap":
        algo = KernelShap(model)
    else:
        algo = Lime(model, interpretable_model=SkLearnRidge(alpha=1.0)) if model_name else Lime(model)
    fm = grid_feature_mask(8, 8, 4)
    expected = []
    for i in range(2):
        with seeded_global_rng(5):
            expected.append(algo.attribute(X[i : i + 1], target=int(T[i]), baselines=0.0, feature_mask=fm,
                                           n_samples=40, perturbations_per_eval=8))
    torch.testing.assert_close(spec(X, T, 5), torch.cat(expected))


def test_ablation_of_a_linear_model_is_each_cells_contribution():
    torch.manual_seed(0)
    w = torch.randn(3, 8, 8)

    def linear(x: Tensor) -> Tensor:
        s = (x * w).sum((1, 2, 3))
        return torch.stack([s, -s], 1)

    a = build_method("ablation", linear, 3, feature_grid=4)(X, torch.tensor([0, 0]))
    # baseline 0: removing a 2 x 2 cell (all channels) lowers the output by the cell's sum of w * x
    cell = (X * w).sum(1).unfold(1, 2, 2).unfold(2, 2, 2).sum((-1, -2))  # (N, 4, 4)
    expected = cell.repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None].expand(-1, 3, -1, -1)
    torch.testing.assert_close(a, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="feature_grid"):
        build_method("ablation", linear, 3, feature_grid=10)(X, torch.tensor([0, 0]))


def test_random_map_is_seeded_and_free():
    spec = build_method("random", tiny_cnn(), 3)
    assert torch.equal(spec(X, T, 4), spec(X, T, 4))
    assert not torch.equal(spec(X, T, 4), spec(X, T, 5))
    assert bool((spec(X, T, 4) < 0).any()) and bool((spec(X, T, 4) > 0).any())  # signed, for the shift mask


@pytest.mark.skipif(not HAS_GRADIENT, reason="LEG has no estimator='gradient' in this version")
def test_leg_gradient_path_costs_a_forward_and_backward_per_perturbation():
    counter = ForwardCounter(tiny_cnn())
    spec = build_method("leg-gradient", counter, 60, **KW)
    assert spec.settings["estimator"] == "gradient" and spec.needs_gradients
    counter.reset()
    a = spec(X, T, 0)
    assert a.shape == X.shape
    assert counter.backward_rows > 0
    assert counter.forward_equivalents <= 2 * spec.cost + 2


def test_leg_gradient_is_declared_and_refused_clearly_without_the_estimator(monkeypatch):
    assert method_entry("leg-gradient").needs_gradients
    if not HAS_GRADIENT:
        with pytest.raises(ValueError, match="estimator='gradient'"):
            build_method("leg-gradient", tiny_cnn(), 60, **KW)
        import captum_leg.estimators as estimators

        monkeypatch.setattr(estimators, "estimator_names", lambda: ("ridge", "gradient"))
    # the settings it will pass once the estimator exists (nothing is run here)
    spec = build_method("leg-gradient", tiny_cnn(), 60, **KW)
    assert spec.settings["estimator"] == "gradient" and spec.settings["n_samples"] == 6
    assert spec.cost == 54 and spec.needs_gradients  # 3 per forward + backward x 3 channels x 6
    with pytest.raises(ValueError, match="leg_kwargs: leg-gradient sets estimator"):
        build_method("leg-gradient", tiny_cnn(), 60, leg_kwargs=dict(estimator="ridge"), **KW)


def test_registry_options_and_errors():
    model = tiny_cnn()
    assert set(METHOD_NAMES) <= set(method_names())
    with pytest.raises(ValueError, match="name"):
        build_method("gradient-x", model, 31)
    with pytest.raises(TypeError, match="n_steps"):
        build_method("saliency", model, 31, n_steps=4)
    with pytest.raises(ValueError, match="n_steps"):
        build_method("ig", model, 31, n_steps=0)
    with pytest.raises(ValueError, match="too small"):
        build_method("leg", model, 4)  # 4 // 3 = 1 per channel: no antithetic pair
    # leg_kwargs override the builder's LEG settings (but not the gradient path's estimator)
    assert build_method("leg-tv", model, 31, leg_kwargs=dict(lam=0.5)).settings["lam"] == 0.5


def test_register_method_extends_the_table(monkeypatch):
    monkeypatch.setattr(methods_module, "_REGISTRY", dict(methods_module._REGISTRY))

    def build_constant(model, budget, opts):
        value = opts.extra.get("value", 1.0)
        return MethodSpec("constant", 0, dict(value=value), lambda x, t, seed=None: torch.full_like(x, value))

    register_method("constant", build_constant, summary="a constant map", options=("value",))
    assert "constant" in method_names() and method_entry("constant").summary == "a constant map"
    spec = build_method("constant", tiny_cnn(), 3, value=2.0)
    assert torch.equal(spec(X, T), torch.full_like(X, 2.0)) and not spec.needs_gradients
    with pytest.raises(ValueError, match="registered already"):
        register_method("constant", build_constant, summary="again")
    register_method("constant", build_constant, summary="again", needs_gradients=True, replace=True)
    assert build_method("constant", tiny_cnn(), 3).needs_gradients
    with pytest.raises(TypeError, match="builder"):
        register_method("other", "not callable", summary="x")  # type: ignore[arg-type]
