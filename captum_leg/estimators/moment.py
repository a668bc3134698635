"""The paper's moment estimator: ``Sigma^{-1} (1/n) sum_i r_i X_i``."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from captum_leg.estimators.base import Estimate, Estimator, Replay, register_estimator
from captum_leg.estimators.design import DesignGroup


@register_estimator
class MomentEstimator(Estimator):
    """LEG as published (Luo, Barut, Jin 2021): closed form, any number of cells.

    Its variance carries the random design: for a linear model ``y = <beta, X>`` it is
    ``((beta^T Sigma beta) Sigma^{-1} + beta beta^T) / n``, not zero. The standard error
    is the sample standard deviation of the per-unit estimates ``r_i Sigma^{-1} X_i``
    over ``sqrt(n)``. Responses are used as given (``f(x0 + X) - f(x0)``, or the
    half-difference of a pair): the paper's estimator has no intercept.
    """

    name = "moment"

    def __init__(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool):
        super().__init__(group, n_examples, centered, track_error)
        shape = (n_examples, group.p)
        self._sum = torch.zeros(shape, device=group.device, dtype=group.dtype)
        self._sq: Optional[Tensor] = (
            torch.zeros(shape, device=group.device, dtype=group.dtype) if track_error else None
        )

    def update(self, features: Tensor, responses: Tensor) -> None:
        r = responses.T  # (N, k)
        self._sum += r @ features
        if self._sq is not None:
            per_unit = self.group.precision(features)  # Sigma^{-1} X_i
            self._sq += (r**2) @ per_unit**2
        self.units += features.shape[0]

    def moment(self) -> Tensor:
        """``m = (1/n) sum_i r_i X_i``, ``(N, P)``."""
        return self._sum / max(self.units, 1)

    def estimate(self, replay: Optional[Replay] = None) -> Estimate:
        coef = self.group.precision(self.moment())
        se = None
        if self._sq is not None:
            n = self.units
            if n < 2:
                se = torch.full_like(coef, float("nan"))
            else:
                var = (self._sq / n - coef**2).clamp_min(0) * (n / (n - 1))
                se = (var / n).sqrt()
        return Estimate(coef, se)
