"""One builder per attribution method: ``builder(model, budget, options) -> MethodSpec``.

Costs per image, in forward-equivalents (a backward pass counts 2, see
:data:`~captum_leg.evaluation.method_spec.GRAD_COST`):

* LEG family: pairs (the default) spend ``C * n`` forwards (``n`` per channel,
  ``budget // C`` rounded down to even); Gaussian sampling ``C * n + 1``. The gradient
  path spends one forward + backward per perturbation: ``3 C n``.
* Lime, KernelShap: ``n_samples = budget`` forwards on the grid feature mask; feature
  ablation: one forward per cell plus the unablated one.
* IntegratedGradients ``3 n_steps``, SmoothGrad ``3 nt_samples`` (both ``budget // 3`` unless
  given), Saliency and GradCAM 3, the random map 0.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from captum_leg.sampling import PAIRED_SCHEMES
from captum_leg.settings import DEFAULTS
from captum_leg.evaluation.method_spec import (
    GRAD_COST,
    MethodOptions,
    MethodSpec,
    Model,
    check_grid_fits,
    fresh_generator,
    grid_feature_mask,
    last_conv,
    seeded_call,
)

#: LEG-TV lambdas of ``"leg-tv-path"`` by default.
DEFAULT_PATH_LAMS: Tuple[float, ...] = (0.1, 0.3)
#: The lime package's default interpretable model: ridge regression with alpha 1.
LIME_RIDGE_ALPHA = 1.0


# ---------------------------------------------------------------------------------------
# LEG family
# ---------------------------------------------------------------------------------------
def _leg_settings(name: str, budget: int, opts: MethodOptions, overrides: Dict[str, Any],
                  unit_cost: int = 1, locked: Tuple[str, ...] = ()) -> Tuple[Dict[str, Any], int]:
    """``LEG.attribute`` keyword arguments for ``budget``, and the cost they spend.

    ``opts.leg_kwargs`` may override ``overrides`` except the ``locked`` ones.
    """
    C = opts.channels
    if budget < C + 1:
        raise ValueError(f"budget must be >= channels + 1 = {C + 1} for {name}, got {budget}")
    kw: Dict[str, Any] = dict(
        noise_level=opts.noise_level, grid_size=opts.grid_size,
        perturbations_per_eval=opts.perturbations_per_eval, **overrides,
    )
    for key, value in opts.leg_kwargs.items():
        if key in locked and value != overrides[key]:
            raise ValueError(f"leg_kwargs: {name} sets {key}={overrides[key]!r}, got {key}={value!r}")
        kw[key] = value
    # Pairs (the default) need no f(x0) but an even n per channel.
    pairs = kw.get("sampling", DEFAULTS.sampling) in PAIRED_SCHEMES
    n = budget // unit_cost // C // 2 * 2 if pairs else (budget - 1) // unit_cost // C
    if n < 1:
        raise ValueError(
            f"budget {budget} is too small for {name}: it buys no "
            f"{'pair' if pairs else 'perturbation'} per channel"
        )
    kw["n_samples"] = n
    return kw, unit_cost * C * n + (0 if pairs else 1)


def _leg_spec(name: str, model: Model, budget: int, opts: MethodOptions, overrides: Dict[str, Any],
              unit_cost: int = 1, locked: Tuple[str, ...] = ()) -> MethodSpec:
    from captum_leg import LEG  # late import: the core may be absent in partial installs

    kw, cost = _leg_settings(name, budget, opts, overrides, unit_cost, locked)
    leg = LEG(model)

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        return leg.attribute(x, target=t, seed=seed, **kw)

    return MethodSpec(name, cost, kw, fn)


def build_leg(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """LEG (``LEG(model).attribute``, its defaults but ``n_samples`` for the budget)."""
    return _leg_spec("leg", model, budget, opts, {})


def build_leg_tv(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """LEG-TV at ``opts.lam``."""
    return _leg_spec("leg-tv", model, budget, opts, dict(penalty="tv", lam=opts.lam))


def build_leg_gradient(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """LEG's gradient path (``estimator="gradient"``): forward + backward per perturbation."""
    from captum_leg.estimators import estimator_names

    if "gradient" not in estimator_names():
        raise ValueError(
            "leg-gradient needs LEG's estimator='gradient', which this version of captum_leg "
            f"does not have (estimators: {', '.join(estimator_names())})"
        )
    return _leg_spec("leg-gradient", model, budget, opts, dict(estimator="gradient"), GRAD_COST,
                     locked=("estimator",))


def build_leg_tv_path(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """LEG-TV at several lambdas (option ``lams``) from one set of samples."""
    from captum_leg import LEG

    lams = tuple(float(v) for v in opts.extra.get("lams", DEFAULT_PATH_LAMS))
    if not lams:
        raise ValueError("lams: give at least one lambda")
    kw, cost = _leg_settings("leg-tv-path", budget, opts, {})
    leg = LEG(model)

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        return leg.attribute_tv_path(x, target=t, seed=seed, lams=lams, **kw)

    variants = tuple(f"leg-tv-{lam:g}" for lam in lams)
    return MethodSpec("leg-tv-path", cost, {**kw, "lams": lams}, fn, variants=variants)


# ---------------------------------------------------------------------------------------
# Captum's perturbation methods on the grid feature mask
# ---------------------------------------------------------------------------------------
def _surrogate_spec(name: str, algo: Any, budget: int, opts: MethodOptions, settings: Dict[str, Any]) -> MethodSpec:
    """Lime-like methods: one example at a time (Captum's rule with a feature mask)."""
    g, batch = opts.feature_grid, opts.batch

    def one(x: Tensor, target: int, fm: Tensor, seed: Optional[int]) -> Tensor:
        return seeded_call(seed, lambda: algo.attribute(
            x, target=target, baselines=0.0, feature_mask=fm, n_samples=budget, perturbations_per_eval=batch))

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        check_grid_fits(x, g, name)
        fm = grid_feature_mask(x.shape[2], x.shape[3], g, x.device)
        return torch.cat([one(x[i : i + 1], int(t[i]), fm, seed) for i in range(x.shape[0])]).detach()

    return MethodSpec(name, budget, settings, fn)


def build_lime(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """Captum's Lime, its defaults: Lasso(alpha=0.01) on an exponential cosine kernel."""
    from captum.attr import Lime

    settings = dict(n_samples=budget, feature_grid=opts.feature_grid, baselines=0.0)
    return _surrogate_spec("lime", Lime(model), budget, opts, settings)


def build_lime_ridge(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """Captum's Lime with the lime package's interpretable model, Ridge(alpha=1)."""
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime

    algo = Lime(model, interpretable_model=SkLearnRidge(alpha=LIME_RIDGE_ALPHA))
    settings = dict(n_samples=budget, feature_grid=opts.feature_grid, baselines=0.0,
                    interpretable_model=f"Ridge(alpha={LIME_RIDGE_ALPHA:g})")
    return _surrogate_spec("lime-ridge", algo, budget, opts, settings)


def build_kernelshap(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """Captum's KernelShap (least squares weighted by the Shapley kernel)."""
    from captum.attr import KernelShap

    settings = dict(n_samples=budget, feature_grid=opts.feature_grid, baselines=0.0)
    return _surrogate_spec("kernelshap", KernelShap(model), budget, opts, settings)


def build_ablation(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """Captum's FeatureAblation of each grid cell (baseline 0); ignores the budget."""
    from captum.attr import FeatureAblation

    algo, g = FeatureAblation(model), opts.feature_grid

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        check_grid_fits(x, g, "ablation")
        fm = grid_feature_mask(x.shape[2], x.shape[3], g, x.device)
        return algo.attribute(x, target=t, baselines=0.0, feature_mask=fm, perturbations_per_eval=opts.batch).detach()

    return MethodSpec("ablation", g * g + 1, dict(feature_grid=g, baselines=0.0), fn)


# ---------------------------------------------------------------------------------------
# gradient methods
# ---------------------------------------------------------------------------------------
def _count(opts: MethodOptions, key: str, budget: int) -> int:
    value = opts.extra.get(key)
    count = max(1, budget // GRAD_COST) if value is None else value
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{key} must be an int >= 1, got {count!r}")
    return count


def build_ig(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """IntegratedGradients from baseline 0, ``n_steps`` (option; default ``budget // 3``)."""
    from captum.attr import IntegratedGradients

    steps, algo = _count(opts, "n_steps", budget), IntegratedGradients(model)

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        return algo.attribute(x, target=t, baselines=0.0, n_steps=steps, internal_batch_size=opts.batch).detach()

    return MethodSpec("ig", GRAD_COST * steps, dict(n_steps=steps, baselines=0.0), fn)


def build_saliency(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """Saliency: the absolute gradient."""
    from captum.attr import Saliency

    algo = Saliency(model)

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        return algo.attribute(x, target=t, abs=True).detach()

    return MethodSpec("saliency", GRAD_COST, dict(abs=True), fn)


def build_smoothgrad(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """SmoothGrad (NoiseTunnel over Saliency), ``nt_samples`` (option; default ``budget // 3``)."""
    from captum.attr import NoiseTunnel, Saliency

    samples, algo = _count(opts, "nt_samples", budget), NoiseTunnel(Saliency(model))

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        sd = 0.15 * float(x.max() - x.min())  # SmoothGrad's recommended noise: 15 % of the range
        chunk = max(1, opts.batch // max(1, x.shape[0]))
        return seeded_call(seed, lambda: algo.attribute(
            x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=chunk, stdevs=sd, target=t, abs=True,
        )).detach()

    return MethodSpec("smoothgrad", GRAD_COST * samples, dict(nt_samples=samples, stdevs="0.15*range"), fn)


def build_gradcam(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """LayerGradCam on ``opts.layer`` (default the last conv), ReLU, bilinear upsampling."""
    from captum.attr import LayerAttribution, LayerGradCam

    if not isinstance(model, nn.Module):
        raise TypeError("model must be an nn.Module for gradcam")
    lay = opts.layer if opts.layer is not None else last_conv(model)
    algo = LayerGradCam(model, lay)

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        a = algo.attribute(x, target=t, relu_attributions=True)
        a = LayerAttribution.interpolate(a, tuple(x.shape[2:]), interpolate_mode="bilinear")
        return a.expand(-1, x.shape[1], -1, -1).detach().clone()

    return MethodSpec("gradcam", GRAD_COST, dict(layer=type(lay).__name__, relu=True), fn)


def build_random(model: Model, budget: int, opts: MethodOptions) -> MethodSpec:
    """A baseline: standard normal noise for a map (seeded), at no cost."""

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        noise = torch.randn(x.shape, generator=fresh_generator(seed), dtype=x.dtype)
        return noise.to(x.device)

    return MethodSpec("random", 0, dict(distribution="normal"), fn)

