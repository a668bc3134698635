"""Sampling in rounds: draw -> forward -> accumulate, until precise enough or out of budget.

One round brings every design group to the same number of units. With a precision
target the rounds grow until every example's map reaches it (or ``n_samples`` is
spent); without one there is a single round of ``n_samples``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator, List, Optional, Type

import torch
from captum._utils.progress import NullProgress, progress
from torch import Tensor

from captum_leg.estimators.base import Estimate, Estimator, Replay
from captum_leg.estimators.design import DesignGroup
from captum_leg.forward import ForwardRunner, Segment, split_units
from captum_leg.plan import Plan
from captum_leg.sampling import NoiseStream, spawn_seeds

# First round of an adaptive run: this share of the budget (at least the estimator's minimum).
_FIRST_ROUND_SHARE = 8
# Rounds grow at least this much, and aim this far past the predicted need.
_MIN_GROWTH = 1.25
_OVERSHOOT = 1.1
# ... but at most double: at small n the ridge's standard error is conservative (it falls
# faster than 1/sqrt(n) while the penalty's posterior sharpens), so one extrapolation from
# the first round overshoots; measured on EfficientNet-Lite0, target 0.5 from a first
# round of 250 per channel predicted 2150 where about 1300 suffice.
_MAX_GROWTH = 2.0


@dataclass
class RunRecord:
    """What the last ``attribute`` call spent and achieved (``LEG.last_run``).

    Attributes:
        forward_passes: forward passes per example, the unperturbed one included.
        samples_per_channel: perturbations per design group (per channel with
            ``perturb="channel"``); an antithetic pair counts two.
        rounds: sampling rounds (1 without ``target_precision``).
        relative_standard_error: ``(N,)`` per example, ``||SE|| / ||map||`` over all
            cells and channels of the cell-level estimate; None when standard errors
            were not computed.
        target_precision: the target, or None.
        converged: ``(N,)`` whether each example reached the target (None without one).
        estimator: the estimator used.
        seconds: wall time of sampling and estimation.
    """

    forward_passes: int
    samples_per_channel: int
    rounds: int
    relative_standard_error: Optional[Tensor]
    target_precision: Optional[float]
    converged: Optional[Tensor]
    estimator: str
    seconds: float


@dataclass(frozen=True)
class SamplingSettings:
    """The validated settings one sampling run needs."""

    estimator: Type[Estimator]
    n_samples: int
    antithetic: bool
    target_precision: Optional[float]
    perturbations_per_eval: int
    seed: Optional[int]
    show_progress: bool


def relative_standard_error(estimates: List[Estimate]) -> Tensor:
    """``||SE|| / ||estimate||`` per example over every group's cells."""
    se2 = sum(e.standard_error.pow(2).sum(-1) for e in estimates)  # type: ignore[union-attr]
    b2 = sum(e.coef.pow(2).sum(-1) for e in estimates)
    return (se2 / b2.clamp_min(torch.finfo(b2.dtype).tiny)).sqrt()


def sample_and_estimate(
    runner: ForwardRunner,
    plan: Plan,
    settings: SamplingSettings,
    *,
    track_error: bool,
    desc: str,
) -> "tuple[List[Estimate], RunRecord]":
    """Run the sampling rounds and return one estimate per design group."""
    start_time = time.perf_counter()
    estimator, n_samples, antithetic = settings.estimator, settings.n_samples, settings.antithetic
    target_precision = settings.target_precision
    per_unit = 2 if antithetic else 1
    cap = n_samples // per_unit
    n_groups = len(plan.groups)
    seeds = spawn_seeds(settings.seed, n_groups)
    streams = [NoiseStream([b.grid for b in g.blocks], s) for g, s in zip(plan.groups, seeds)]
    need_error = track_error or target_precision is not None
    accs = [estimator.for_group(g)(g, plan.n_examples, not antithetic, need_error) for g in plan.groups]
    units_per_eval = max(1, settings.perturbations_per_eval // per_unit)

    if target_precision is None:
        goal = cap
    else:
        # Every group needs its own minimum (tuple inputs have grids of different sizes).
        least = max(estimator.min_units(g, not antithetic) for g in plan.groups)
        first = max(cap // _FIRST_ROUND_SHARE, least)
        goal = min(cap, first)
    max_batches = math.ceil(n_groups * cap / units_per_eval) + (0 if antithetic else 1)
    bar = progress(desc=desc, total=max_batches) if settings.show_progress else NullProgress()
    done = 0
    rounds = 0
    rse: Optional[Tensor] = None
    with bar:
        baseline = None
        if not antithetic:
            baseline = runner.baseline().to(plan.groups[0].dtype)
            bar.update()
        while True:
            rounds += 1
            counts = [(g, done, goal - done) for g in range(n_groups)]
            for batch in split_units(counts, units_per_eval):
                segments = []
                for group, _, n, offset in batch:
                    draws = streams[group].take(n)
                    segments.append(Segment(group, offset, offset + n, plan.groups[group].scale(draws)))
                resp = runner.responses(segments, baseline)
                for seg in segments:
                    accs[seg.group].update(seg.features, resp[seg.lo : seg.hi])
                bar.update()
            done = goal
            estimates = [
                a.estimate(_replay(g, seed_g, done)) for a, g, seed_g in zip(accs, plan.groups, seeds)
            ]
            if need_error:
                rse = relative_standard_error(estimates)
                _show(bar, rse, target_precision)
            if target_precision is None or done >= cap:
                break
            worst = float(rse.max())  # type: ignore[union-attr]
            if worst <= target_precision:
                break
            # The standard error falls like 1/sqrt(n): aim a little past the predicted need.
            predicted = done * (worst / target_precision) ** 2 * _OVERSHOOT
            goal = min(cap, math.ceil(done * _MAX_GROWTH), max(math.ceil(done * _MIN_GROWTH), math.ceil(predicted)))
    record = RunRecord(
        forward_passes=n_groups * done * per_unit + (0 if antithetic else 1),
        samples_per_channel=done * per_unit,
        rounds=rounds,
        relative_standard_error=rse,
        target_precision=target_precision,
        converged=None if (target_precision is None or rse is None) else rse <= target_precision,
        estimator=estimator.name,
        seconds=time.perf_counter() - start_time,
    )
    return estimates, record


def _replay(group: DesignGroup, seed: int, units: int, chunk: int = 512) -> Replay:
    """The features of a group's first ``units`` units again, drawn from the same seed."""

    def rows() -> Iterator[Tensor]:
        stream = NoiseStream([b.grid for b in group.blocks], seed)
        for lo in range(0, units, chunk):
            yield group.scale(stream.take(min(chunk, units - lo)))

    return rows


def _show(bar: object, rse: Tensor, target: Optional[float]) -> None:
    setter = getattr(bar, "set_postfix_str", None)
    if setter is not None:
        text = f"rel. SE {float(rse.max()):.3f}"
        setter(text if target is None else f"{text} (target {target:g})")
