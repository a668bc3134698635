"""The estimator interface: stream (perturbation, response) units, return cell gradients.

Every estimator targets the same quantity, the gradient of the Gaussian-smoothed model
``beta = E[grad f(x0 + X)] = Sigma^{-1} E[X y]`` (Stein's lemma), one value per cell, and
reports a per-cell standard error. They differ in variance: see ``docs/method.md``.

Two roles, as in scikit-learn:

* an :class:`Estimator` is what users pass as ``attribute(estimator=...)``: a name or an
  instance whose ``__init__`` only stores its hyperparameters;
* an :class:`Accumulator` holds one design group's running statistics while the forward
  batches stream by (made by :meth:`Estimator.accumulator`, one per group and call).

:meth:`Estimator.estimate` turns every group's accumulator into estimates at once, so an
estimator may share information across the channels of an input (the ridge prior does).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterable, List, Optional, Sequence, Tuple, Type, Union

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


@dataclass(frozen=True)
class GroupContext:
    """What an estimator may know about a group beyond its features.

    Attributes:
        group: the blocks perturbed together.
        inputs: for each block, the index of the input tensor it belongs to; blocks of
            one input share its grid (and may share a prior).
        replay: the group's feature rows again, in order (see :data:`Replay`).
        orthogonal: the rows come in orthogonal blocks (``sampling="orthogonal"``), which
            removes the moment estimator's design variance.
    """

    group: DesignGroup
    inputs: Tuple[int, ...]
    replay: Optional[Replay]
    orthogonal: bool = False


class Accumulator(ABC):
    """Running statistics of one design group.

    Args:
        group: the blocks perturbed together.
        n_examples: examples ``N`` explained at once (they share the perturbations).
        centered: True when the responses carry an unknown offset (Gaussian sampling:
            ``f(x0 + X) - f(x0)`` has mean ``E f(x0 + X) - f(x0)``), False for symmetric
            pairs, whose half-differences are odd in ``X`` and have mean zero.
        track_error: also compute standard errors.
    """

    def __init__(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool):
        self.group = group
        self.n_examples = n_examples
        self.centered = centered
        self.track_error = track_error
        self.units = 0

    @abstractmethod
    def update(self, features: Tensor, responses: Tensor) -> None:
        """Add ``k`` units: ``features`` ``(k, P)`` in input units; ``responses`` ``(k, N)``
        (or ``(k, N, P)`` cell gradients for estimators that ask for gradients)."""


class Estimator(ABC):
    """How cell gradients are estimated from the responses (hyperparameters only).

    Subclasses set :attr:`name`, declare their hyperparameters as ``__init__`` keyword
    arguments stored under the same attribute names, and implement
    :meth:`accumulator` and :meth:`estimate`.
    """

    #: Registry name, accepted as ``attribute(estimator=name)``.
    name: ClassVar[str] = ""
    #: "response" for ``f(x0 + X)`` values, "gradient" for autograd cell gradients.
    needs: ClassVar[str] = "response"
    #: Largest number of features per group it can handle (0: no limit).
    max_features: ClassVar[int] = 0
    #: ``n_samples`` per perturbed channel when the call leaves it out.
    default_samples: ClassVar[int] = 1000

    @abstractmethod
    def accumulator(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool) -> Accumulator:
        """A fresh accumulator for one design group."""

    @abstractmethod
    def estimate(self, accumulators: Sequence[Accumulator], contexts: Sequence[GroupContext]) -> List[Estimate]:
        """Estimates of every group from its accumulator (same order)."""

    def min_units(self, group: DesignGroup, centered: bool) -> int:
        """Fewest units the estimator needs per group."""
        return 2

    def for_group(self, group: DesignGroup) -> "Estimator":
        """The estimator that runs on ``group`` (a structured form on large grids, say)."""
        return self

    def check(self) -> None:
        """Validate the hyperparameters; raise ``ValueError``/``TypeError`` naming the one at fault."""

    # -- scikit-learn's conventions: parameters are the __init__ arguments -----------------
    def get_params(self) -> Dict[str, Any]:
        """The hyperparameters, by name."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_params() == self.get_params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted((k, repr(v)) for k, v in self.get_params().items()))))


_REGISTRY: Dict[str, Type[Estimator]] = {}


def register_estimator(cls: Type[Estimator]) -> Type[Estimator]:
    """Class decorator: make an estimator available by its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def estimator_names() -> Tuple[str, ...]:
    """Names accepted by ``attribute(estimator=...)``."""
    return tuple(_REGISTRY)


def get_estimator(name: str) -> Type[Estimator]:
    """The estimator class registered as ``name``."""
    return _REGISTRY[name]


def resolve_estimator(value: Union[str, Estimator], argument: str = "estimator") -> Estimator:
    """An estimator instance from a registered name (default hyperparameters) or an instance."""
    if isinstance(value, Estimator):
        return value
    if isinstance(value, str):
        if value not in _REGISTRY:
            raise ValueError(f"{argument}: expected one of {estimator_names()} or an Estimator instance, got {value!r}")
        return _REGISTRY[value]()
    raise TypeError(
        f"{argument}: expected an estimator name {estimator_names()} or an Estimator instance, "
        f"got {type(value).__name__}"
    )


def zeros(group: DesignGroup, *shape: int) -> Tensor:
    return torch.zeros(shape, device=group.device, dtype=group.dtype)
