"""``LinearlyEstimatedGradient`` (``LEG``): LEG and LEG-TV saliency as a Captum attribution.

Data flows one way: validate -> sample grid noise and run batched forward passes ->
accumulate -> estimate (regression or moment, then optionally the LEG-TV linear program)
-> upsample to the input's shape. Each stage lives in its own module; ``attribute``
only checks its arguments and chains the stages.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from captum._utils.common import _format_additional_forward_args
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage
from torch import Tensor

from captum_leg import _checks as checks
from captum_leg.estimators import Estimator
from captum_leg.estimators.base import Estimate
from captum_leg.estimators.tv import leg_tv
from captum_leg.forward import ForwardRunner
from captum_leg.plan import Plan, make_plan
from captum_leg.run import RunRecord, SamplingSettings, sample_and_estimate
from captum_leg.settings import (
    ACCELERATOR_PERTURBATIONS_PER_EVAL,
    CPU_CALL_BYTES,
    DEFAULT_LAM,
    DEFAULT_SOLVER,
    DEFAULTS,
    UNIT_NOISE_LEVEL,
    LEGSettings,
)
from captum_leg.targets import TargetType, parse_target

# The defaults under the names earlier releases exported (they live in captum_leg.settings).
DEFAULT_NOISE_LEVEL = DEFAULTS.noise_level
DEFAULT_N_SAMPLES = DEFAULTS.samples
DEFAULT_ESTIMATOR = DEFAULTS.estimator
DEFAULT_SAMPLING = DEFAULTS.sampling
__all__ = [
    "LEG",
    "LinearlyEstimatedGradient",
    "default_perturbations_per_eval",
    "DEFAULT_ESTIMATOR",
    "DEFAULT_LAM",
    "DEFAULT_NOISE_LEVEL",
    "DEFAULT_N_SAMPLES",
    "DEFAULT_SAMPLING",
    "DEFAULT_SOLVER",
    "UNIT_NOISE_LEVEL",
]

InputType = Union[Tensor, Tuple[Tensor, ...]]


@dataclass
class _Prepared:
    """A validated call: inputs, layout and everything the stages need."""

    is_tuple: bool
    inputs: Tuple[Tensor, ...]
    plan: Plan
    runner: ForwardRunner
    sampling: SamplingSettings
    settings: LEGSettings


def default_perturbations_per_eval(inputs: Sequence[Tensor]) -> int:
    """``perturbations_per_eval`` when the caller leaves it to LEG (see ``attribute``)."""
    if inputs[0].device.type != "cpu":
        return ACCELERATOR_PERTURBATIONS_PER_EVAL
    call_bytes = sum(x.numel() * x.element_size() for x in inputs)
    return int(min(ACCELERATOR_PERTURBATIONS_PER_EVAL, max(1, CPU_CALL_BYTES // max(call_bytes, 1))))


class LinearlyEstimatedGradient(PerturbationAttribution):
    r"""
    Linearly Estimated Gradient (LEG) and its total-variation variant LEG-TV.

    LEG perturbs the input with structured Gaussian noise ``X`` on a coarse grid of
    cells (covariance ``Sigma = s^2 (L + 1 1^T / p)``, ``L`` the grid's Dirichlet
    Laplacian, so neighbouring cells are anti-correlated), observes the model's
    response and estimates the gradient of the Gaussian-smoothed model,
    ``E[grad f(x0 + X)] = Sigma^{-1} E[X f(x0 + X)]`` (Stein's lemma). The estimate is
    statistically consistent, and every map comes with its standard error. By default
    it is a ridge regression of the responses on orthogonal pairs of perturbations,
    with a prior envelope learnt from the data: it needs many times fewer forward
    passes than the paper's moment estimator ``Sigma^{-1} (1/n) sum_i y_i X_i``
    (``estimator="moment"``) for the same accuracy. A model that autograd can
    differentiate can use ``estimator="gradient"``, the same quantity from forward and
    backward passes.
    LEG-TV replaces the estimate by the map of least total variation within a
    relative distance ``lam`` of it (a linear program): sparse, piecewise-constant maps.

    Each channel of each input is perturbed on its own (the paper's scheme), so an
    input with ``C`` channels costs ``C * n_samples`` forward passes (plus one with
    Gaussian sampling; as many backward passes with ``estimator="gradient"``), evaluated ``perturbations_per_eval`` at a time. All examples of a batch share the
    perturbations, so an example's map does not depend on the batch it came in.

    Inputs are ``(N, C, *spatial)`` with one or more spatial axes: signals
    ``(N, C, L)``, images ``(N, C, H, W)``, volumes or video ``(N, C, D, H, W)``, or a
    tuple of such tensors.

    After each call, :attr:`last_run` records the forward passes spent and the
    precision reached.

    More details: Luo, Barut, Jin, "Statistically Consistent Saliency Estimation",
    ICCV 2021. https://arxiv.org/abs/2010.07051
    """

    def __init__(self, forward_func: Callable[..., Tensor]) -> None:
        r"""
        Args:

            forward_func (Callable): The forward function of the model or any
                        modification of it. It takes one batch per input tensor
                        (and the additional forward args) and returns one row per
                        example.
        """
        if not callable(forward_func):
            raise TypeError(
                f"forward_func: expected a callable model or function, got "
                f"{type(forward_func).__name__}"
            )
        PerturbationAttribution.__init__(self, forward_func)
        #: What the last call spent and achieved (see :class:`captum_leg.run.RunRecord`).
        self.last_run: Optional[RunRecord] = None

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
        n_samples: Optional[int] = DEFAULTS.n_samples,
        noise_level: Union[float, Sequence[float], Tensor, Tuple[Any, ...]] = DEFAULTS.noise_level,
        grid_size: Union[None, int, Sequence[int], Tuple[Any, ...]] = DEFAULTS.grid_size,
        estimator: Union[str, Estimator] = DEFAULTS.estimator,
        sampling: str = DEFAULTS.sampling,
        perturb: str = DEFAULTS.perturb,
        target_precision: Optional[float] = DEFAULTS.target_precision,
        penalty: Optional[str] = DEFAULTS.penalty,
        lam: Optional[float] = DEFAULTS.lam,
        solver: Optional[str] = DEFAULTS.solver,
        contrast_target: TargetType = None,
        perturbations_per_eval: Optional[int] = DEFAULTS.perturbations_per_eval,
        seed: Optional[int] = DEFAULTS.seed,
        show_progress: bool = DEFAULTS.show_progress,
        return_standard_error: bool = DEFAULTS.return_standard_error,
        solver_options: Optional[Dict[str, Any]] = DEFAULTS.solver_options,
    ) -> Union[InputType, Tuple[InputType, InputType]]:
        r"""
        Args:

            inputs (Tensor or tuple[Tensor, ...]): What to explain: ``(N, C, *spatial)``
                        with one or more spatial axes (signals ``(N, C, L)``, images
                        ``(N, C, H, W)``, volumes ``(N, C, D, H, W)``), or a tuple of
                        such tensors sharing ``N``. A tensor in gives a tensor out, a
                        tuple in gives a tuple out. Floating point, finite values.
            target (int, tuple, Tensor, or list, optional): Output indices for which
                        the maps are computed, in any of Captum's forms: an int or a
                        tuple applied to every example, a 1-D tensor or a list with one
                        entry per example. May be None only if the model returns one
                        scalar per example.
                        Default: None
            additional_forward_args (Any, optional): Extra arguments of
                        ``forward_func`` after the inputs. Tensors whose first
                        dimension is the batch are repeated for every perturbation,
                        as in Captum.
                        Default: None
            n_samples (int, optional): Perturbations per channel (``n`` of the
                        method; a pair ``X, -X`` counts two). With
                        ``target_precision`` it is the most that will be spent.
                        Default: None, the estimator's own: 1000 for the black-box
                        estimators (an RGB image costs 3000 forward passes), 332 for
                        "gradient" (996 forward and 996 backward passes)
            noise_level (float or sequence of float, optional): The noise scale ``s``,
                        in the units of the input tensor; each cell's perturbation has
                        standard deviation about ``2 s``. A sequence gives one level
                        per channel. With several input tensors, a tuple gives one
                        entry (a float or a sequence) per input. Use 0.02 for images
                        in [0, 1].
                        Default: 0.09 (the reference's 0.02 on [0, 1] pixels, for
                        ImageNet-normalised inputs)
            grid_size (int or tuple[int, ...], optional): Cells of the perturbation
                        grid: an int for the same count on every spatial axis, or one
                        count per axis. Cells need not divide the axes; the input's own
                        size gives a full-resolution map. With several input tensors, a
                        tuple gives one entry per input.
                        Default: None (14 cells per axis, fewer on shorter axes)
            estimator (str or Estimator, optional): How the cell gradients are
                        estimated, by name or as an instance with its hyperparameters
                        (e.g. ``RidgeEstimator(envelope=False)``, see
                        :mod:`captum_leg.estimators`): "ridge" (regression with a
                        learnt prior envelope and a cross-validated penalty; the most
                        precise black-box estimator, any ``n``), "least_squares" (needs
                        more samples than cells; exact for linear models), "moment"
                        (the paper's closed form), or "gradient" (autograd cell
                        gradients at the perturbed inputs, for models torch can
                        differentiate: several times fewer passes). All estimate the
                        same quantity. The regression estimators form ``P x P``
                        matrices up to :data:`captum_leg.estimators.MAX_DENSE_FEATURES`
                        cells per perturbed channel; above it "ridge" runs in a
                        structured ``O(P log P)`` form and "least_squares" is refused.
                        Default: "ridge"
            sampling (str, optional): "orthogonal" (symmetric pairs ``X, -X`` whose
                        directions are orthogonal within blocks of as many pairs as
                        cells: each draw is still exactly Gaussian, but the design
                        covers every direction evenly), "antithetic" (independent
                        symmetric pairs) or "gaussian" (independent draws, plus one
                        unperturbed pass). Pairs cancel the even part of the model
                        around ``x0``; with pairs, ``n_samples`` must be even.
                        Default: "orthogonal"
            perturb (str, optional): "channel" perturbs one channel at a time (the
                        paper's scheme; the estimand of each channel is its gradient
                        with the other channels unperturbed), "joint" perturbs all
                        channels of all inputs at once with independent draws (every
                        forward pass informs every channel; ``n_samples`` is then the
                        total, and the estimand is the gradient under joint noise).
                        Default: "channel"
            target_precision (float, optional): Sample in rounds until the relative
                        standard error of every example's map (``||SE|| / ||map||``
                        over its cells and channels) is at most this, or ``n_samples``
                        is spent. None runs exactly ``n_samples``.
                        Default: None
            penalty (str or None, optional): None for the LEG estimate, "tv" for
                        LEG-TV (a linear program per map, fed with the estimate).
                        Default: None
            lam (float, optional): LEG-TV's relative constraint level in (0, 1):
                        larger is sparser, ``lam -> 0`` recovers the estimate. For
                        several lambdas from one set of samples use
                        :meth:`attribute_tv_path`. Only with ``penalty="tv"``: passing
                        it without raises a ``ValueError`` rather than return the LEG
                        estimate unchanged.
                        Default: None (0.1 with ``penalty="tv"``)
            solver (str, optional): LEG-TV backend from
                        :func:`captum_leg.solvers.available_solvers`, or "auto". Only
                        with ``penalty="tv"``, like ``lam``.
                        Default: None ("auto" with ``penalty="tv"``)
            contrast_target (target form, optional): Explain
                        ``f_target - f_contrast`` instead of ``f_target`` (the
                        reference's "opposite category"). Same forms as ``target``.
                        For probabilities, pass a ``forward_func`` that applies softmax.
                        Default: None
            perturbations_per_eval (int, optional): Perturbations evaluated per call
                        of ``forward_func``; each call sees up to
                        ``perturbations_per_eval * N`` inputs. Results do not depend on
                        it beyond float rounding.
                        Default: None (64 on accelerators; on the CPU as many as keep a
                        call's inputs under 8 MiB, e.g. 13 for one 224 x 224 RGB image,
                        because large CPU batches are slower per input: their big
                        activations are allocated afresh on every call)
            seed (int, optional): Seed of the noise (dedicated generators; the global
                        RNG is untouched). The same seed gives the same map on every
                        device, up to float rounding. None draws fresh entropy.
                        Default: None
            show_progress (bool, optional): Show a progress bar over forward batches,
                        with the relative standard error reached.
                        Default: False
            return_standard_error (bool, optional): Also return the per-element
                        standard error of the map (same shape and scale). Only with
                        ``penalty=None``: LEG-TV has no closed-form error. Not inside
                        Captum's ``NoiseTunnel``, which would average the errors.
                        Default: False
            solver_options (dict, optional): Options for the LEG-TV backend (e.g.
                        tolerances, time limits). Only with ``penalty="tv"``, like
                        ``lam``.
                        Default: None

        Returns:
            *Tensor* or *tuple[Tensor, ...]* of **attributions** (and of **standard
            errors** when requested, as a pair ``(attributions, standard_errors)``):

            - **attributions**: shaped like ``inputs``, same dtype and device. Each
              element carries its cell's signed estimate for its channel, on the
              per-element scale: the cell's gradient divided by the number of
              elements in the cell, i.e. an estimate of the average gradient of the
              smoothed model there (a linear model ``<w, x>`` gives ``w`` averaged over
              cells).

        Examples::

            >>> from captum_leg import LEG
            >>> leg = LEG(model)
            >>> attr = leg.attribute(images, target=labels)
            >>> attr, se = leg.attribute(images, target=labels, return_standard_error=True)
            >>> leg.last_run.forward_passes, leg.last_run.relative_standard_error
            >>> tv = leg.attribute(images, target=labels, penalty="tv", lam=0.3)
        """
        with torch.no_grad():  # a block, not a decorator: NoiseTunnel calls __wrapped__
            settings = LEGSettings(
                n_samples=n_samples, noise_level=noise_level, grid_size=grid_size,
                estimator=estimator, sampling=sampling, perturb=perturb,
                target_precision=target_precision, penalty=penalty, lam=lam, solver=solver,
                solver_options=solver_options, perturbations_per_eval=perturbations_per_eval,
                seed=seed, show_progress=show_progress, return_standard_error=return_standard_error,
            )
            if return_standard_error and penalty is not None:
                raise ValueError(
                    "return_standard_error: standard errors are available for the LEG "
                    "estimate (penalty=None) only"
                )
            if penalty is None:
                _refuse_without_effect(
                    dict(lam=lam, solver=solver, solver_options=solver_options),
                    'without penalty="tv" (plain LEG solves no linear program); pass '
                    'penalty="tv" for LEG-TV, or leave {name} out',
                )
            call = self._prepare(inputs, target, additional_forward_args, settings, contrast_target)
            estimates = self._sample(call, track_error=return_standard_error)
            maps = _block_maps(call.plan, estimates, "coef")
            if penalty == "tv":
                maps = [m[0] for m in self._tv(call, maps, (settings.tv_lam,))]
            attr = _format(call, _upsample(call, maps))
            if return_standard_error:
                se = _upsample(call, _block_maps(call.plan, estimates, "standard_error"))
                return attr, _format(call, se)
            return attr

    @log_usage()
    def attribute_tv_path(
        self,
        inputs: InputType,
        target: TargetType = None,
        additional_forward_args: Optional[object] = None,
        *,
        lams: Sequence[float],
        return_standard_error: bool = False,
        **kwargs: Any,
    ) -> Union[InputType, Tuple[InputType, InputType]]:
        r"""LEG-TV maps for several lambdas from one set of samples.

        Args:

            inputs, target, additional_forward_args: As in :meth:`attribute`.
            lams (sequence of float): Relative constraint levels, each in [0, 1). The
                        value 0 gives the estimate itself (LEG-TV's limit as
                        ``lam -> 0``, with no linear program), so
                        ``lams=[0, 0.1, 0.3]`` returns the LEG map and two LEG-TV maps
                        from the same samples.
            return_standard_error (bool, optional): Also return the standard error of
                        the estimate the maps are fed (shaped like the inputs: the error
                        of the ``lam = 0`` map; LEG-TV maps have none of their own).
                        Default: False
            **kwargs: Any other keyword argument of :meth:`attribute` except
                        ``penalty`` and ``lam``; ``solver`` and ``solver_options``
                        only with a positive lambda in ``lams``.

        Returns:
            *Tensor* or *tuple[Tensor, ...]*: for each input, the maps stacked along a
            new leading dimension, ``(len(lams), *input.shape)``; with
            ``return_standard_error`` a pair ``(maps, standard_errors)``.
        """
        with torch.no_grad():
            for name in ("penalty", "lam"):
                if name in kwargs:
                    raise TypeError(f"attribute_tv_path: {name!r} is not an argument here (lams sets the lambdas)")
            lam_values = checks.check_lams("lams", lams, sequence=True)
            contrast_target = kwargs.pop("contrast_target", None)
            settings = _settings_from(kwargs, return_standard_error=return_standard_error)
            if any(lam > 0 for lam in lam_values):
                checks.check_solver("solver", settings.tv_solver, needed=True)
            else:
                _refuse_without_effect(
                    {name: kwargs.get(name) for name in ("solver", "solver_options")},
                    "when every lam is 0 (lam 0 is the LEG estimate itself, no linear "
                    "program is solved); add a positive lam, or leave {name} out",
                )
            call = self._prepare(inputs, target, additional_forward_args, settings, contrast_target)
            estimates = self._sample(call, track_error=return_standard_error)
            maps = self._tv(call, _block_maps(call.plan, estimates, "coef"), lam_values)
            path = _format(call, _upsample(call, maps))
            if return_standard_error:
                se = _upsample(call, _block_maps(call.plan, estimates, "standard_error"))
                return path, _format(call, se)
            return path

    def attribute_future(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("LinearlyEstimatedGradient does not support attribute_future")

    # -- stages ------------------------------------------------------------------------
    def _prepare(
        self,
        inputs: InputType,
        target: TargetType,
        additional_forward_args: Optional[object],
        settings: LEGSettings,
        contrast_target: TargetType,
    ) -> _Prepared:
        """Check the inputs and targets against the settings and lay the call out."""
        is_tuple, xs = checks.check_inputs(inputs)
        n_ex = xs[0].shape[0]
        grids = [
            checks.check_grid_size(_name("grid_size", i, is_tuple, len(xs)), g, tuple(x.shape[2:]))
            for i, (x, g) in enumerate(zip(xs, checks.per_input("grid_size", settings.grid_size, len(xs), is_tuple)))
        ]
        levels = [
            checks.check_noise_levels(_name("noise_level", i, is_tuple, len(xs)), s, x.shape[1])
            for i, (x, s) in enumerate(zip(xs, checks.per_input("noise_level", settings.noise_level, len(xs), is_tuple)))
        ]
        targets = parse_target(target, n_ex, "target")
        contrast = None if contrast_target is None else parse_target(contrast_target, n_ex, "contrast_target")
        plan = make_plan(xs, grids, levels, settings.perturb)
        _check_budget(settings, plan)
        _warn_if_coarse(xs, levels)
        extra = _format_additional_forward_args(additional_forward_args)
        runner = ForwardRunner(self.forward_func, xs, extra, targets, contrast, plan)
        ppe = settings.perturbations_per_eval or default_perturbations_per_eval(xs)
        sampling = SamplingSettings(
            settings.estimator_instance, settings.samples, settings.sampling,
            settings.target_precision, ppe, settings.seed, settings.show_progress,
        )
        return _Prepared(is_tuple, xs, plan, runner, sampling, settings)

    def _sample(self, call: _Prepared, track_error: bool) -> List[Estimate]:
        estimates, record = sample_and_estimate(
            call.runner, call.plan, call.sampling, track_error=track_error,
            desc=f"{type(self).__name__} attribution",
        )
        self.last_run = record
        return estimates

    def _tv(self, call: _Prepared, maps: List[Tensor], lams: Tuple[float, ...]) -> List[Tensor]:
        """LEG-TV per input: ``(len(lams), N, C, *grid)`` each (``lam = 0``: the estimate)."""
        positive = [lam for lam in lams if lam > 0]
        out = []
        for m, lay in zip(maps, call.plan.layouts):
            solved = iter(())
            if positive:
                solved = iter(leg_tv(m, lay.grid, lay.noise_levels, positive, call.settings.tv_solver, call.settings.solver_options))
            out.append(torch.stack([next(solved) if lam > 0 else m for lam in lams]))
        return out


def _refuse_without_effect(passed: Dict[str, Any], when: str) -> None:
    """Captum's rule: an argument that would change nothing is an error, not ignored."""
    for name, value in passed.items():
        if value is not None:
            raise ValueError(f"{name}: has no effect " + when.format(name=name))


def _settings_from(kwargs: Dict[str, Any], **extra: Any) -> LEGSettings:
    """Settings from ``attribute``'s keyword arguments (an unknown name is a ``TypeError``)."""
    try:
        return LEGSettings(**kwargs, **extra)
    except TypeError as err:
        if "unexpected keyword" not in str(err):
            raise
        known = sorted(f for f in LEGSettings.__dataclass_fields__ if f != "estimator_instance")
        unknown = sorted(set(kwargs) - set(known))
        raise TypeError(f"unexpected keyword argument(s) {unknown}; expected some of {known}") from None


def _check_budget(settings: LEGSettings, plan: Plan) -> None:
    """Enough samples for the estimator, and grids it can handle."""
    estimator = settings.estimator_instance
    name = estimator.name
    per_unit = 2 if settings.paired else 1
    need = max(estimator.for_group(g).min_units(g, not settings.paired) for g in plan.groups) * per_unit
    if settings.samples < need:
        cells = max(g.p for g in plan.groups)
        hint = "more samples" if name == "ridge" else "more samples, a coarser grid_size or estimator='ridge'"
        raise ValueError(
            f"n_samples: estimator={name!r} needs at least {need} samples per "
            f"perturbed channel here (up to {cells} cells), got {settings.samples}; use {hint}"
        )
    for g in plan.groups:
        limit = estimator.for_group(g).max_features
        if g.p > limit > 0:
            raise ValueError(
                f"estimator: {name!r} is limited to {limit} cells per perturbed "
                f"channel, got {g.p}; use a coarser grid_size, or estimator='ridge' "
                "(structured above that size) or 'moment'"
            )


def _warn_if_coarse(inputs: Sequence[Tensor], levels: Sequence[Sequence[float]]) -> None:
    """Warn when the input's dtype rounds the perturbation noticeably (half precision).

    The message is the same for every call with that dtype, so Python's default
    warning filter shows it once.
    """
    for x, s in zip(inputs, levels):
        info = torch.finfo(x.dtype)
        if info.bits > 16 or info.eps * float(x.abs().max()) <= 1e-3 * min(s):
            continue
        warnings.warn(
            f"inputs in {x.dtype}: the model sees x0 + X rounded to {x.dtype}, which adds noise "
            "to every response (the standard errors include it; docs/method.md, 'Half "
            "precision', gives the measured errors). Pass float32 inputs for the most precise maps.",
            UserWarning,
            stacklevel=4,
        )


def _name(arg: str, i: int, is_tuple: bool, n_inputs: int) -> str:
    return f"{arg}[{i}]" if is_tuple and n_inputs > 1 else arg


def _block_maps(plan: Plan, estimates: List[Estimate], field: str) -> List[Tensor]:
    """Scatter group estimates back to per-input grid maps ``(N, C, *grid)``."""
    maps = [
        torch.empty((lay.shape[0], lay.channels, *lay.grid.shape), device=lay.grid.device, dtype=lay.grid.dtype)
        for lay in plan.layouts
    ]
    for group, refs, est in zip(plan.groups, plan.members, estimates):
        values = getattr(est, field)
        for block, ref in zip(group.blocks, refs):
            maps[ref.input_index][:, ref.channel] = block.part(values)
    return maps


def _upsample(call: _Prepared, maps: List[Tensor]) -> List[Tensor]:
    return [lay.cells.upsample_per_pixel(m).to(x.dtype) for m, lay, x in zip(maps, call.plan.layouts, call.inputs)]


def _format(call: _Prepared, tensors: List[Tensor]) -> InputType:
    return tuple(tensors) if call.is_tuple else tensors[0]


def _without_standard_errors(unlogged: Callable[..., Any]) -> Callable[..., Any]:
    """What Captum's wrappers call: ``NoiseTunnel`` runs ``attribute.__wrapped__`` and
    averages whatever it returns, which is wrong for standard errors."""

    @functools.wraps(unlogged)
    def wrapper(self: LinearlyEstimatedGradient, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("return_standard_error"):
            raise ValueError(
                "return_standard_error: not available through Captum wrappers such as "
                "NoiseTunnel, which average what attribute returns (the average of "
                "standard errors is not the standard error of the averaged map); call "
                "attribute directly for standard errors"
            )
        return unlogged(self, *args, **kwargs)

    return wrapper


LinearlyEstimatedGradient.attribute.__wrapped__ = _without_standard_errors(
    LinearlyEstimatedGradient.attribute.__wrapped__
)

#: Short alias, as in ``from captum_leg import LEG``.
LEG = LinearlyEstimatedGradient
