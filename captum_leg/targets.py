"""Captum's target forms, checked once and applied to batched model outputs.

Captum's own selector asserts on bad targets; here every form is validated up front and
turned into an index tensor, so each forward batch needs one ``gather`` and no Python
loop over examples.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

TargetType = Union[None, int, Tuple[int, ...], Tensor, List[int], List[Tuple[int, ...]]]


class TargetIndex:
    """Per-example indices into the output's trailing dimensions (``(N, d)``, ``d >= 0``)."""

    def __init__(self, index: Optional[Tensor], name: str):
        self.index = index
        self.name = name
        self._cache: Optional[Tuple[Tuple[int, ...], torch.device, Tensor]] = None

    def _flat_index(self, rest: Tuple[int, ...], device: torch.device) -> Tensor:
        """Row-major offsets of the selected entries, validated once per output shape."""
        if self._cache is not None and self._cache[:2] == (rest, device):
            return self._cache[2]
        assert self.index is not None
        d = self.index.shape[1]
        if len(rest) < d:
            raise ValueError(
                f"{self.name}: index of length {d} but the model output has only "
                f"{len(rest)} dimension(s) per example"
            )
        bounds = torch.tensor(rest[:d])
        if bool(((self.index < -bounds) | (self.index >= bounds)).any()):
            raise ValueError(
                f"{self.name}: index out of range for a model output of shape {rest} "
                "per example"
            )
        tail = math.prod(rest[d:])
        if tail != 1:
            raise ValueError(
                f"{self.name}: selects {tuple(rest[d:])} values per example; the target "
                "must select exactly one scalar per example"
            )
        strides = torch.tensor([math.prod(rest[i + 1 : d]) for i in range(d)])
        flat = (torch.remainder(self.index, bounds) * strides).sum(-1).to(device)
        self._cache = (rest, device, flat)
        return flat

    def select(self, output: Tensor, n_perturbations: int, n_examples: int) -> Tensor:
        """One scalar per row of ``output``, rows ordered perturbation-major ``(P*N, ...)``.

        Returns:
            Tensor of shape ``(P, N)``.
        """
        if not isinstance(output, Tensor):
            raise TypeError(
                f"forward_func must return a torch.Tensor, got {type(output).__name__}"
            )
        n_rows = n_perturbations * n_examples
        if output.dim() == 0 or output.shape[0] != n_rows:
            raise ValueError(
                f"forward_func returned shape {tuple(output.shape)} for a batch of "
                f"{n_rows} inputs; expected one output row per input"
            )
        out = output.reshape(n_perturbations, n_examples, *output.shape[1:])
        rest = tuple(out.shape[2:])
        if self.index is None:
            if math.prod(rest) != 1:
                raise ValueError(
                    f"{self.name}: the model returns {tuple(output.shape[1:])} values per "
                    "example; pass a target selecting one scalar per example"
                )
            return out.reshape(out.shape[0], n_examples)
        flat = self._flat_index(rest, output.device)
        out = out.reshape(out.shape[0], n_examples, -1)
        gather_idx = flat.view(1, n_examples, 1).expand(out.shape[0], n_examples, 1)
        return out.gather(2, gather_idx).squeeze(2)


def parse_target(target: TargetType, n_examples: int, name: str = "target") -> TargetIndex:
    """Validate a Captum target for ``n_examples`` examples.

    Accepts ``None``, an int, a tuple of ints (one index for every example), a scalar or
    1-D tensor of ints (one per example), a list of ints or of tuples (one per example).
    """
    if target is None:
        return TargetIndex(None, name)
    if isinstance(target, bool):
        raise TypeError(f"{name}: expected an int, tuple, list or tensor, got bool")
    if isinstance(target, int):
        return TargetIndex(torch.full((n_examples, 1), target, dtype=torch.long), name)
    if isinstance(target, tuple):
        _check_ints(target, name)
        if len(target) == 0:
            raise ValueError(f"{name}: an empty tuple selects nothing")
        row = torch.tensor(target, dtype=torch.long)
        return TargetIndex(row.expand(n_examples, -1).clone(), name)
    if isinstance(target, Tensor):
        if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
            raise TypeError(f"{name}: tensor targets must hold integers, got {target.dtype}")
        t = target.detach().to("cpu", torch.long)
        if t.numel() == 1:
            return TargetIndex(t.reshape(1, 1).expand(n_examples, 1).clone(), name)
        if t.dim() == 1 and t.numel() == n_examples:
            return TargetIndex(t.reshape(n_examples, 1).clone(), name)
        raise ValueError(
            f"{name}: a tensor target needs 1 or {n_examples} (one per example) entries, "
            f"got shape {tuple(target.shape)}"
        )
    if isinstance(target, list):
        if len(target) != n_examples:
            raise ValueError(
                f"{name}: a list target needs one entry per example ({n_examples}), "
                f"got {len(target)}"
            )
        if all(isinstance(entry, int) and not isinstance(entry, bool) for entry in target):
            return TargetIndex(torch.tensor(target, dtype=torch.long).reshape(-1, 1), name)
        tuples = [entry for entry in target if isinstance(entry, tuple)]
        if len(tuples) == len(target):
            lengths = {len(entry) for entry in tuples}
            if len(lengths) != 1 or 0 in lengths:
                raise ValueError(f"{name}: tuples in a list target must share one non-zero length")
            for entry in tuples:
                _check_ints(entry, name)
            return TargetIndex(torch.tensor(tuples, dtype=torch.long), name)
        raise TypeError(f"{name}: a list target must hold only ints or only tuples of ints")
    raise TypeError(
        f"{name}: expected None, an int, a tuple, a list or a tensor, got {type(target).__name__}"
    )


def parse_class_target(
    target: Union[TargetType, np.ndarray, np.integer], n_examples: int, name: str = "target"
) -> Optional[Tensor]:
    """One class index per example of a classifier's ``(N, classes)`` output.

    Accepts the forms of :func:`parse_target` that select one index per example (an int,
    a 1-tuple, a list or a tensor of ints) and numpy arrays or scalars of whole numbers,
    the form Quantus passes labels in (one entry, or one per example).

    Returns:
        ``(n_examples,)`` long CPU tensor, or None when ``target`` is None.
    """
    if isinstance(target, (np.ndarray, np.integer)):
        array = np.asarray(target).reshape(-1)
        whole = np.issubdtype(array.dtype, np.integer) or (
            np.issubdtype(array.dtype, np.floating) and np.array_equal(array, np.round(array))
        )
        if not whole:
            raise TypeError(f"{name}: expected whole-number class indices, got {array.dtype} values {array[:4]}")
        target = torch.from_numpy(array.astype(np.int64))
    index = parse_target(target, n_examples, name).index
    if index is None:
        return None
    if index.shape[1] != 1:
        raise ValueError(f"{name}: expected one class index per example, got an index of length {index.shape[1]}")
    return index[:, 0]


def _check_ints(values: Sequence[object], name: str) -> None:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name}: tuple entries must be ints, got {values!r}")
