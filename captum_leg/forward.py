"""Perturbed batches and forward passes: from draws to one response per unit and example."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import torch
from captum._utils.common import _expand_additional_forward_args
from torch import Tensor

from captum_leg.plan import Plan
from captum_leg.targets import TargetIndex


@dataclass
class Segment:
    """A run of units of one design group inside a forward batch.

    ``features`` are the perturbations in input units, ``(hi - lo, P_group)``.
    """

    group: int
    lo: int
    hi: int
    features: Tensor


class ForwardRunner:
    """Evaluates ``forward_func`` on perturbed copies of the inputs.

    All examples share each perturbation, so a batch of ``k`` units holds
    ``k * N`` inputs (twice that for antithetic pairs), perturbation-major as Captum
    expands ``additional_forward_args``.
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        inputs: Tuple[Tensor, ...],
        additional_forward_args: Optional[Tuple[Any, ...]],
        targets: TargetIndex,
        contrast: Optional[TargetIndex],
        plan: Plan,
    ):
        self.forward_func = forward_func
        self.inputs = inputs
        self.extra = additional_forward_args
        self.targets = targets
        self.contrast = contrast
        self.plan = plan
        self.n_examples = inputs[0].shape[0]
        self._expanded: Dict[int, Optional[Tuple[Any, ...]]] = {}
        self._finite: Optional[Tensor] = None

    def baseline(self) -> Tensor:
        """``f(x0)`` per example, ``(N,)``."""
        # Copies: a model that edits its input must not reach the caller's tensors.
        batch = tuple(x.unsqueeze(0).clone() for x in self.inputs)
        return self._evaluate(batch, 1, perturbed=False)[0]

    def responses(self, segments: Sequence[Segment], baseline: Optional[Tensor]) -> Tensor:
        """One response per unit and example, ``(k, N)`` in the estimators' dtype.

        With a ``baseline`` ``f(x0)`` (Gaussian sampling) units give ``f(x0 + X) - f(x0)``;
        without one (symmetric pairs) they give ``(f(x0 + X) - f(x0 - X)) / 2``.
        """
        k = segments[-1].hi
        signs = (1.0,) if baseline is not None else (1.0, -1.0)
        batch = self._perturbed(segments, k, signs)
        values = self._evaluate(batch, k * len(signs), perturbed=True).to(self.plan.groups[0].dtype)
        if baseline is None:
            return (values[:k] - values[k:]) / 2
        return values - baseline

    def gradients(self, segments: Sequence[Segment], paired: bool) -> List[Tensor]:
        """Cell gradients of the target per unit and example, one ``(k_s, N, P_s)`` per segment.

        Symmetric pairs give the mean of the gradients at ``x0 + X`` and ``x0 - X``.
        """
        k = segments[-1].hi
        signs = (1.0, -1.0) if paired else (1.0,)
        batch = tuple(b.requires_grad_(True) for b in self._perturbed(segments, k, signs))
        with torch.enable_grad():
            value = self._evaluate(batch, k * len(signs), perturbed=True)
            if not value.requires_grad:
                raise ValueError(
                    "estimator='gradient': forward_func's output does not depend on its inputs "
                    "through autograd (a model run under torch.no_grad, or outside torch?); use a "
                    "black-box estimator such as 'ridge'"
                )
            grads = torch.autograd.grad(value.sum(), batch, allow_unused=True)
        dtype = self.plan.groups[0].dtype
        out = []
        for seg in segments:
            parts = []
            for ref in self.plan.members[seg.group]:
                g = grads[ref.input_index]
                if g is None:
                    raise ValueError(f"estimator='gradient': forward_func's output does not depend on input {ref.input_index}")
                cells = self.plan.layouts[ref.input_index].cells
                per_sign = [cells.cell_sums(g[j * k + seg.lo : j * k + seg.hi, :, ref.channel]) for j in range(len(signs))]
                mean = cast(Tensor, sum(per_sign)) / len(signs)  # (k_s, N, *grid)
                parts.append(mean.flatten(2).to(dtype))
            out.append(torch.cat(parts, -1) if len(parts) > 1 else parts[0])
        return out

    def _perturbed(self, segments: Sequence[Segment], k: int, signs: Tuple[float, ...]) -> List[Tensor]:
        """Fresh batches ``(k * len(signs), N, C, *spatial)`` per input, perturbation-major."""
        batch = []
        for x in self.inputs:
            # A fresh tensor per call: a model may keep (or edit) the batch it was given.
            batch.append(x.unsqueeze(0).expand(k * len(signs), *x.shape).clone())
        for seg in segments:
            for block, ref in zip(self.plan.groups[seg.group].blocks, self.plan.members[seg.group]):
                lay = self.plan.layouts[ref.input_index]
                x = self.inputs[ref.input_index]
                # Noise in float32 or better: x0 + X is rounded once, to the model's dtype.
                noise = block.part(seg.features).to(torch.promote_types(x.dtype, torch.float32))
                for j, sign in enumerate(signs):
                    dest = batch[ref.input_index][j * k + seg.lo : j * k + seg.hi, :, ref.channel]
                    lay.cells.add_into(dest, x[:, ref.channel], noise if sign > 0 else -noise)
        return batch

    def _evaluate(self, batch: Sequence[Tensor], n_perturbations: int, perturbed: bool) -> Tensor:
        flat = tuple(b.reshape(-1, *b.shape[2:]) for b in batch)
        extra = self._extra_for(n_perturbations)
        output = self.forward_func(*flat, *extra) if extra is not None else self.forward_func(*flat)
        if not isinstance(output, Tensor):
            raise TypeError(f"forward_func must return a torch.Tensor, got {type(output).__name__}")
        value = self.targets.select(output, n_perturbations, self.n_examples)
        if self.contrast is not None:
            value = value - self.contrast.select(output, n_perturbations, self.n_examples)
        finite = torch.isfinite(value.detach()).all()
        if not perturbed:
            self._raise_unless(finite, "the unperturbed input")
        else:
            # Checked once per round (check_finite): a check per batch would make an
            # accelerator wait for every batch before the next is queued.
            self._finite = finite if self._finite is None else self._finite & finite
        return value

    def check_finite(self) -> None:
        """Raise if any perturbed response so far was NaN or inf."""
        if self._finite is not None:
            self._raise_unless(self._finite, "a perturbed input (lower noise_level?)")

    @staticmethod
    def _raise_unless(finite: Tensor, where: str) -> None:
        if not bool(finite):
            raise ValueError(f"forward_func returned NaN or inf for the target on {where}")

    def _extra_for(self, n_perturbations: int) -> Optional[Tuple[Any, ...]]:
        if self.extra is None:
            return None
        if n_perturbations not in self._expanded:
            self._expanded[n_perturbations] = _expand_additional_forward_args(self.extra, n_perturbations)
        return self._expanded[n_perturbations]


def split_units(counts: Sequence[Tuple[int, int, int]], per_batch: int) -> List[List[Tuple[int, int, int, int]]]:
    """Cut runs of units into forward batches of at most ``per_batch`` units.

    Args:
        counts: ``(group, first_unit, n_units)`` per group, in order.
        per_batch: units per forward call.

    Returns:
        Batches, each a list of ``(group, first_unit, n_units, offset_in_batch)``.
    """
    batches: List[List[Tuple[int, int, int, int]]] = []
    current: List[Tuple[int, int, int, int]] = []
    filled = 0
    for group, first, n in counts:
        while n > 0:
            take = min(n, per_batch - filled)
            current.append((group, first, take, filled))
            filled += take
            first += take
            n -= take
            if filled == per_batch:
                batches.append(current)
                current, filled = [], 0
    if current:
        batches.append(current)
    return batches
