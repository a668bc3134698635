"""The estimator interface: stream (perturbation, response) units, return cell gradients.

Every estimator targets the same quantity, the gradient of the Gaussian-smoothed model
``beta = E[grad f(x0 + X)] = Sigma^{-1} E[X y]`` (Stein's lemma), one value per cell, and
reports a per-cell standard error. They differ in variance: see ``docs/method.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Type

import torch
from torch import Tensor

from captum_leg.estimators.design import DesignGroup


#: A callable returning an iterable over the design's feature rows, chunk by chunk.
Replay = Callable[[], Iterable[Tensor]]


@dataclass
class Estimate:
    """Cell gradients of one design group for every example.

    Attributes:
        coef: ``(N, P)`` estimates of ``beta`` (cell-summed gradients), features in the
            group's order.
        standard_error: ``(N, P)`` per-cell standard errors, or None when not tracked.
    """

    coef: Tensor
    standard_error: Optional[Tensor] = None


class Estimator(ABC):
    """Accumulates units of one design group while the forward batches stream by.

    Args:
        group: the blocks perturbed together.
        n_examples: examples ``N`` explained at once (they share the perturbations).
        centered: True when the responses carry an unknown offset (Gaussian sampling:
            ``f(x0 + X) - f(x0)`` has mean ``E f(x0 + X) - f(x0)``), False for antithetic
            pairs, whose half-differences are odd in ``X`` and have mean zero.
        track_error: also compute standard errors.
    """

    #: Registry name.
    name: str = ""
    #: Largest number of features ``P`` handled with dense ``P x P`` matrices.
    max_dense_features: int = 0

    def __init__(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool):
        self.group = group
        self.n_examples = n_examples
        self.centered = centered
        self.track_error = track_error
        self.units = 0

    @abstractmethod
    def update(self, features: Tensor, responses: Tensor) -> None:
        """Add ``k`` units: ``features`` ``(k, P)`` in input units, ``responses`` ``(k, N)``."""

    @abstractmethod
    def estimate(self, replay: Optional[Replay] = None) -> Estimate:
        """The current estimate from every unit added so far.

        Args:
            replay: yields the features of every unit added so far again, in order, in
                chunks; estimators whose standard errors need a second pass over the
                design (regression residuals) use it instead of storing the design.
        """

    @classmethod
    def min_units(cls, group: DesignGroup, centered: bool) -> int:
        """Fewest units the estimator needs (per group)."""
        return 2

    @classmethod
    def for_group(cls, group: DesignGroup) -> "Type[Estimator]":
        """The class that runs this estimator on ``group`` (a structured form on large grids)."""
        return cls


_REGISTRY: Dict[str, Type[Estimator]] = {}


def register_estimator(cls: Type[Estimator]) -> Type[Estimator]:
    """Class decorator: make an estimator available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def estimator_names() -> tuple:
    """Names accepted by ``attribute(estimator=...)``."""
    return tuple(_REGISTRY)


def get_estimator(name: str) -> Type[Estimator]:
    """The estimator class registered as ``name``."""
    return _REGISTRY[name]


def as_float64(t: Tensor, like: DesignGroup) -> Tensor:
    """Move ``t`` to the group's device and dtype."""
    return t.to(device=like.device, dtype=like.dtype)

