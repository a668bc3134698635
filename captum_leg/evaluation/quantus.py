"""A Quantus-compatible ``explain_func`` over LEG and the registered methods."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union, cast

import numpy as np
import torch
from torch import Tensor, nn

from captum_leg.evaluation.methods import build_method
from captum_leg.targets import parse_class_target


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
            ``penalty="tv"``, ``lam``) or another registered method (then
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
    t = cast(Tensor, parse_class_target(np.asarray(targets), x.shape[0], "targets")).to(device)
    if method == "leg":
        from captum_leg import LEG

        a = LEG(model).attribute(x, target=t, seed=seed, **kwargs)
    else:
        if budget is None:
            raise ValueError(f"budget is required for method {method!r}")
        spec = build_method(method, model, int(budget), channels=x.shape[1], **kwargs)
        if spec.variants:
            raise ValueError(f"method: {method!r} makes several maps {spec.variants}; use build_method(...).explain")
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

    def f(model: Union[nn.Module, Callable[..., Tensor]], inputs: np.ndarray,
          targets: Union[np.ndarray, Sequence[int], int], **kwargs: Any) -> np.ndarray:
        return explain_func(model, inputs, targets, **{"method": method, **defaults, **kwargs})

    return f
