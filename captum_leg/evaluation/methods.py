"""Attribution methods at a common forward-pass budget: a table of builders by name.

:func:`build_method` configures a registered method for a budget per image;
:func:`register_method` adds one (a builder ``builder(model, budget, options) ->``
:class:`MethodSpec`, see :mod:`captum_leg.evaluation.builders` for the built-in ones and
their costs). Every :class:`MethodSpec` reports the cost it actually spends, in
forward-equivalents (a backward pass counts 2).

>>> spec = build_method("lime", model, 1500)
>>> attributions = spec(images, target, seed=0)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from torch import nn

from captum_leg.settings import DEFAULT_LAM, DEFAULTS
from captum_leg.evaluation import builders as b
from captum_leg.evaluation.method_spec import (
    DEFAULT_BATCH,
    DEFAULT_FEATURE_GRID,
    GRAD_COST,
    MethodOptions,
    MethodSpec,
    Model,
    grid_feature_mask,
    last_conv,
)

__all__ = [
    "DEFAULT_BATCH", "GRAD_COST", "METHOD_NAMES", "MethodEntry", "MethodOptions", "MethodSpec",
    "build_method", "grid_feature_mask", "last_conv", "method_entry", "method_names", "register_method",
]

#: ``builder(model, budget, options) -> MethodSpec``.
MethodBuilder = Callable[[Model, int, MethodOptions], MethodSpec]


@dataclass(frozen=True)
class MethodEntry:
    """A registered method.

    Attributes:
        builder: ``builder(model, budget, options) -> MethodSpec``.
        summary: one line for tables: what the method is and what it costs.
        needs_gradients: it differentiates the model (autograd through the forward).
        options: the method's own keyword options of :func:`build_method`.
    """

    builder: MethodBuilder
    summary: str
    needs_gradients: bool = False
    options: Tuple[str, ...] = ()


_REGISTRY: Dict[str, MethodEntry] = {
    "leg": MethodEntry(b.build_leg, "LEG at its defaults (ridge, orthogonal pairs), n per channel = budget / 3"),
    "leg-tv": MethodEntry(b.build_leg_tv, "LEG-TV at lam, from LEG's samples"),
    "lime": MethodEntry(b.build_lime, "Captum Lime, Lasso(alpha=0.01), n_samples = budget, grid mask"),
    "kernelshap": MethodEntry(b.build_kernelshap, "Captum KernelShap (weighted least squares), n_samples = budget"),
    "ig": MethodEntry(b.build_ig, "IntegratedGradients, baseline 0, cost 3 n_steps", True, ("n_steps",)),
    "saliency": MethodEntry(b.build_saliency, "|gradient|, cost 3", True),
    "smoothgrad": MethodEntry(b.build_smoothgrad, "NoiseTunnel(Saliency), sd 0.15 range, cost 3 nt_samples",
                              True, ("nt_samples",)),
    "gradcam": MethodEntry(b.build_gradcam, "LayerGradCam, last conv, ReLU, bilinear, cost 3", True),
    "leg-tv-path": MethodEntry(b.build_leg_tv_path, "LEG-TV at several lams from one set of samples",
                               options=("lams",)),
    "leg-gradient": MethodEntry(b.build_leg_gradient, "LEG's gradient path (estimator='gradient'), "
                                "forward + backward per perturbation", True),
    "lime-ridge": MethodEntry(b.build_lime_ridge, "Captum Lime, Ridge(alpha=1) (the lime package's model)"),
    "ablation": MethodEntry(b.build_ablation, "FeatureAblation of each grid cell, baseline 0, cost cells + 1"),
    "random": MethodEntry(b.build_random, "random normal map (baseline), cost 0"),
}

#: The methods of ``captum-leg evaluate`` (single maps; registered first).
METHOD_NAMES: Tuple[str, ...] = ("leg", "leg-tv", "lime", "kernelshap", "ig", "saliency", "smoothgrad", "gradcam")


def method_names() -> Tuple[str, ...]:
    """Every registered method, in registration order."""
    return tuple(_REGISTRY)


def method_entry(name: str) -> MethodEntry:
    """The registry entry of ``name``."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"name must be one of {method_names()}, got {name!r}")
    return _REGISTRY[name]


def register_method(
    name: str,
    builder: MethodBuilder,
    *,
    summary: str,
    needs_gradients: bool = False,
    options: Tuple[str, ...] = (),
    replace: bool = False,
) -> None:
    """Add a method to the table :func:`build_method` reads.

    Args:
        name: the method's name.
        builder: ``builder(model, budget, options) -> MethodSpec``; ``options`` is a
            :class:`MethodOptions` whose ``extra`` holds the method's own options.
        summary: one line for tables (what it is, what it costs).
        needs_gradients: the method differentiates the model.
        options: names of the method's own keyword options of :func:`build_method`.
        replace: allow replacing a registered method of that name.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    if not callable(builder):
        raise TypeError(f"builder must be callable, got {type(builder).__name__}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"name: {name!r} is registered already; pass replace=True to replace it")
    _REGISTRY[name] = MethodEntry(builder, str(summary), bool(needs_gradients), tuple(options))


def build_method(
    name: str,
    model: Model,
    budget: int,
    *,
    channels: int = 3,
    noise_level: float = DEFAULTS.noise_level,
    grid_size: Optional[int] = None,
    lam: float = DEFAULT_LAM,
    feature_grid: int = DEFAULT_FEATURE_GRID,
    layer: Optional[nn.Module] = None,
    perturbations_per_eval: Optional[int] = None,
    leg_kwargs: Optional[Dict[str, Any]] = None,
    **options: Any,
) -> MethodSpec:
    """Configure a registered method (:func:`method_names`) for a forward-pass budget per image.

    Args:
        name: a registered method, e.g. one of :data:`METHOD_NAMES`.
        model: the classifier (an ``nn.Module``; gradient methods and GradCAM need one).
        budget: forward-equivalents per image (see :mod:`captum_leg.evaluation.builders`).
        channels: input channels ``C`` (LEG spends ``C * n_samples``).
        noise_level, grid_size, lam: LEG / LEG-TV settings.
        feature_grid: cells per side of the feature mask of Lime, KernelShap and ablation.
        layer: GradCAM layer (default: the last ``nn.Conv2d``).
        perturbations_per_eval: batch size of perturbation methods (None: LEG's own
            choice for LEG, :data:`DEFAULT_BATCH` for the others).
        leg_kwargs: extra keyword arguments for ``LEG.attribute``.
        **options: the method's own options (:attr:`MethodEntry.options`), e.g.
            ``n_steps`` of ``"ig"`` or ``lams`` of ``"leg-tv-path"``.

    Returns:
        The :class:`MethodSpec`.
    """
    entry = method_entry(name)
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"budget must be an int, got {type(budget).__name__}")
    if budget < GRAD_COST:
        raise ValueError(f"budget must be >= {GRAD_COST}, got {budget}")
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise TypeError(f"build_method: {name!r} has no option {unknown[0]!r} (its options: {entry.options})")
    opts = MethodOptions(
        channels=channels, noise_level=noise_level, grid_size=grid_size, lam=lam, feature_grid=feature_grid,
        layer=layer, perturbations_per_eval=perturbations_per_eval, leg_kwargs=dict(leg_kwargs or {}),
        extra=options,
    )
    spec = entry.builder(model, budget, opts)
    return dataclasses.replace(spec, needs_gradients=entry.needs_gradients)
