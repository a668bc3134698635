"""The paper's moment estimator: ``Sigma^{-1} (1/n) sum_i r_i X_i``."""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import Tensor

from captum_leg.estimators.base import Accumulator, Estimate, Estimator, GroupContext, Replay, register_estimator, zeros
from captum_leg.estimators.design import DesignGroup


class MomentAccumulator(Accumulator):
    """Sums of ``r_i X_i`` (and of the squared per-unit estimates for the standard error)."""

    def __init__(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool):
        super().__init__(group, n_examples, centered, track_error)
        self._sum = zeros(group, n_examples, group.p)
        self._sq: Optional[Tensor] = zeros(group, n_examples, group.p) if track_error else None
        self._y_rows: List[Tensor] = []

    def update(self, features: Tensor, responses: Tensor) -> None:
        r = responses.T  # (N, k)
        self._sum += r @ features
        if self._sq is not None:
            per_unit = self.group.precision(features)  # Sigma^{-1} X_i
            self._sq += (r**2) @ per_unit**2
            self._y_rows.append(responses)
        self.units += features.shape[0]

    def moment(self) -> Tensor:
        """``m = (1/n) sum_i r_i X_i``, ``(N, P)``."""
        return self._sum / max(self.units, 1)

    def result(self, context: GroupContext) -> Estimate:
        coef = self.group.precision(self.moment())
        se = None
        if self._sq is not None:
            n = self.units
            if n < 2:
                se = coef.new_full(coef.shape, float("nan"))
            else:
                if context.orthogonal:
                    resid_sq, design = self._orthogonal_parts(coef, context.replay)
                    se = ((resid_sq / n) * (n / (n - 1)) / n + design).sqrt()
                else:
                    var = (self._sq / n - coef**2).clamp_min(0) * (n / (n - 1))
                    se = (var / n).sqrt()
        return Estimate(coef, se)

    def _orthogonal_parts(self, coef: Tensor, replay: Optional[Replay]) -> "tuple[Tensor, Tensor]":
        """The residuals' spread and this design's own error, for orthogonal rows.

        The error of ``Sigma^{-1} m`` is ``Sigma^{-1} (X^T X / n - Sigma) beta`` (the
        design's part, small but not zero with orthogonal rows: a partial last block,
        random lengths) plus ``Sigma^{-1} X^T e / n`` (the residuals' part). The
        residuals' variance is ``sum_i (e_i Sigma^{-1} X_i)^2 / n^2`` with
        ``e_i = y_i - <X_i, beta>`` (the per-unit spread of ``y_i Sigma^{-1} X_i`` would
        overstate the error several times). The design's part is computed with ``beta``
        plugged in and spread over the cells in proportion to ``diag(Sigma^{-1})``, the
        shape its variance has for independent rows: its realised value in a cell is one
        draw, not a variance.
        """
        if replay is None:
            raise ValueError("the moment estimator's standard error with orthogonal sampling needs the design replayed")
        y = torch.cat(self._y_rows)
        sq = torch.zeros_like(coef)
        fitted_moment = torch.zeros_like(coef)
        lo = 0
        for x in replay():
            x = x.to(self.group.dtype)
            fit = x @ coef.T  # (k, N)
            resid = y[lo : lo + x.shape[0]] - fit
            sq += (resid.T**2) @ self.group.precision(x) ** 2
            fitted_moment += fit.T @ x
            lo += x.shape[0]
        design = self.group.precision(fitted_moment / self.units) - coef  # (N, P)
        shape = self.group.precision_diagonal()
        design_var = (design**2).mean(-1, keepdim=True) / shape.mean() * shape
        return sq, design_var


@register_estimator
class MomentEstimator(Estimator):
    """LEG as published (Luo, Barut, Jin 2021): closed form, any number of cells.

    Its variance carries the random design: for a linear model ``y = <beta, X>`` it is
    ``((beta^T Sigma beta) Sigma^{-1} + beta beta^T) / n``, not zero (orthogonal sampling
    removes most of it, and the standard error then counts the residuals and what is
    left of the design's error). The standard error is otherwise the sample standard
    deviation of the per-unit estimates ``r_i Sigma^{-1} X_i`` over ``sqrt(n)``.
    Responses are used as given (``f(x0 + X) - f(x0)``, or the half-difference of a
    pair): the paper's estimator has no intercept.
    """

    name = "moment"

    def __init__(self) -> None:
        pass

    def accumulator(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool) -> Accumulator:
        return MomentAccumulator(group, n_examples, centered, track_error)

    def estimate(self, accumulators: Sequence[Accumulator], contexts: Sequence[GroupContext]) -> List[Estimate]:
        return [acc.result(ctx) for acc, ctx in zip(accumulators, contexts)]  # type: ignore[attr-defined]
