"""Key size and sensitivity curves: mask the most salient pixels and watch the classifier.

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
  channel (so it lowers the evidence), clamped to ``[0, 1]`` pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from captum_leg.models import IMAGENET_MEAN, IMAGENET_STD

PixelSpace = Union[str, Tuple[Sequence[float], Sequence[float]]]
TargetType = Union[None, int, Sequence[int], Tensor]

MASKS: Tuple[str, ...] = ("mean", "black", "white", "noise", "shift")

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


# ---------------------------------------------------------------------------------------
# validation helpers
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
        try:
            mean, std = (list(map(float, np.atleast_1d(np.asarray(v, dtype=float)))) for v in pixel_space)
        except (TypeError, ValueError):
            raise TypeError(f"pixel_space must be 'imagenet', 'unit' or (mean, std), got {pixel_space!r}")
        if len(mean) == 1:
            mean = mean * channels
        if len(std) == 1:
            std = std * channels
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"pixel_space: mean/std need {channels} entries, got {len(mean)}/{len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"pixel_space: std must be > 0, got {std}")
    m = torch.tensor(mean, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    return m, s


def _check_inputs(inputs: Tensor, attributions: Tensor) -> Tensor:
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


Steps = Union[int, Sequence[float], None]


def _check_steps(steps: Steps, default: Sequence[float], start: float) -> Tensor:
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
        values: Sequence[float] = np.linspace(first, 1.0, steps) if steps > 1 else [1.0]
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
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
    return mask


def _check_batch(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return batch_size


def _targets(target: TargetType, n: int, device: torch.device) -> Optional[Tensor]:
    if target is None:
        return None
    t = torch.as_tensor(target, device=device).long().flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(f"target must be an int or have one entry per input ({n}), got {t.numel()}")
    return t


# ---------------------------------------------------------------------------------------
# masking
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
        mask: one of :data:`MASKS` (see the module docstring).
        pixel_space: how inputs map to ``[0, 1]`` pixels (see module docstring).
        shift: pixel-space amount of the ``"shift"`` mask.
        seed: seed of the ``"noise"`` mask.

    Returns:
        ``(N, C, H, W)`` replacement values (a new tensor).
    """
    _check_mask(mask)
    attributions = _check_inputs(inputs, attributions)
    x = inputs.detach()
    mean, std = pixel_affine(pixel_space, x.shape[1], x)
    if mask == "mean":
        return x.mean((2, 3), keepdim=True).expand_as(x).clone()
    if mask == "black":
        return ((0.0 - mean) / std).expand_as(x).clone()
    if mask == "white":
        return ((1.0 - mean) / std).expand_as(x).clone()
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


def _counts(fractions: Tensor, n_pixels: int) -> Tensor:
    return torch.round(fractions * n_pixels).long()


def _masked_batches(
    inputs: Tensor,
    fill: Tensor,
    ranks: Tensor,
    counts: Tensor,
    batch_size: int,
) -> Iterator[Tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(image_idx, step_idx, masked (B, C, H, W))`` chunks of at most ``batch_size``."""
    N, C, H, W = inputs.shape
    S = counts.numel()
    img = torch.arange(N).repeat_interleave(S)
    stp = torch.arange(S).repeat(N)
    for start in range(0, N * S, batch_size):
        i = img[start : start + batch_size]
        s = stp[start : start + batch_size]
        keep = ranks[i.to(ranks.device)] < counts[s].to(ranks.device)[:, None]  # (B, HW)
        m = keep.view(-1, 1, H, W)
        yield i, s, torch.where(m, fill[i.to(fill.device)], inputs[i.to(inputs.device)])


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
    shift: float = 100.0 / 255.0,
    batch_size: int = 64,
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
        mask: ``"mean"``, ``"black"``, ``"white"``, ``"noise"`` or ``"shift"``.
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
    attributions = _check_inputs(inputs, attributions)
    f = _check_steps(steps, DEFAULT_KEY_FRACTIONS, start=-1.0)
    _check_batch(batch_size)
    x = inputs.detach()
    N, C, H, W = x.shape
    tgt = _targets(target, N, x.device)
    if tgt is None:
        tgt = forward_func(x).argmax(-1)
    fill = mask_fill(x, attributions, mask, pixel_space=pixel_space, shift=shift, seed=seed)
    ranks = pixel_ranks(attributions, seed)
    counts = _counts(f, H * W)
    result = torch.ones(N, dtype=x.dtype, device=x.device)
    pending = torch.arange(N, device=x.device)
    pos = 0
    S = counts.numel()
    while pos < S and pending.numel():
        # as many fractions per chunk as fill one forward batch for the pending images
        chunk = max(1, batch_size // pending.numel())
        sl = slice(pos, min(S, pos + chunk))
        changed = torch.zeros(pending.numel(), counts[sl].numel(), dtype=torch.bool, device=x.device)
        for i, s, batch in _masked_batches(x[pending], fill[pending], ranks[pending], counts[sl], batch_size):
            pred = forward_func(batch).argmax(-1)
            changed[i.to(x.device), s.to(x.device)] = pred != tgt[pending][i.to(x.device)]
        hit = changed.any(1)
        first = changed.float().argmax(1)
        result[pending[hit]] = f[sl].to(x.device, x.dtype)[first[hit]]
        pending = pending[~hit]
        pos = sl.stop
    return result


# ---------------------------------------------------------------------------------------
# sensitivity curves
# ---------------------------------------------------------------------------------------
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
    shift: float = 100.0 / 255.0,
    batch_size: int = 64,
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
    attributions = _check_inputs(inputs, attributions)
    f = _check_steps(steps, np.linspace(0, 1, 21), start=0.0)
    _check_batch(batch_size)
    if f[0] > 0:
        f = torch.cat([f.new_zeros(1), f])
    x = inputs.detach()
    N, C, H, W = x.shape
    tgt = _targets(target, N, x.device)
    if tgt is None:
        tgt = forward_func(x).argmax(-1)
    fill = mask_fill(x, attributions, mask, pixel_space=pixel_space, shift=shift, seed=seed)
    ranks = pixel_ranks(attributions, seed)
    counts = _counts(f, H * W)
    prob = torch.empty(N, counts.numel(), dtype=torch.float64)
    for i, s, batch in _masked_batches(x, fill, ranks, counts, batch_size):
        out = forward_func(batch)
        p = out.softmax(-1) if apply_softmax else out
        prob[i, s] = p.gather(1, tgt[i.to(tgt.device)][:, None])[:, 0].double().cpu()
    lo = _log_odds(prob)
    return SensitivityCurve(f.numpy(), prob.numpy(), (lo - lo[:, :1]).numpy())


def sensitivity_curves(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    maps: Mapping[str, Tensor],
    target: TargetType = None,
    mask: str = "mean",
    steps: Steps = None,
    **kwargs,
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


def plot_sensitivity(
    curves: Mapping[str, SensitivityCurve],
    path: Optional[str] = None,
    title: Optional[str] = None,
):
    """Plot mean target probability and mean log-odds ratio against the masked fraction.

    Args:
        curves: method name -> :class:`SensitivityCurve`.
        path: where to save the figure (PNG/PDF/...); ``None`` only returns it.
        title: figure title.

    Returns:
        A ``matplotlib.figure.Figure`` that pyplot does not manage: no backend is
        selected and nothing needs closing (display it in a notebook, or save it).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for name, c in curves.items():
        axes[0].plot(c.fractions, c.probability.mean(0), marker=".", label=name)
        axes[1].plot(c.fractions, c.log_odds.mean(0), marker=".", label=name)
    axes[0].set(xlabel="fraction of pixels masked", ylabel="target probability (mean)")
    axes[1].set(xlabel="fraction of pixels masked", ylabel="log-odds ratio (mean)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return finish_figure(fig, title, path)


def finish_figure(fig: Any, title: Optional[str], path: Optional[str]) -> Any:
    """Title, tight layout, and (when ``path`` is given) save at 120 dpi."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
