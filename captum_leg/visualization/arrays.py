"""Captum-format conversion: tensors and arrays to the numpy layouts matplotlib and Captum draw.

:func:`attr_to_hwc` / :func:`image_to_hwc` give the channels-last ``(H, W, C)`` arrays of
Captum's image visualisations; :func:`one_example` takes one signal or volume, channels
first; :func:`reduce_channels` is the channel combination all of them share.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor

from captum_leg.visualization.options import CHANNEL_REDUCTIONS, check_choice

ArrayLike = Union[Tensor, np.ndarray]


def to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """A tensor (float64, on the CPU) or array as numpy; a 1-tuple holding one is unwrapped."""
    if isinstance(x, tuple) and len(x) == 1:  # Captum's tuple-in, tuple-out convention
        x = x[0]
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def reduce_channels(a: np.ndarray, channel_reduction: str, channel_axis: int = -3) -> np.ndarray:
    """Combines the channels on ``channel_axis`` (-3 for ``(..., C, H, W)``); keeps that axis."""
    if channel_reduction == "none":
        return a
    if channel_reduction == "sum":
        out = a.sum(axis=channel_axis)
    elif channel_reduction == "mean":
        out = a.mean(axis=channel_axis)
    elif channel_reduction == "mean_abs":
        out = np.abs(a).mean(axis=channel_axis)
    elif channel_reduction == "sum_abs":
        out = np.abs(a).sum(axis=channel_axis)
    else:  # "max_abs"
        out = np.abs(a).max(axis=channel_axis)
    return np.expand_dims(out, channel_axis)


def attr_to_hwc(
    attr: ArrayLike,
    channel_reduction: str = "sum",
) -> np.ndarray:
    r"""
    Converts attributions in PyTorch layout to the channels-last numpy layout that
    Captum's image visualisations expect.

    Args:

        attr (Tensor or numpy.ndarray): Attribution(s) in channels-first layout (a
                    1-tuple holding one is unwrapped):
                    ``(H, W)``, ``(C, H, W)``, ``(N, C, H, W)`` (a batch, as returned by
                    ``attribute``) or ``(L, N, C, H, W)`` (the lambda stack returned by
                    LEG-TV with several ``lam``). Leading dimensions are kept.
        channel_reduction (str, optional): How the channels are combined:

                    - ``"sum"``: signed sum over channels (what Captum's
                      ``visualize_image_attr`` does).
                    - ``"mean"``: signed mean over channels.
                    - ``"mean_abs"``: mean of absolute values (the LEG reference's
                      combination for RGB; the result is non-negative).
                    - ``"sum_abs"`` / ``"max_abs"``: sum / maximum of absolute values.
                    - ``"none"``: keep every channel.

                    Default: ``"sum"``

    Returns:
        numpy.ndarray: float64 array of shape ``(..., H, W, C')`` where the leading
        dimensions are those of ``attr`` before ``(C, H, W)``, and ``C'`` is 1 for a
        reduction and ``C`` for ``"none"``. A ``(C, H, W)`` input gives ``(H, W, C')``,
        ready for ``visualize_image_attr(attr_to_hwc(a[0]), ...)``.

    Examples::

        >>> attr = LEG(model).attribute(x, target=281)       # (1, 3, 224, 224)
        >>> hwc = attr_to_hwc(attr[0], "mean_abs")            # (224, 224, 1)
        >>> visualize_image_attr(hwc, image_to_hwc(unnormalize(x)), "blended_heat_map")
    """
    check_choice(channel_reduction, CHANNEL_REDUCTIONS, "channel_reduction")
    a = to_numpy(attr, "attr").astype(np.float64, copy=False)
    if a.ndim == 2:
        a = a[None]
    if not 3 <= a.ndim <= 5:
        raise ValueError(
            "attr: expected a (H, W), (C, H, W), (N, C, H, W) or (L, N, C, H, W) array, "
            f"got shape {tuple(a.shape)}"
        )
    if 0 in a.shape:
        raise ValueError(f"attr: empty array of shape {tuple(a.shape)}")
    return np.moveaxis(reduce_channels(a, channel_reduction), -3, -1)


def image_to_hwc(image: ArrayLike) -> np.ndarray:
    r"""
    Converts an image to a float ``(H, W, C)`` array with values in [0, 1].

    Args:

        image (Tensor or numpy.ndarray): ``(1, C, H, W)`` or ``(C, H, W)`` tensor with
                    values in [0, 1] (undo an ImageNet normalisation first, e.g. with
                    :func:`captum_leg.models.unnormalize`), or an ``(H, W, C)`` /
                    ``(H, W)`` array, uint8 in [0, 255] or float in [0, 1] (floats with
                    a maximum above 1 are read as [0, 255], as Captum does).
                    ``C`` is 1 or 3 (a 4th, alpha, channel is dropped).

    Returns:
        numpy.ndarray: float64 array of shape ``(H, W, C)``, values in [0, 1].
    """
    is_tensor = isinstance(image, Tensor)
    img = to_numpy(image, "image")
    if is_tensor:
        if img.ndim == 4 and img.shape[0] == 1:
            img = img[0]
        if img.ndim == 2:
            img = img[None]
        if img.ndim != 3:
            raise ValueError(
                f"image: expected a (1, C, H, W) or (C, H, W) tensor, got shape {tuple(img.shape)}"
            )
        img = np.moveaxis(img, 0, -1)
    elif img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image: expected (H, W, C) with C in (1, 3, 4), got shape {tuple(img.shape)}"
        )
    img = img[..., :3]
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    img = img.astype(np.float64)
    if img.size and img.min() < -1e-3:
        raise ValueError(
            "image: has negative values; pass pixels in [0, 1] or [0, 255] "
            "(for an ImageNet-normalised tensor use captum_leg.models.unnormalize first)"
        )
    if img.size and img.max() > 1.0:
        img = img / 255.0
    return np.clip(img, 0.0, 1.0)


def one_example(x: ArrayLike, name: str, spatial: int, layouts: str) -> np.ndarray:
    """``(*S)``, ``(C, *S)`` or ``(1, C, *S)`` with ``spatial`` axes ``S``, as float64 ``(C, *S)``."""
    a = to_numpy(x, name).astype(np.float64, copy=False)
    if a.ndim == spatial + 2:
        if a.shape[0] != 1:
            raise ValueError(
                f"{name}: one example at a time, got a batch of {a.shape[0]} (shape "
                f"{tuple(a.shape)}); pass {name}[i:i + 1]"
            )
        a = a[0]
    elif a.ndim == spatial:
        a = a[None]
    if a.ndim != spatial + 1:
        raise ValueError(f"{name}: expected {layouts}, got shape {tuple(a.shape)}")
    if 0 in a.shape:
        raise ValueError(f"{name}: empty array of shape {tuple(a.shape)}")
    return a
