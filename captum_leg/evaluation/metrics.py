"""Metrics that mask pixels in order of saliency: key size, sensitivity, deletion, insertion.

* **Key size** (the LEG paper): the smallest masked fraction that changes the prediction.
* **Sensitivity curve** (the LEG paper): the target probability, and its log-odds ratio
  to the unmasked image, as the most salient pixels are masked.
* **Deletion and insertion curves** (RISE, Petsiuk, Das, Saenko, BMVC 2018): the model's
  response to the target (its output, or that output's softmax) as the most salient
  pixels are removed from the image (deletion), or revealed over a start image
  (insertion); the area under each curve over the fraction in ``[0, 1]`` (trapezoid
  rule) summarises it. A faithful map gives a low deletion and a high insertion area.

Pixel order, pixel space and masks: see :mod:`captum_leg.evaluation.masking`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np
import torch
from scipy.integrate import trapezoid
from torch import Tensor

from captum_leg.evaluation.masking import (
    MASKED_PER_FORWARD,
    Masking,
    PixelSpace,
    Steps,
    check_steps,
    prepare_masking,
)
from captum_leg.targets import TargetType

#: Default fractions for :func:`key_size`: fine where key sizes usually are (0.5 %
#: steps up to 5 %), coarser above. 47 steps in (0, 1].
DEFAULT_KEY_FRACTIONS: Tuple[float, ...] = tuple(
    sorted(
        set(
            [round(0.005 * i, 4) for i in range(1, 11)]
            + [round(0.01 * i, 4) for i in range(6, 21)]
            + [round(0.2 + 0.025 * i, 4) for i in range(1, 13)]
            + [round(0.5 + 0.05 * i, 4) for i in range(1, 11)]
        )
    )
)

#: A cheaper grid (27 steps): 1 % steps to 10 %, 2.5 % to 30 %, 5 % to 50 %, 10 % to 1.
COARSE_KEY_FRACTIONS: Tuple[float, ...] = tuple(
    [round(0.01 * i, 4) for i in range(1, 11)]
    + [round(0.1 + 0.025 * i, 4) for i in range(1, 9)]
    + [round(0.3 + 0.05 * i, 4) for i in range(1, 5)]
    + [round(0.5 + 0.1 * i, 4) for i in range(1, 6)]
)

#: Points of a deletion or insertion curve by default: 0, 2 %, ..., 100 % (RISE used one
#: step per 224 pixels, 225 points at 224 x 224).
DEFAULT_CURVE_POINTS = 51

_SHIFT = 100.0 / 255.0


# ---------------------------------------------------------------------------------------
# key size
# ---------------------------------------------------------------------------------------
@torch.no_grad()
def key_size(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    mask: str = "mean",
    steps: Steps = None,
    *,
    pixel_space: PixelSpace = "imagenet",
    shift: float = _SHIFT,
    batch_size: int = MASKED_PER_FORWARD,
    seed: Optional[int] = 0,
) -> Tensor:
    """Smallest fraction of the most salient pixels whose masking changes the prediction.

    Pixels are ordered by mean-over-channels ``|attribution|`` (ties broken by a seeded
    random permutation); for each fraction ``alpha`` the top ``round(alpha * H * W)``
    pixels (all channels) are replaced by the mask. The key size is the first ``alpha``
    (in ``steps``) at which ``argmax forward_func(masked) != target``; ``1.0`` when
    it never changes. Fractions are evaluated in increasing order in chunks of batched
    forward passes; an image stops being evaluated once its class changed.

    Args:
        forward_func: model or function mapping ``(B, C, H, W)`` to ``(B, classes)``.
        inputs: ``(N, C, H, W)`` inputs (on the model's device).
        attributions: maps shaped like ``inputs`` or ``(N, 1, H, W)``.
        target: the class that must stop being predicted; default the prediction on
            the unmasked inputs (the paper's setting).
        mask: ``"mean"``, ``"black"``, ``"white"``, ``"noise"`` or ``"shift"`` (or
            ``"blur"``, see :data:`captum_leg.evaluation.masking.FILLS`).
        steps: the masked fractions tried: an int ``S`` gives ``1/S, 2/S, ..., 1``; a
            sequence gives increasing fractions in ``[0, 1]``; default
            :data:`DEFAULT_KEY_FRACTIONS` (fine where key sizes usually are).
        pixel_space: how inputs map to ``[0, 1]`` pixels: ``"imagenet"``, ``"unit"`` or
            ``(mean, std)``.
        shift: pixel-space amount for the ``"shift"`` mask.
        batch_size: masked images per forward pass.
        seed: seed of the tie-break order and of the noise mask.

    Returns:
        ``(N,)`` float tensor of key sizes (on the inputs' device).
    """
    f = check_steps(steps, DEFAULT_KEY_FRACTIONS, start=-1.0)
    m = prepare_masking(forward_func, inputs, attributions, target, mask, f, pixel_space=pixel_space,
                        shift=shift, batch_size=batch_size, seed=seed)
    x = m.inputs
    result = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
    pending = torch.arange(x.shape[0], device=x.device)
    pos, S = 0, f.numel()
    while pos < S and pending.numel():
        # as many fractions per chunk as fill one forward batch for the pending images
        sl = slice(pos, min(S, pos + max(1, batch_size // pending.numel())))
        changed = torch.zeros(pending.numel(), sl.stop - sl.start, dtype=torch.bool, device=x.device)
        for r, s, batch in m.batches(pending, sl, batch_size):
            r, s = r.to(x.device), s.to(x.device)
            changed[r, s] = forward_func(batch).argmax(-1) != m.target[pending[r]]
        hit = changed.any(1)
        result[pending[hit]] = f[sl].to(x.device, x.dtype)[changed.float().argmax(1)[hit]]
        pending = pending[~hit]
        pos = sl.stop
    return result


# ---------------------------------------------------------------------------------------
# curves
# ---------------------------------------------------------------------------------------
def _responses(forward_func: Callable[..., Tensor], m: Masking, batch_size: int, apply_softmax: bool,
               reveal: bool = False) -> Tensor:
    """``(N, S)`` float64 CPU tensor: the target's output on every masked image."""
    N = m.inputs.shape[0]
    out = torch.empty(N, m.counts.numel(), dtype=torch.float64)
    everything = torch.arange(N, device=m.inputs.device)
    for r, s, batch in m.batches(everything, slice(None), batch_size, reveal=reveal):
        y = forward_func(batch)
        y = y.softmax(-1) if apply_softmax else y
        out[r, s] = y.gather(1, m.target[r.to(m.target.device)][:, None])[:, 0].double().cpu()
    return out


@dataclass
class SensitivityCurve:
    """Target probability as the masked fraction grows.

    Attributes:
        fractions: ``(S,)`` masked fractions (increasing, numpy).
        probability: ``(N, S)`` target probability per image and fraction.
        log_odds: ``(N, S)`` log-odds ratio ``logit(p_alpha) - logit(p_0)`` where
            ``p_0`` is the probability on the unmasked image.
    """

    fractions: np.ndarray
    probability: np.ndarray
    log_odds: np.ndarray

    @classmethod
    def from_probability(cls, fractions: np.ndarray, probability: np.ndarray) -> "SensitivityCurve":
        """The curve of ``probability`` (``(N, S)``, the first fraction the reference)."""
        lo = _log_odds(torch.as_tensor(np.asarray(probability, dtype=float)))
        return cls(np.asarray(fractions), np.asarray(probability, dtype=float), (lo - lo[:, :1]).numpy())


def _log_odds(p: Tensor, eps: float = 1e-7) -> Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


@torch.no_grad()
def sensitivity_curve(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    mask: str = "mean",
    steps: Steps = None,
    *,
    apply_softmax: bool = True,
    pixel_space: PixelSpace = "imagenet",
    shift: float = _SHIFT,
    batch_size: int = MASKED_PER_FORWARD,
    seed: Optional[int] = 0,
) -> SensitivityCurve:
    """Target probability (and log-odds ratio) as the most salient pixels are masked.

    Args:
        forward_func: model or function mapping ``(B, C, H, W)`` to ``(B, classes)``.
        inputs: ``(N, C, H, W)`` inputs.
        attributions: maps shaped like ``inputs`` or ``(N, 1, H, W)``.
        target: class whose probability is tracked; default the unmasked prediction.
        mask: see :func:`key_size`.
        steps: the masked fractions: an int ``S`` gives ``S`` points from 0 to 1, a
            sequence gives increasing fractions in ``[0, 1]``; default 21 points
            ``0, 0.05, ..., 1``.
        apply_softmax: ``forward_func`` returns logits (``True``) or probabilities.
        pixel_space, shift, batch_size, seed: see :func:`key_size`.

    Returns:
        A :class:`SensitivityCurve` (the fraction 0 is always included as the reference
        for the log-odds ratio).
    """
    f = check_steps(steps, np.linspace(0, 1, 21), start=0.0)
    if f[0] > 0:
        f = torch.cat([f.new_zeros(1), f])
    m = prepare_masking(forward_func, inputs, attributions, target, mask, f, pixel_space=pixel_space,
                        shift=shift, batch_size=batch_size, seed=seed)
    return SensitivityCurve.from_probability(f.numpy(), _responses(forward_func, m, batch_size, apply_softmax).numpy())


def sensitivity_curves(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    maps: Mapping[str, Tensor],
    target: TargetType = None,
    mask: str = "mean",
    steps: Steps = None,
    **kwargs: Any,
) -> Dict[str, SensitivityCurve]:
    """:func:`sensitivity_curve` for several methods' maps of the same inputs.

    Args:
        maps: method name -> attributions.
        Others: see :func:`sensitivity_curve`.

    Returns:
        method name -> :class:`SensitivityCurve`.
    """
    if not isinstance(maps, Mapping) or not maps:
        raise TypeError("maps must be a non-empty mapping of method name -> attributions")
    return {
        name: sensitivity_curve(forward_func, inputs, a, target, mask, steps, **kwargs)
        for name, a in maps.items()
    }


@dataclass
class CausalCurve:
    """A deletion or insertion curve (RISE's "causal metrics").

    Attributes:
        kind: ``"deletion"`` or ``"insertion"``.
        fractions: ``(S,)`` fractions of pixels removed (deletion) or revealed
            (insertion), from 0 to 1.
        response: ``(N, S)`` the target's output (or its softmax) per image and fraction.
        auc: ``(N,)`` area under each image's curve over ``[0, 1]`` (trapezoid rule).
    """

    kind: str
    fractions: np.ndarray
    response: np.ndarray
    auc: np.ndarray


def curve_auc(fractions: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Area under ``response`` (``(..., S)``) over ``fractions`` by the trapezoid rule."""
    return np.asarray(trapezoid(np.asarray(response, dtype=float), np.asarray(fractions, dtype=float), axis=-1))


def _curve_fractions(steps: Steps) -> Tensor:
    f = check_steps(steps, np.linspace(0, 1, DEFAULT_CURVE_POINTS), start=0.0)
    if f[0] > 0:
        f = torch.cat([f.new_zeros(1), f])
    if f[-1] < 1:
        f = torch.cat([f, f.new_ones(1)])
    return f


@torch.no_grad()
def deletion_curve(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    mask: str = "black",
    steps: Steps = None,
    *,
    apply_softmax: bool = False,
    pixel_space: PixelSpace = "imagenet",
    shift: float = _SHIFT,
    batch_size: int = MASKED_PER_FORWARD,
    seed: Optional[int] = 0,
) -> CausalCurve:
    """RISE's deletion curve: the response as the most salient pixels are removed.

    Args:
        forward_func: model or function mapping ``(B, C, H, W)`` to ``(B, classes)``.
        inputs: ``(N, C, H, W)`` inputs.
        attributions: maps shaped like ``inputs`` or ``(N, 1, H, W)``.
        target: class whose response is tracked; default the unmasked prediction.
        mask: what a removed pixel becomes (see :func:`key_size`); default black.
        steps: fractions removed: an int ``S`` gives ``S`` points from 0 to 1, a sequence
            gives increasing fractions (0 and 1 are added when missing); default
            :data:`DEFAULT_CURVE_POINTS` points.
        apply_softmax: track the softmax of the output (for a model returning logits)
            rather than the output itself (a probability when ``forward_func`` returns
            probabilities, a logit when it returns logits).
        pixel_space, shift, batch_size, seed: see :func:`key_size`.

    Returns:
        A :class:`CausalCurve`; lower areas are better.
    """
    f = _curve_fractions(steps)
    m = prepare_masking(forward_func, inputs, attributions, target, mask, f, pixel_space=pixel_space,
                        shift=shift, batch_size=batch_size, seed=seed)
    y = _responses(forward_func, m, batch_size, apply_softmax).numpy()
    return CausalCurve("deletion", f.numpy(), y, curve_auc(f.numpy(), y))


@torch.no_grad()
def insertion_curve(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    attributions: Tensor,
    target: TargetType = None,
    start: str = "blur",
    steps: Steps = None,
    *,
    apply_softmax: bool = False,
    pixel_space: PixelSpace = "imagenet",
    batch_size: int = MASKED_PER_FORWARD,
    seed: Optional[int] = 0,
) -> CausalCurve:
    """RISE's insertion curve: the response as the most salient pixels are revealed.

    At fraction ``alpha`` the image shows its top ``alpha`` pixels over the start image:
    ``alpha = 0`` is the start image, ``alpha = 1`` the image itself.

    Args:
        start: the image pixels are revealed over: ``"blur"`` (RISE's choice: the image
            blurred, see :mod:`captum_leg.evaluation.masking`), or any other mask of
            :func:`key_size` but ``"shift"`` (e.g. ``"mean"``).
        Others: see :func:`deletion_curve`.

    Returns:
        A :class:`CausalCurve`; higher areas are better.
    """
    if start == "shift":
        raise ValueError("start: 'shift' depends on the map's sign, it is no start image; use 'blur' or 'mean'")
    f = _curve_fractions(steps)
    m = prepare_masking(forward_func, inputs, attributions, target, start, f, pixel_space=pixel_space,
                        shift=_SHIFT, batch_size=batch_size, seed=seed)
    y = _responses(forward_func, m, batch_size, apply_softmax, reveal=True).numpy()
    return CausalCurve("insertion", f.numpy(), y, curve_auc(f.numpy(), y))
