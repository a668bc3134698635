"""Masking pixels in order of saliency: pixel space, replacement values, one masking setup.

Conventions (as in the LEG paper, Luo, Barut, Jin, ICCV 2021):

* **Pixel order.** A map ``(N, C, H, W)`` (or ``(N, 1, H, W)``) is reduced to one score per
  pixel, the mean of ``|attribution|`` over channels, and pixels are masked in decreasing
  score. Ties (LEG maps are constant on grid cells) are broken by a seeded random
  permutation, so that no spatial scan order is favoured.
* **Pixel space.** Inputs are usually normalised tensors, yet "black", "white", noise and
  shift amounts are pixel-space notions. ``pixel_space`` says how an input tensor maps to
  pixels in ``[0, 1]``: ``pixel = x * std + mean`` per channel. ``"imagenet"`` (default,
  matches :func:`captum_leg.models.preprocess`) uses the ImageNet mean/std, ``"unit"``
  means the inputs already are ``[0, 1]`` pixels, and a pair ``(mean, std)`` of per-channel
  sequences describes any other affine normalisation.
* **Masks.** ``"mean"``: each image's mean colour; ``"black"``: pixel 0; ``"white"``:
  pixel 1; ``"noise"``: uniform random pixels in ``[0, 1]`` (seeded, the same noise for
  every fraction so masks are nested); ``"shift"``: move each masked value by ``shift``
  (pixel units, default ``100/255`` as in the paper) *against* the sign of the map's
  channel (so it lowers the evidence), clamped to ``[0, 1]`` pixels; ``"blur"`` (not one
  of the paper's key-size masks; the start of RISE's insertion curve): the image blurred
  by a Gaussian of standard deviation 5 pixels truncated at 5 pixels (RISE's 11-tap
  kernel), edges reflected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import Tensor

from captum_leg.models import IMAGENET_MEAN, IMAGENET_STD
from captum_leg.targets import TargetType, parse_class_target

PixelSpace = Union[str, Tuple[Sequence[float], Sequence[float]]]
Steps = Union[int, Sequence[float], None]

#: The paper's key-size masks.
MASKS: Tuple[str, ...] = ("mean", "black", "white", "noise", "shift")
#: Every replacement :func:`mask_fill` knows: the paper's masks and RISE's blur.
FILLS: Tuple[str, ...] = MASKS + ("blur",)
#: RISE's blur (Petsiuk et al. 2018): a Gaussian of sigma 5 pixels on 11 taps.
BLUR_SIGMA = 5.0
BLUR_RADIUS = 5
#: Masked images per forward pass of the metrics when ``batch_size`` is left out.
MASKED_PER_FORWARD = 64


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------
def pixel_affine(pixel_space: PixelSpace, channels: int, like: Tensor) -> Tuple[Tensor, Tensor]:
    """``(mean, std)`` as ``(1, C, 1, 1)`` tensors with ``pixel = x * std + mean``.

    Args:
        pixel_space: ``"imagenet"``, ``"unit"`` or ``(mean, std)`` per-channel sequences.
        channels: number of input channels ``C``.
        like: tensor whose device/dtype the result takes.

    Returns:
        ``(mean, std)``.
    """
    if isinstance(pixel_space, str):
        if pixel_space == "unit":
            mean, std = [0.0] * channels, [1.0] * channels
        elif pixel_space == "imagenet":
            if channels != 3:
                raise ValueError(
                    f"pixel_space: 'imagenet' needs 3 channels, the inputs have {channels}; "
                    "pass 'unit' or (mean, std)"
                )
            mean, std = list(IMAGENET_MEAN), list(IMAGENET_STD)
        else:
            raise ValueError(f"pixel_space must be 'imagenet', 'unit' or (mean, std), got {pixel_space!r}")
    else:
        mean, std = _affine_pair(pixel_space, channels)
    m = torch.tensor(mean, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    return m, s


def _affine_pair(
    pixel_space: Tuple[Sequence[float], Sequence[float]], channels: int
) -> Tuple[List[float], List[float]]:
    try:
        mean, std = (list(map(float, np.atleast_1d(np.asarray(v, dtype=float)))) for v in pixel_space)
    except (TypeError, ValueError):
        raise TypeError(f"pixel_space must be 'imagenet', 'unit' or (mean, std), got {pixel_space!r}")
    mean = mean * channels if len(mean) == 1 else mean
    std = std * channels if len(std) == 1 else std
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"pixel_space: mean/std need {channels} entries, got {len(mean)}/{len(std)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"pixel_space: std must be > 0, got {std}")
    return mean, std


def check_inputs(inputs: Tensor, attributions: Tensor) -> Tensor:
    """The attributions, detached, on the inputs' device and dtype (both validated)."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(inputs).__name__}")
    if inputs.dim() != 4:
        raise ValueError(f"inputs must be (N, C, H, W), got shape {tuple(inputs.shape)}")
    if not isinstance(attributions, Tensor):
        raise TypeError(f"attributions must be a torch.Tensor, got {type(attributions).__name__}")
    N, C, H, W = inputs.shape
    if attributions.dim() != 4 or attributions.shape[0] != N or attributions.shape[2:] != (H, W) or (
        attributions.shape[1] not in (1, C)
    ):
        raise ValueError(
            f"attributions must be (N, C, H, W) or (N, 1, H, W) matching inputs {tuple(inputs.shape)}, "
            f"got {tuple(attributions.shape)}"
        )
    return attributions.detach().to(device=inputs.device, dtype=inputs.dtype)


def check_steps(steps: Steps, default: Union[Sequence[float], np.ndarray], start: float) -> Tensor:
    """Masked fractions from ``steps``.

    An int gives that many evenly spaced fractions ending at 1, starting at ``start``
    (``1 / steps`` when ``start`` is negative); a sequence gives the fractions themselves.
    """
    if isinstance(steps, bool):
        raise TypeError("steps: expected an int or a sequence of fractions, got bool")
    if isinstance(steps, int):
        if steps < 1:
            raise ValueError(f"steps: expected an int >= 1, got {steps}")
        first = start if start >= 0 else 1.0 / steps
        values: Union[Sequence[float], np.ndarray] = np.linspace(first, 1.0, steps) if steps > 1 else [1.0]
    else:
        values = default if steps is None else steps
    f = torch.as_tensor(values, dtype=torch.float64).flatten()
    if f.numel() == 0:
        raise ValueError("steps: the masked fractions must not be empty")
    if bool(((f < 0) | (f > 1)).any()) or not bool(torch.isfinite(f).all()):
        raise ValueError(f"steps: masked fractions must lie in [0, 1], got {f.tolist()}")
    if f.numel() > 1 and not bool((f[1:] > f[:-1]).all()):
        raise ValueError("steps: masked fractions must be strictly increasing")
    return f


def _check_mask(mask: str) -> str:
    if not isinstance(mask, str):
        raise TypeError(f"mask must be a string, got {type(mask).__name__}")
    if mask not in FILLS:
        raise ValueError(f"mask must be one of {FILLS}, got {mask!r}")
    return mask


def check_batch(batch_size: int) -> int:
    """``batch_size`` if it is an int >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size


# ---------------------------------------------------------------------------------------
# order and replacement values
# ---------------------------------------------------------------------------------------
def pixel_ranks(attributions: Tensor, seed: Optional[int] = 0) -> Tensor:
    """Rank of every pixel by mean-over-channels ``|attribution|`` (0 = most salient).

    Args:
        attributions: ``(N, C, H, W)`` maps.
        seed: seed of the random tie-break permutation (``None``: unseeded).

    Returns:
        ``(N, H*W)`` long tensor of ranks.
    """
    N = attributions.shape[0]
    score = attributions.abs().mean(1).reshape(N, -1)
    P = score.shape[1]
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    perm = torch.randperm(P, generator=gen).to(score.device)
    # stable sort of the permuted scores = sort with a random tie-break
    order = perm[torch.sort(score[:, perm], dim=1, descending=True, stable=True).indices]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(P, device=score.device).expand(N, P))
    return ranks


def blur(inputs: Tensor, sigma: float = BLUR_SIGMA, radius: int = BLUR_RADIUS) -> Tensor:
    """Each image and channel blurred by a Gaussian (``radius`` taps each side, reflected edges)."""
    arr = inputs.detach().cpu().double().numpy()
    out = gaussian_filter(arr, sigma=(0, 0, sigma, sigma), truncate=radius / sigma, mode="reflect")
    return torch.from_numpy(out).to(device=inputs.device, dtype=inputs.dtype)


def mask_fill(
    inputs: Tensor,
    attributions: Tensor,
    mask: str = "mean",
    *,
    pixel_space: PixelSpace = "imagenet",
    shift: float = 100.0 / 255.0,
    seed: Optional[int] = 0,
) -> Tensor:
    """The values that replace masked pixels, in the inputs' (normalised) units.

    Args:
        inputs: ``(N, C, H, W)`` inputs.
        attributions: maps shaped like ``inputs`` or ``(N, 1, H, W)``.
        mask: one of :data:`FILLS` (see the module docstring).
        pixel_space: how inputs map to ``[0, 1]`` pixels (see module docstring).
        shift: pixel-space amount of the ``"shift"`` mask.
        seed: seed of the ``"noise"`` mask.

    Returns:
        ``(N, C, H, W)`` replacement values (a new tensor).
    """
    _check_mask(mask)
    attributions = check_inputs(inputs, attributions)
    x = inputs.detach()
    mean, std = pixel_affine(pixel_space, x.shape[1], x)
    if mask == "mean":
        return x.mean((2, 3), keepdim=True).expand_as(x).clone()
    if mask in ("black", "white"):
        return ((float(mask == "white") - mean) / std).expand_as(x).clone()
    if mask == "blur":
        return blur(x)
    if mask == "noise":
        gen = torch.Generator(device="cpu")
        gen.manual_seed(0 if seed is None else int(seed))
        u = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        return (u - mean) / std
    if not isinstance(shift, (int, float)) or isinstance(shift, bool) or not math.isfinite(shift) or shift < 0:
        raise ValueError(f"shift must be a finite number >= 0 (pixel units), got {shift!r}")
    pix = x * std + mean
    moved = (pix - torch.sign(attributions) * shift).clamp(0.0, 1.0)
    return (moved - mean) / std


# ---------------------------------------------------------------------------------------
# the masking setup shared by every metric
# ---------------------------------------------------------------------------------------
@dataclass
class Masking:
    """Inputs, targets, replacement values, pixel ranks and masked fractions of a metric.

    Attributes:
        inputs: ``(N, C, H, W)`` detached inputs.
        target: ``(N,)`` class of each input.
        fill: ``(N, C, H, W)`` replacement values.
        ranks: ``(N, H*W)`` pixel ranks (0 = most salient).
        fractions: ``(S,)`` float64 masked fractions (CPU).
        counts: ``(S,)`` pixels masked at each fraction.
    """

    inputs: Tensor
    target: Tensor
    fill: Tensor
    ranks: Tensor
    fractions: Tensor
    counts: Tensor

    def batches(
        self, images: Tensor, steps: slice, batch_size: int, reveal: bool = False
    ) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
        """Yield ``(row, step, images (B, C, H, W))`` chunks of at most ``batch_size``.

        ``row`` indexes ``images`` and ``step`` the fractions of ``steps``. Each image has
        its top ``count`` pixels replaced by the fill; with ``reveal`` it shows only
        those pixels, over the fill (an insertion curve).
        """
        N, S = images.numel(), self.counts[steps].numel()
        H, W = self.inputs.shape[2:]
        rows = torch.arange(N).repeat_interleave(S)
        stp = torch.arange(S).repeat(N)
        counts = self.counts[steps].to(self.ranks.device)
        for start in range(0, N * S, batch_size):
            r, s = rows[start : start + batch_size], stp[start : start + batch_size]
            idx = images[r].to(self.inputs.device)
            top = self.ranks[idx] < counts[s.to(counts.device)][:, None]  # (B, HW)
            replace = (~top if reveal else top).view(-1, 1, H, W)
            yield r, s, torch.where(replace, self.fill[idx], self.inputs[idx])


def prepare_masking(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType,
    mask: str,
    fractions: Tensor,
    *,
    pixel_space: PixelSpace,
    shift: float,
    batch_size: int,
    seed: Optional[int],
) -> Masking:
    """Validate a metric's arguments once and build its :class:`Masking`.

    Args:
        forward_func: the model; it predicts the target when ``target`` is None.
        fractions: masked fractions, already checked (see :func:`check_steps`).
        Others: see :func:`captum_leg.evaluation.key_size`.
    """
    attributions = check_inputs(inputs, attributions)
    check_batch(batch_size)
    x = inputs.detach()
    tgt = parse_class_target(target, x.shape[0])
    tgt = forward_func(x).argmax(-1) if tgt is None else tgt.to(x.device)
    fill = mask_fill(x, attributions, mask, pixel_space=pixel_space, shift=shift, seed=seed)
    counts = torch.round(fractions * x.shape[2] * x.shape[3]).long()
    return Masking(x, tgt, fill, pixel_ranks(attributions, seed), fractions, counts)
