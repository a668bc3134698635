"""Sampling in rounds: draw -> forward -> accumulate, until precise enough or out of budget.

One round brings every design group to the same number of units. With a precision
target the rounds grow until every example's map reaches it (or ``n_samples`` is
spent); without one there is a single round of ``n_samples``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, cast

import torch
from captum._utils.progress import NullProgress, progress
from torch import Tensor

from captum_leg.estimators.base import Accumulator, Estimate, Estimator, GroupContext, Replay
from captum_leg.estimators.design import DesignGroup
from captum_leg.forward import ForwardRunner, Segment, split_units
from captum_leg.plan import Plan
from captum_leg.sampling import PAIRED_SCHEMES, NoiseStream, spawn_seeds

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
        backward_passes: backward passes per example (the gradient path; 0 otherwise).
        samples_per_channel: perturbations per design group (per channel with
            ``perturb="channel"``); an antithetic pair counts two.
        rounds: sampling rounds (1 without ``target_precision``).
        relative_standard_error: ``(N,)`` per example, ``||SE|| / ||map||`` over all
            cells and channels of the cell-level estimate; None when standard errors
            were not computed.
        target_precision: the target, or None.
        converged: ``(N,)`` whether each example reached the target (None without one).
        estimator: the estimator used (its name).
        seconds: wall time of sampling and estimation.
    """

    forward_passes: int
    backward_passes: int
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

    estimator: Estimator
    n_samples: int
    scheme: str
    target_precision: Optional[float]
    perturbations_per_eval: int
    seed: Optional[int]
    show_progress: bool

    @property
    def paired(self) -> bool:
        """Units are symmetric pairs ``X, -X`` (no unperturbed forward pass needed)."""
        return self.scheme in PAIRED_SCHEMES

    @property
    def orthogonal(self) -> bool:
        return self.scheme == "orthogonal"


def relative_standard_error(estimates: List[Estimate]) -> Tensor:
    """``||SE|| / ||estimate||`` per example over every group's cells."""
    se2 = cast(Tensor, sum(cast(Tensor, e.standard_error).pow(2).sum(-1) for e in estimates))
    b2 = cast(Tensor, sum(e.coef.pow(2).sum(-1) for e in estimates))
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
    estimator, paired = settings.estimator, settings.paired
    gradient = estimator.needs == "gradient"
    target_precision = settings.target_precision
    per_unit = 2 if paired else 1
    cap = settings.n_samples // per_unit
    n_groups = len(plan.groups)
    seeds = spawn_seeds(settings.seed, n_groups)
    streams = [NoiseStream([b.grid for b in g.blocks], s, settings.orthogonal) for g, s in zip(plan.groups, seeds)]
    need_error = track_error or target_precision is not None
    accs = [estimator.for_group(g).accumulator(g, plan.n_examples, not paired, need_error) for g in plan.groups]
    units_per_eval = max(1, settings.perturbations_per_eval // per_unit)
    # The gradient path needs no unperturbed pass: its units are gradients, not differences.
    with_baseline = not paired and not gradient

    goal = cap if target_precision is None else min(cap, _first_round(estimator, plan, cap, paired))
    max_batches = math.ceil(n_groups * cap / units_per_eval) + int(with_baseline)
    bar = progress(desc=desc, total=max_batches) if settings.show_progress else NullProgress()
    done = rounds = 0
    rse: Optional[Tensor] = None
    with bar:
        baseline = None
        if with_baseline:
            baseline = runner.baseline().to(plan.groups[0].dtype)
            bar.update()
        while True:
            rounds += 1
            for batch in split_units([(g, done, goal - done) for g in range(n_groups)], units_per_eval):
                segments = [
                    Segment(group, offset, offset + n, plan.groups[group].scale(streams[group].take(n)))
                    for group, _, n, offset in batch
                ]
                if gradient:
                    for seg, grads in zip(segments, runner.gradients(segments, paired)):
                        accs[seg.group].update(seg.features, grads)
                else:
                    resp = runner.responses(segments, baseline)
                    for seg in segments:
                        accs[seg.group].update(seg.features, resp[seg.lo : seg.hi])
                bar.update()
            runner.check_finite()
            done = goal
            contexts = [
                GroupContext(
                    g, tuple(r.input_index for r in refs), _replay(g, seed_g, done, settings.orthogonal), settings.orthogonal
                )
                for g, refs, seed_g in zip(plan.groups, plan.members, seeds)
            ]
            estimates = estimate_groups(estimator, accs, contexts)
            if need_error:
                rse = relative_standard_error(estimates)
                _show(bar, rse, target_precision)
            if target_precision is None or done >= cap or float(rse.max()) <= target_precision:  # type: ignore[union-attr]
                break
            goal = _next_goal(done, cap, float(rse.max()), target_precision)  # type: ignore[union-attr]
    passes = n_groups * done * per_unit
    record = RunRecord(
        forward_passes=passes + int(with_baseline),
        backward_passes=passes if gradient else 0,
        samples_per_channel=done * per_unit,
        rounds=rounds,
        relative_standard_error=rse,
        target_precision=target_precision,
        converged=None if (target_precision is None or rse is None) else rse <= target_precision,
        estimator=estimator.name,
        seconds=time.perf_counter() - start_time,
    )
    return estimates, record


def estimate_groups(estimator: Estimator, accs: Sequence[Accumulator], contexts: Sequence[GroupContext]) -> List[Estimate]:
    """Every group's estimate, each group handled by the estimator its size calls for
    (groups with the same handler are estimated together: they may share a prior)."""
    handled: Dict[int, Tuple[Estimator, List[int]]] = {}
    for i, ctx in enumerate(contexts):
        handler = estimator.for_group(ctx.group)
        handled.setdefault(id(handler), (handler, []))[1].append(i)
    out: List[Optional[Estimate]] = [None] * len(accs)
    for handler, idx in handled.values():
        for i, est in zip(idx, handler.estimate([accs[i] for i in idx], [contexts[i] for i in idx])):
            out[i] = est
    return out  # type: ignore[return-value]


def _first_round(estimator: Estimator, plan: Plan, cap: int, paired: bool) -> int:
    # Every group needs its own minimum (tuple inputs have grids of different sizes).
    least = max(estimator.for_group(g).min_units(g, not paired) for g in plan.groups)
    return max(cap // _FIRST_ROUND_SHARE, least)


def _next_goal(done: int, cap: int, worst: float, target: float) -> int:
    # The standard error falls like 1/sqrt(n): aim a little past the predicted need.
    predicted = done * (worst / target) ** 2 * _OVERSHOOT
    return min(cap, math.ceil(done * _MAX_GROWTH), max(math.ceil(done * _MIN_GROWTH), math.ceil(predicted)))


def _replay(group: DesignGroup, seed: int, units: int, orthogonal: bool, chunk: int = 512) -> Replay:
    """The features of a group's first ``units`` units again, drawn from the same seed."""

    def rows() -> Iterator[Tensor]:
        stream = NoiseStream([b.grid for b in group.blocks], seed, orthogonal)
        for lo in range(0, units, chunk):
            yield group.scale(stream.take(min(chunk, units - lo)))

    return rows


def _show(bar: object, rse: Tensor, target: Optional[float]) -> None:
    setter = getattr(bar, "set_postfix_str", None)
    if setter is not None:
        text = f"rel. SE {float(rse.max()):.3f}"
        setter(text if target is None else f"{text} (target {target:g})")
