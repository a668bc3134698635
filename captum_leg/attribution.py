"""``LinearlyEstimatedGradient`` (``LEG``): LEG and LEG-TV saliency as a Captum attribution.

Data flows one way: sample grid noise -> batched forward passes -> Monte-Carlo moment
-> estimate (closed-form LEG or the LEG-TV linear program) -> upsample to pixels.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from captum._utils.common import (
    _expand_additional_forward_args,
    _format_additional_forward_args,
)
from captum._utils.progress import NullProgress, progress
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_leg.estimators import MomentAccumulator, leg_tv
from captum_leg.grid import get_grid
from captum_leg.pixels import CellMap
from captum_leg.sampling import SAMPLING_SCHEMES, NoiseStream, make_generator
from captum_leg.targets import TargetIndex, TargetType, parse_target

PENALTIES = (None, "tv")

#: Default noise level, in the units of the input tensor. The reference uses s = 0.02
#: on pixels scaled to [0, 1]; ImageNet normalisation divides by std ~ 0.226, so
#: 0.02 / 0.226 ~ 0.09 gives the same perturbation on the usual normalised inputs.
DEFAULT_NOISE_LEVEL = 0.09
#: The reference's noise level for inputs scaled to [0, 1].
UNIT_NOISE_LEVEL = 0.02

InputType = Union[Tensor, Tuple[Tensor]]


class LinearlyEstimatedGradient(PerturbationAttribution):
    r"""
    Linearly Estimated Gradient (LEG) and its total-variation variant LEG-TV.

    LEG perturbs the input with structured Gaussian noise ``X`` on a coarse grid of
    cells (covariance ``Sigma = s^2 (L + 1 1^T / p)``, ``L`` the grid's Dirichlet
    Laplacian, so neighbouring cells are anti-correlated), observes
    ``y = f(x0 + X) - f(x0)`` and estimates the gradient of the Gaussian-smoothed model,
    ``E[grad f(x0 + X)]``, by the closed form ``Sigma^{-1} (1/n) sum_i y_i X_i``
    (Stein's lemma). The estimate is statistically consistent: its error shrinks like
    ``1/sqrt(n)``, and ``return_standard_error=True`` reports it per pixel. LEG-TV
    replaces the closed form by a linear program that finds the map of least total
    variation within a relative distance ``lam`` of the data: sparse, piecewise-constant
    maps at small ``n``.

    Each colour channel is perturbed on its own (the reference implementation's
    scheme), so an input with ``C`` channels costs ``C * n_samples`` forward passes
    plus one, evaluated ``perturbations_per_eval`` at a time. All examples of a batch
    share the same perturbations, so an example's map does not depend on the batch it
    came in.

    More details: Luo, Barut, Jin, "Statistically Consistent Saliency Estimation",
    ICCV 2021. https://arxiv.org/abs/2010.07051
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        r"""
        Args:

            forward_func (Callable): The forward function of the model or any
                        modification of it. It takes a batch ``(B, C, H, W)`` (and the
                        additional forward args) and returns one row per example.
        """
        if not callable(forward_func):
            raise TypeError(
                f"forward_func: expected a callable model or function, got "
                f"{type(forward_func).__name__}"
            )
        PerturbationAttribution.__init__(self, forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        return False

    @log_usage()
    def attribute(
        self,
        inputs: InputType,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        *,
        n_samples: int = 500,
        noise_level: Union[float, Sequence[float], Tensor] = DEFAULT_NOISE_LEVEL,
        grid_size: Union[int, Tuple[int, int]] = 28,
        penalty: Optional[str] = None,
        lam: Union[float, Sequence[float]] = 0.1,
        solver: str = "auto",
        sampling: str = "gaussian",
        contrast_target: TargetType = None,
        perturbations_per_eval: int = 64,
        seed: Optional[int] = None,
        show_progress: bool = False,
        return_standard_error: bool = False,
        solver_options: Optional[Dict[str, Any]] = None,
    ) -> Union[InputType, Tuple[InputType, InputType]]:
        r"""
        Args:

            inputs (Tensor or tuple[Tensor]): Images ``(N, C, H, W)`` to explain, or a
                        1-tuple holding such a tensor. A tensor in gives a tensor out,
                        a tuple in gives a tuple out. Floating point, finite values.
            target (int, tuple, Tensor, or list, optional): Output indices for which
                        the maps are computed, in any of Captum's forms: an int or a
                        tuple applied to every example, a 1-D tensor or a list with one
                        entry per example. May be None only if the model returns one
                        scalar per example.
                        Default: None
            additional_forward_args (Any, optional): Extra arguments of
                        ``forward_func`` after the input. Tensors whose first
                        dimension is the batch are repeated for every perturbation
                        batch, as in Captum.
                        Default: None
            n_samples (int, optional): Perturbations per channel (``n`` of the
                        method). The error of LEG shrinks like ``1/sqrt(n_samples)``.
                        Default: 500
            noise_level (float or sequence of float, optional): The noise scale ``s``,
                        in the units of the input tensor; each cell's perturbation has
                        standard deviation about ``2 s``. A sequence gives one level
                        per channel, e.g. ``[0.02 / sd for sd in (0.229, 0.224,
                        0.225)]`` for exactly the reference's 0.02 on [0, 1] pixels
                        under ImageNet normalisation. Use 0.02 for inputs in [0, 1].
                        Default: 0.09 (the reference's 0.02 for ImageNet-normalised
                        inputs)
            grid_size (int or tuple[int, int], optional): Cells ``k1 x k2`` of the
                        perturbation grid; cells need not divide the image, and the
                        image size itself gives a full-resolution map.
                        Default: 28
            penalty (str or None, optional): None for LEG (closed form), "tv" for
                        LEG-TV (a linear program per map).
                        Default: None
            lam (float or sequence of float, optional): LEG-TV's relative constraint
                        level in (0, 1): larger is sparser, ``lam -> 0`` recovers LEG.
                        A sequence reuses one set of samples and stacks the maps along a
                        new leading dimension. Only used with ``penalty="tv"``.
                        Default: 0.1
            solver (str, optional): LEG-TV backend from
                        :func:`captum_leg.solvers.available_solvers`, or "auto".
                        Default: "auto"
            sampling (str, optional): "gaussian" (independent draws) or
                        "antithetic" (symmetric pairs ``X, -X``; ``n_samples`` must be
                        even). Antithetic sampling cancels the even part of the model
                        around ``x0``, which lowers the variance.
                        Default: "gaussian"
            contrast_target (target form, optional): Explain
                        ``f_target - f_contrast`` instead of ``f_target`` (the
                        reference's "opposite category"). Same forms as ``target``.
                        For probabilities, pass a ``forward_func`` that applies softmax.
                        Default: None
            perturbations_per_eval (int, optional): Perturbations evaluated per call
                        of ``forward_func``; each call sees up to
                        ``perturbations_per_eval * N`` inputs. Results do not depend on
                        it beyond float rounding.
                        Default: 64
            seed (int, optional): Seed of a dedicated ``torch.Generator`` on the input's
                        device (the global RNG is untouched). The same seed gives the
                        identical map. None draws fresh entropy.
                        Default: None
            show_progress (bool, optional): Show a progress bar over forward batches.
                        Default: False
            return_standard_error (bool, optional): Also return the per-pixel standard
                        error of the LEG map (same shape and scale). Only with
                        ``penalty=None``: LEG-TV is a nonlinear estimate without a
                        closed-form error.
                        Default: False
            solver_options (dict, optional): Options for the LEG-TV backend (e.g.
                        tolerances, time limits).
                        Default: None

        Returns:
            *Tensor* or *tuple[Tensor]* of **attributions** (and of **standard errors**
            when requested, as a pair ``(attributions, standard_errors)``):

            - **attributions**: shaped like ``inputs``, same dtype and device; with a
              sequence ``lam`` and ``penalty="tv"``, shaped ``(len(lam), N, C, H, W)``.
              Each pixel carries its cell's signed estimate for its channel, on the
              per-pixel scale: the cell's gradient divided by the number of pixels in
              the cell, i.e. an estimate of the average pixel gradient of the smoothed
              model there (a linear model ``<w, x>`` gives ``w`` averaged over cells).

        Examples::

            >>> from captum_leg import LEG
            >>> leg = LEG(model)
            >>> attr = leg.attribute(images, target=labels, n_samples=500, seed=0)
            >>> tv = leg.attribute(images, target=labels, penalty="tv", lam=[0.1, 0.3])
        """
        # A block rather than a decorator: NoiseTunnel calls attribute.__wrapped__.
        with torch.no_grad():
            is_tuple, x = _check_inputs(inputs)
            n_ex, n_ch, height, width = x.shape
            _check_int("n_samples", n_samples, minimum=1)
            _check_int("perturbations_per_eval", perturbations_per_eval, minimum=1)
            if seed is not None:
                _check_int("seed", seed, minimum=None)
            k1, k2 = _check_grid_size(grid_size, height, width)
            if penalty not in PENALTIES:
                raise ValueError(f"penalty: expected None or 'tv', got {penalty!r}")
            lams, lam_is_seq = _check_lam(lam)
            if lam_is_seq and penalty is None:
                raise ValueError("lam: a sequence of lambdas needs penalty='tv'")
            if sampling not in SAMPLING_SCHEMES:
                raise ValueError(f"sampling: expected one of {SAMPLING_SCHEMES}, got {sampling!r}")
            antithetic = sampling == "antithetic"
            if antithetic and n_samples % 2:
                raise ValueError(
                    f"n_samples: antithetic sampling uses pairs, so n_samples must be even, "
                    f"got {n_samples}"
                )
            if not isinstance(return_standard_error, bool):
                raise TypeError("return_standard_error: expected a bool")
            if return_standard_error and penalty is not None:
                raise ValueError(
                    "return_standard_error: standard errors are available for LEG "
                    "(penalty=None) only"
                )
            if penalty == "tv":
                _check_solver(solver)
            if solver_options is not None and not isinstance(solver_options, dict):
                raise TypeError("solver_options: expected a dict or None")
            targets = parse_target(target, n_ex, "target")
            contrast = None if contrast_target is None else parse_target(contrast_target, n_ex, "contrast_target")

            device = x.device
            grid_dtype = torch.float32 if device.type == "mps" else torch.float64
            grid = get_grid((k1, k2), device, grid_dtype)
            s = _check_noise_level(noise_level, n_ch, device, grid_dtype)
            extra = _format_additional_forward_args(additional_forward_args)

            units = n_samples // 2 if antithetic else n_samples
            per_unit = 2 if antithetic else 1
            units_per_eval = max(1, perturbations_per_eval // per_unit)
            total_units = n_ch * units
            n_batches = math.ceil(total_units / units_per_eval)

            bar = (
                progress(desc=f"{type(self).__name__} attribution", total=n_batches + (0 if antithetic else 1))
                if show_progress
                else NullProgress()
            )
            forward = _BatchedForward(self.forward_func, x, extra, targets, contrast)
            with bar:
                baseline = None
                if not antithetic:
                    # A copy: a model that edits its input must not reach the caller's tensor.
                    baseline = forward(x.unsqueeze(0).clone(), 1, perturbed=False)[0].to(grid_dtype)
                    bar.update()
                cells = CellMap(height, width, k1, k2, device)
                stream = NoiseStream(grid, make_generator(seed, device))
                buffer = _BatchBuffer(x.dtype, device)
                acc = MomentAccumulator(grid, n_ex, s, units, track_variance=return_standard_error)
                for start in range(0, total_units, units_per_eval):
                    k = min(units_per_eval, total_units - start)
                    draws = stream.take(k)  # (k, k1, k2), standard: X = s_c * draws
                    segments = channel_segments(start, k, units)
                    batch = buffer.get((k * per_unit, *x.shape))  # (P, N, C, H, W)
                    batch.copy_(x.unsqueeze(0).expand_as(batch))
                    for lo, hi, c in segments:
                        noise = (draws[lo:hi] * s[c]).to(x.dtype)
                        cells.add_into(batch[lo:hi, :, c], x[:, c], noise)
                        if antithetic:
                            cells.add_into(batch[k + lo : k + hi, :, c], x[:, c], -noise)
                    out = forward(batch, k * per_unit).to(grid_dtype)  # (P, N)
                    resp = (out[:k] - out[k:]) / 2 if antithetic else out - baseline
                    acc.add(resp, segments, draws)
                    bar.update()

            if penalty is None:
                maps = acc.leg()  # (N, C, k1, k2)
            else:
                maps = leg_tv(acc.moment(), grid, s, lams, solver, solver_options)
                if not lam_is_seq:
                    maps = maps[0]
            attr = cells.upsample_per_pixel(maps).to(x.dtype)
            result: Any = (attr,) if is_tuple else attr
            if return_standard_error:
                se = cells.upsample_per_pixel(acc.standard_error()).to(x.dtype)
                return result, ((se,) if is_tuple else se)
            return result

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("LinearlyEstimatedGradient does not support attribute_future")


class _BatchBuffer:
    """The perturbed-batch tensor, reused across forward calls when that is safe.

    A fresh 40 MB CPU tensor costs more in first-touch page faults than the perturbation
    itself. The buffer is rewritten in full for every batch (so a model that edits its
    input in place does no harm) and is only reused when nothing else holds its storage:
    a ``forward_func`` that keeps its input, or a view of it, gets a fresh tensor.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.dtype, self.device = dtype, device
        self._buf: Optional[Tensor] = None
        self._owners = 0

    def get(self, shape: Tuple[int, ...]) -> Tensor:
        buf = self._buf
        if buf is None or tuple(buf.shape) != shape or self._owners < 0 or _storage_users(buf) != self._owners:
            buf = torch.empty(shape, dtype=self.dtype, device=self.device)
            self._buf, self._owners = buf, _storage_users(buf)
        return buf


def _storage_users(t: Tensor) -> int:
    """Tensors sharing ``t``'s storage (-1 where torch cannot tell: never reuse then)."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    if use_count is None:
        return -1
    return int(use_count(t.untyped_storage()._cdata))


class _BatchedForward:
    """Runs ``forward_func`` on ``(P, N, C, H, W)`` batches; returns the scalar per input."""

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        x: Tensor,
        extra: Optional[Tuple[Any, ...]],
        targets: TargetIndex,
        contrast: Optional[TargetIndex],
    ):
        self.forward_func = forward_func
        self.n_examples = x.shape[0]
        self.extra = extra
        self.targets = targets
        self.contrast = contrast
        self._expanded: Dict[int, Optional[Tuple[Any, ...]]] = {}

    def __call__(self, batch: Tensor, n_perturbations: int, perturbed: bool = True) -> Tensor:
        flat = batch.reshape(-1, *batch.shape[2:])
        extra = self._extra_for(n_perturbations)
        output = self.forward_func(flat, *extra) if extra is not None else self.forward_func(flat)
        if not isinstance(output, Tensor):
            raise TypeError(
                f"forward_func must return a torch.Tensor, got {type(output).__name__}"
            )
        value = self.targets.select(output, n_perturbations, self.n_examples)
        if self.contrast is not None:
            value = value - self.contrast.select(output, n_perturbations, self.n_examples)
        if not bool(torch.isfinite(value).all()):
            where = "a perturbed input (lower noise_level?)" if perturbed else "the unperturbed input"
            raise ValueError(f"forward_func returned NaN or inf for the target on {where}")
        return value

    def _extra_for(self, n_perturbations: int) -> Optional[Tuple[Any, ...]]:
        if self.extra is None:
            return None
        if n_perturbations not in self._expanded:
            self._expanded[n_perturbations] = _expand_additional_forward_args(
                self.extra, n_perturbations
            )
        return self._expanded[n_perturbations]


def channel_segments(start: int, k: int, units: int) -> List[Tuple[int, int, int]]:
    """Split units ``start .. start+k`` (channel-major, ``units`` per channel) by channel.

    Returns ``(lo, hi, channel)`` with ``lo, hi`` relative to ``start``; a batch spans
    few channels, so per-segment work stays vectorised without a loop over samples.
    """
    segments = []
    pos = start
    while pos < start + k:
        channel = pos // units
        end = min(start + k, (channel + 1) * units)
        segments.append((pos - start, end - start, channel))
        pos = end
    return segments


# -- argument checks -------------------------------------------------------------------
def _check_inputs(inputs: InputType) -> Tuple[bool, Tensor]:
    is_tuple = isinstance(inputs, tuple)
    if is_tuple:
        if len(inputs) != 1:
            raise ValueError(
                f"inputs: LEG explains one image tensor; got a tuple of {len(inputs)} "
                "tensors (pass a tensor or a 1-tuple)"
            )
        x = inputs[0]
    else:
        x = inputs
    if not isinstance(x, Tensor):
        raise TypeError(f"inputs: expected a torch.Tensor (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"inputs: expected shape (N, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"inputs: expected a floating point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"inputs: empty tensor of shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("inputs: contains NaN or inf")
    return is_tuple, x.detach()


def _check_int(name: str, value: object, minimum: Optional[int]) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


def _check_grid_size(grid_size: object, height: int, width: int) -> Tuple[int, int]:
    if isinstance(grid_size, numbers.Integral) and not isinstance(grid_size, bool):
        sizes = (int(grid_size), int(grid_size))
    elif (
        isinstance(grid_size, (tuple, list))
        and len(grid_size) == 2
        and all(isinstance(g, numbers.Integral) and not isinstance(g, bool) for g in grid_size)
    ):
        sizes = (int(grid_size[0]), int(grid_size[1]))
    else:
        raise TypeError(f"grid_size: expected an int or a pair of ints, got {grid_size!r}")
    if min(sizes) < 1:
        raise ValueError(f"grid_size: cells per side must be >= 1, got {sizes}")
    if sizes[0] > height or sizes[1] > width:
        raise ValueError(
            f"grid_size: {sizes} cells exceed the image size {(height, width)}; at most one "
            "cell per pixel"
        )
    return sizes


def _check_lam(lam: object) -> Tuple[Tuple[float, ...], bool]:
    is_seq = isinstance(lam, (list, tuple)) or (isinstance(lam, Tensor) and lam.dim() == 1)
    values = list(lam.tolist() if isinstance(lam, Tensor) else lam) if is_seq else [lam]
    if not values:
        raise ValueError("lam: expected a float in (0, 1) or a non-empty sequence of them")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"lam: expected floats in (0, 1), got {v!r}")
        if not 0 < float(v) < 1:
            raise ValueError(f"lam: each value must lie in (0, 1), got {v}")
    return tuple(float(v) for v in values), is_seq


def _check_noise_level(
    noise_level: object, n_channels: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    if isinstance(noise_level, Tensor):
        values = noise_level.detach().to("cpu", torch.float64).reshape(-1).tolist()
    elif isinstance(noise_level, (list, tuple)):
        values = list(noise_level)
    else:
        values = [noise_level]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"noise_level: expected a positive float or one per channel, got {v!r}")
    if len(values) == 1:
        values = values * n_channels
    if len(values) != n_channels:
        raise ValueError(
            f"noise_level: expected one value or {n_channels} (one per channel), got {len(values)}"
        )
    if not all(math.isfinite(float(v)) and float(v) > 0 for v in values):
        raise ValueError(f"noise_level: must be finite and > 0, got {values}")
    return torch.tensor([float(v) for v in values], device=device, dtype=dtype)


def _check_solver(solver: object) -> None:
    """Fail before the forward passes, not after them."""
    from captum_leg.solvers import get_solver

    backend = get_solver(solver)  # TypeError / ValueError for a bad name
    if not backend.available():
        raise ValueError(f"solver: {solver!r} is not available here: {backend.unavailable_reason()}")


#: Short alias, as in ``from captum_leg import LEG``.
LEG = LinearlyEstimatedGradient
