"""Attribution methods at a common forward-pass budget, and a Quantus ``explain_func``.

Budget accounting, per image, in *forward-equivalents*:

* LEG / LEG-TV: ``C * n_samples`` forwards with antithetic pairs (the default), so
  ``n_samples`` is ``budget // C`` rounded down to even; ``C * n_samples + 1`` with
  Gaussian sampling, so ``n_samples = (budget - 1) // C``.
* Lime / KernelShap: one forward per sample, ``n_samples = budget``, on a square grid
  feature mask (``feature_grid x feature_grid`` cells, default 14: 16-pixel cells at 224);
  the baseline is 0 in input units (the dataset mean for normalised inputs).
* Gradient methods: one forward + one backward counts as 3 forward-equivalents (a
  backward costs about two forwards). IntegratedGradients: ``n_steps = budget // 3``;
  SmoothGrad (NoiseTunnel over Saliency): ``nt_samples = budget // 3``; Saliency and
  LayerGradCam cost 3 whatever the budget.

Every :class:`MethodSpec` reports the cost it actually spends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from captum_leg.attribution import DEFAULT_LAM, DEFAULT_NOISE_LEVEL, DEFAULT_SAMPLING
from captum_leg.evaluation.seeding import seeded_global_rng
from captum_leg.grid import cell_index

METHOD_NAMES: Tuple[str, ...] = (
    "leg",
    "leg-tv",
    "lime",
    "kernelshap",
    "ig",
    "saliency",
    "smoothgrad",
    "gradcam",
)
GRAD_COST = 3  # forward-equivalents of one forward + backward
#: Inputs per forward call of the non-LEG methods (and the CLI's masking) when unset:
#: small batches are faster per input on the CPU than large ones.
DEFAULT_BATCH = 16

ExplainFn = Callable[[Tensor, Tensor, Optional[int]], Tensor]


@dataclass
class MethodSpec:
    """An attribution method configured for a budget.

    Attributes:
        name: registry name.
        cost: forward-equivalents spent per image.
        settings: the settings used (for tables).
        fn: ``fn(inputs, target, seed) -> attributions`` shaped like ``inputs``.
    """

    name: str
    cost: int
    settings: Dict[str, Any]
    fn: ExplainFn = field(repr=False)

    def __call__(self, inputs: Tensor, target: Tensor, seed: Optional[int] = None) -> Tensor:
        return self.fn(inputs, target, seed)


def grid_feature_mask(height: int, width: int, cells: int, device: Any = "cpu") -> Tensor:
    """``(1, 1, H, W)`` feature mask of ``cells x cells`` (near-)equal rectangles (LEG's cells)."""
    r, c = cell_index(height, cells, device), cell_index(width, cells, device)
    return (r[:, None] * cells + c[None, :])[None, None]


def last_conv(model: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` registered in ``model`` (GradCAM's default layer)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model: no nn.Conv2d found for GradCAM; pass layer=")
    return convs[-1]


def _seeded_call(seed: Optional[int], f: Callable[[], Tensor]) -> Tensor:
    # Captum's sampling methods draw from the global generators
    with seeded_global_rng(seed):
        return f()


def build_method(
    name: str,
    model: Union[nn.Module, Callable[..., Tensor]],
    budget: int,
    *,
    channels: int = 3,
    noise_level: float = DEFAULT_NOISE_LEVEL,
    grid_size: Optional[int] = None,
    lam: float = DEFAULT_LAM,
    feature_grid: int = 14,
    layer: Optional[nn.Module] = None,
    perturbations_per_eval: Optional[int] = None,
    leg_kwargs: Optional[Dict[str, Any]] = None,
) -> MethodSpec:
    """Configure a method of :data:`METHOD_NAMES` for a forward-pass budget per image.

    Args:
        name: one of :data:`METHOD_NAMES`.
        model: the classifier (an ``nn.Module``; gradient methods and GradCAM need one).
        budget: forward-equivalents per image (see the module docstring).
        channels: input channels ``C`` (LEG spends ``C * n_samples + 1``).
        noise_level, grid_size, lam: LEG / LEG-TV settings.
        feature_grid: cells per side of Lime/KernelShap's feature mask.
        layer: GradCAM layer (default: the last ``nn.Conv2d``).
        perturbations_per_eval: batch size of perturbation methods (None: LEG's own
            choice for LEG, :data:`DEFAULT_BATCH` for the others).
        leg_kwargs: extra keyword arguments for ``LEG.attribute``.

    Returns:
        The :class:`MethodSpec`.
    """
    if not isinstance(name, str) or name not in METHOD_NAMES:
        raise ValueError(f"name must be one of {METHOD_NAMES}, got {name!r}")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"budget must be an int, got {type(budget).__name__}")
    if budget < channels + 1 and name in ("leg", "leg-tv"):
        raise ValueError(f"budget must be >= channels + 1 = {channels + 1} for {name}, got {budget}")
    if budget < GRAD_COST:
        raise ValueError(f"budget must be >= {GRAD_COST}, got {budget}")

    batch = perturbations_per_eval or DEFAULT_BATCH
    if name in ("leg", "leg-tv"):
        from captum_leg import LEG  # late import: the core may be absent in partial installs

        kw: Dict[str, Any] = dict(
            noise_level=noise_level,
            grid_size=grid_size,
            perturbations_per_eval=perturbations_per_eval,
        )
        if name == "leg-tv":
            kw.update(penalty="tv", lam=lam)
        kw.update(leg_kwargs or {})
        # Antithetic pairs (the default) need no f(x0) but an even n per channel.
        pairs = kw.get("sampling", DEFAULT_SAMPLING) == "antithetic"
        n = budget // channels // 2 * 2 if pairs else (budget - 1) // channels
        kw["n_samples"] = n
        leg = LEG(model)

        def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
            return leg.attribute(x, target=t, seed=seed, **kw)

        return MethodSpec(name, channels * n + (0 if pairs else 1), kw, fn)

    if name in ("lime", "kernelshap"):
        from captum.attr import KernelShap, Lime

        cls = Lime if name == "lime" else KernelShap
        algo = cls(model)
        settings = dict(n_samples=budget, feature_grid=feature_grid, baselines=0.0)

        def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
            fm = grid_feature_mask(x.shape[2], x.shape[3], feature_grid, x.device)
            # Captum's Lime/KernelShap take one example at a time with a feature mask
            outs = [
                _seeded_call(
                    seed,
                    lambda i=i: algo.attribute(
                        x[i : i + 1],
                        target=int(t[i]),
                        baselines=0.0,
                        feature_mask=fm,
                        n_samples=budget,
                        perturbations_per_eval=batch,
                    ),
                )
                for i in range(x.shape[0])
            ]
            return torch.cat(outs).detach()

        return MethodSpec(name, budget, settings, fn)

    if name == "ig":
        from captum.attr import IntegratedGradients

        steps = max(1, budget // GRAD_COST)
        algo = IntegratedGradients(model)

        def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
            return algo.attribute(
                x, target=t, baselines=0.0, n_steps=steps, internal_batch_size=batch
            ).detach()

        return MethodSpec(name, GRAD_COST * steps, dict(n_steps=steps, baselines=0.0), fn)

    if name == "saliency":
        from captum.attr import Saliency

        algo = Saliency(model)

        def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
            return algo.attribute(x, target=t, abs=True).detach()

        return MethodSpec(name, GRAD_COST, dict(abs=True), fn)

    if name == "smoothgrad":
        from captum.attr import NoiseTunnel, Saliency

        samples = max(1, budget // GRAD_COST)
        algo = NoiseTunnel(Saliency(model))

        def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
            # SmoothGrad's recommended noise: 15 % of the input range
            sd = 0.15 * float(x.max() - x.min())
            return _seeded_call(
                seed,
                lambda: algo.attribute(
                    x,
                    nt_type="smoothgrad",
                    nt_samples=samples,
                    nt_samples_batch_size=max(1, batch // max(1, x.shape[0])),
                    stdevs=sd,
                    target=t,
                    abs=True,
                ),
            ).detach()

        return MethodSpec(name, GRAD_COST * samples, dict(nt_samples=samples, stdevs="0.15*range"), fn)

    # gradcam
    from captum.attr import LayerAttribution, LayerGradCam

    if not isinstance(model, nn.Module):
        raise TypeError("model must be an nn.Module for gradcam")
    lay = layer if layer is not None else last_conv(model)
    algo = LayerGradCam(model, lay)

    def fn(x: Tensor, t: Tensor, seed: Optional[int] = None) -> Tensor:
        a = algo.attribute(x, target=t, relu_attributions=True)
        a = LayerAttribution.interpolate(a, tuple(x.shape[2:]), interpolate_mode="bilinear")
        return a.expand(-1, x.shape[1], -1, -1).detach().clone()

    return MethodSpec(name, GRAD_COST, dict(layer=type(lay).__name__, relu=True), fn)


# ---------------------------------------------------------------------------------------
# Quantus
# ---------------------------------------------------------------------------------------
def explain_func(
    model: Union[nn.Module, Callable[..., Tensor]],
    inputs: np.ndarray,
    targets: Union[np.ndarray, Sequence[int], int],
    *,
    method: str = "leg",
    device: Optional[Union[str, torch.device]] = None,
    budget: Optional[int] = None,
    reduce_channels: bool = False,
    seed: Optional[int] = 0,
    **kwargs: Any,
) -> np.ndarray:
    """Quantus-compatible explanation function.

    Quantus calls ``explain_func(model=model, inputs=x_batch, targets=y_batch, **kw)`` with
    numpy arrays and expects a numpy array of attributions. Use it as
    ``quantus.X(...)(model=m, x_batch=x, y_batch=y, explain_func=explain_func,
    explain_func_kwargs={"n_samples": 100})`` or bind options with :func:`make_explain_func`.

    Args:
        model: the classifier (``nn.Module`` or forward function).
        inputs: ``(N, C, H, W)`` array (in the model's input units).
        targets: ``(N,)`` class indices (or one int).
        method: ``"leg"`` (keyword arguments go to ``LEG.attribute``, e.g. ``n_samples``,
            ``penalty="tv"``, ``lam``) or another name of :data:`METHOD_NAMES` (then
            ``budget`` is required and keyword arguments go to :func:`build_method`).
        device: device for the computation (default: the model's, else CPU).
        budget: forward-equivalents per image for non-LEG methods.
        reduce_channels: return ``(N, 1, H, W)`` mean ``|attribution|`` maps instead of
            signed per-channel maps.
        seed: seed of the method's randomness.
        **kwargs: method options (see ``method``).

    Returns:
        float32 array shaped like ``inputs`` (or ``(N, 1, H, W)`` with ``reduce_channels``).
    """
    if device is None:
        try:
            device = next(model.parameters()).device  # type: ignore[union-attr]
        except (AttributeError, StopIteration):
            device = "cpu"
    x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
    if x.dim() != 4:
        raise ValueError(f"inputs must be (N, C, H, W), got shape {tuple(x.shape)}")
    t = torch.as_tensor(np.asarray(targets), device=device).long().flatten()
    if t.numel() == 1:
        t = t.expand(x.shape[0])
    if t.numel() != x.shape[0]:
        raise ValueError(f"targets must have one entry per input ({x.shape[0]}), got {t.numel()}")
    if method == "leg":
        from captum_leg import LEG

        a = LEG(model).attribute(x, target=t, seed=seed, **kwargs)
    else:
        if budget is None:
            raise ValueError(f"budget is required for method {method!r}")
        spec = build_method(method, model, int(budget), channels=x.shape[1], **kwargs)
        a = spec(x, t, seed)
    if reduce_channels:
        a = a.abs().mean(1, keepdim=True)
    return a.detach().float().cpu().numpy()


def make_explain_func(method: str = "leg", **defaults: Any) -> Callable[..., np.ndarray]:
    """:func:`explain_func` with bound defaults (call-time keyword arguments win).

    Example::

        f = make_explain_func(n_samples=100, penalty="tv", lam=0.1)
        f(model=model, inputs=x_batch, targets=y_batch)
    """

    def f(model, inputs, targets, **kwargs: Any) -> np.ndarray:
        return explain_func(model, inputs, targets, **{"method": method, **defaults, **kwargs})

    return f
