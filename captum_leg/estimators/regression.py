"""Regression estimators: least squares and ridge on the perturbations.

The population least-squares coefficient of ``y`` on ``X`` (with an intercept) is
``Sigma^{-1} E[X y]``, the same smoothed gradient the moment estimator targets, so
regression is just as consistent. It removes the variance the moment estimator pays for
the random design: with ``y = a + <beta, X> + e`` its error is driven by ``e`` alone.

Ridge adds the prior ``beta ~ N(0, tau^2 diag(v))``. Because ``X^T X ~ n Sigma`` and
``Sigma`` puts little variance on smooth patterns, the penalty acts like a Wiener
filter: it damps the smooth, poorly sampled directions in which the noise of every grid
estimator concentrates. The prior's shape ``v`` (the *envelope*) is learnt from the data:
cells where the channels of an input respond strongly get a wider prior, which a
network's gradient, concentrated on the object, rewards. The penalty is chosen by
generalised cross-validation, which, unlike the marginal likelihood, does not mistake a
smooth signal for noise when there are fewer samples than cells, so noiseless responses
give the minimum-norm (``n <= P``) or least-squares (``n > P``) answer. Ridge is defined
for any ``n`` and tends to least squares as ``n`` grows, whatever ``v``.

Both work with ``P x P`` Gram matrices (or, with fewer units than cells, ``n x n`` kernel
matrices), so they are limited to ``MAX_DENSE_FEATURES`` cells per group; larger grids
use the structured ridge (:mod:`captum_leg.estimators.spectral`).
"""

from __future__ import annotations

import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_leg.estimators.base import (
    Accumulator,
    Estimate,
    Estimator,
    GroupContext,
    Replay,
    register_estimator,
    zeros,
)
from captum_leg.estimators.design import DesignGroup
from captum_leg.estimators.envelope import envelope_scales, initial_scales
from captum_leg.estimators.spectral import MAX_DENSE_FEATURES, SpectralRidgeEstimator
from captum_leg.estimators.spectral_fit import SpectralFit, fit_dual, fit_primal


PENALTY_RULES = ("gcv", "evidence")


class GramAccumulator(Accumulator):
    """Streams the sufficient statistics of a linear regression of ``y`` on ``X``.

    The responses are kept (``n x N``) for residuals; the design is replayed from the
    noise stream rather than stored.
    """

    def __init__(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool):
        super().__init__(group, n_examples, centered, track_error)
        p = group.p
        self._sx = zeros(group, p)
        self._sxx = zeros(group, p, p)
        self._sxy = zeros(group, n_examples, p)
        self._y_rows: List[Tensor] = []

    def update(self, features: Tensor, responses: Tensor) -> None:
        self._sx += features.sum(0)
        self._sxx += features.T @ features
        self._sxy += responses.T @ features
        self._y_rows.append(responses)
        self.units += features.shape[0]

    @property
    def dof(self) -> int:
        """Residual degrees of freedom before the fit (one less with an intercept)."""
        return self.units - int(self.centered)

    def responses(self) -> Tensor:
        """``(n, N)`` responses, centred with an intercept."""
        y = torch.cat(self._y_rows)
        return y - y.mean(0) if self.centered else y

    def gram(self) -> Tuple[Tensor, Tensor]:
        """``X^T X`` and ``X^T y`` ``(N, P)``, centred with an intercept."""
        if not self.centered:
            return self._sxx, self._sxy
        n = self.units
        mx = self._sx / n
        sy = torch.cat(self._y_rows).sum(0)
        return self._sxx - n * torch.outer(mx, mx), self._sxy - sy[:, None] * mx

    def moment_estimate(self) -> Tensor:
        """The moment estimate ``Sigma^{-1} X^T y / n`` ``(N, P)`` (centred with an intercept)."""
        return self.group.precision(self.gram()[1] / self.units)

    def design_rows(self, replay: Optional[Replay]) -> Iterator[Tensor]:
        """The design again, chunk by chunk, centred with an intercept."""
        if replay is None:
            raise ValueError("this estimate needs the design replayed")
        mean = self._sx / self.units if self.centered else None
        for x in replay():
            x = x.to(self.group.dtype)
            yield x - mean if mean is not None else x

    def design(self, replay: Optional[Replay]) -> Tensor:
        return torch.cat(list(self.design_rows(replay)))

    def fit(self, penalty: str, scales: Optional[Tensor], replay: Optional[Replay], dual: bool) -> SpectralFit:
        """Fit every example (prior scales ``(N, P)`` or None for a white prior)."""
        y = self.responses()
        if dual:
            return fit_dual(self.design(replay), y, scales, self.dof, penalty)
        gram, xy = self.gram()
        return fit_primal(gram, xy, (y**2).sum(0), scales, self.dof, penalty)

    def standard_error(self, fit: SpectralFit, replay: Optional[Replay]) -> Tensor:
        """Robust (sandwich) standard errors of the fitted smoother, plus the prior bias spread."""
        design = None if fit.rows is not None else self.design_rows(replay)
        return fit.robust_se(self.responses(), design)


class _RegressionEstimator(Estimator):
    max_features = MAX_DENSE_FEATURES

    def accumulator(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool) -> Accumulator:
        return GramAccumulator(group, n_examples, centered, track_error)

    def _finish(self, accs: Sequence[GramAccumulator], contexts: Sequence[GroupContext], fits: Sequence[SpectralFit]) -> List[Estimate]:
        out = []
        for acc, ctx, fit in zip(accs, contexts, fits):
            se = acc.standard_error(fit, ctx.replay) if acc.track_error else None
            out.append(Estimate(fit.coef, se))
        return out


@register_estimator
class LeastSquaresEstimator(_RegressionEstimator):
    """Ordinary least squares of the responses on the perturbations (with an intercept
    for Gaussian sampling). Needs more units than cells; exact for linear models.
    Standard errors: heteroskedasticity-robust (HC2) sandwich."""

    name = "least_squares"

    def __init__(self) -> None:
        pass

    def min_units(self, group: DesignGroup, centered: bool) -> int:
        return group.p + 1 + int(centered)

    def estimate(self, accumulators: Sequence[Accumulator], contexts: Sequence[GroupContext]) -> List[Estimate]:
        accs: Sequence[GramAccumulator] = accumulators  # type: ignore[assignment]
        fits = [acc.fit("none", None, ctx.replay, dual=False) for acc, ctx in zip(accs, contexts)]
        return self._finish(accs, contexts, fits)


@register_estimator
class RidgeEstimator(_RegressionEstimator):
    """Ridge regression with a learnt prior envelope and a cross-validated penalty.

    Args:
        penalty: how the penalty is chosen per example and channel: "gcv" (generalised
            cross-validation; noiseless responses give the least-squares or
            minimum-norm answer) or "evidence" (the marginal likelihood's posterior
            average, with a white prior only; the estimator of captum-leg 0.1).
        envelope: learn the prior's shape from the data (shared by the channels of an
            input, smoothed over ``envelope_smoothing`` cells); False for a white prior.
        envelope_smoothing: standard deviation, in cells, of the Gaussian smoothing of
            the envelope.
        envelope_iterations: expectation-maximisation updates of the envelope.

    Examples::

        >>> from captum_leg.estimators import RidgeEstimator
        >>> attr = LEG(model).attribute(x, target=c, estimator=RidgeEstimator(envelope=False))
    """

    name = "ridge"

    def __init__(
        self,
        penalty: str = "gcv",
        envelope: bool = True,
        envelope_smoothing: float = 1.0,
        envelope_iterations: int = 6,
    ) -> None:
        self.penalty = penalty
        self.envelope = envelope
        self.envelope_smoothing = envelope_smoothing
        self.envelope_iterations = envelope_iterations

    def check(self) -> None:
        """Validate the hyperparameters (ValueError/TypeError naming the one at fault)."""
        if self.penalty not in PENALTY_RULES:
            raise ValueError(f"RidgeEstimator.penalty: expected one of {PENALTY_RULES}, got {self.penalty!r}")
        if not isinstance(self.envelope, bool):
            raise TypeError(f"RidgeEstimator.envelope: expected a bool, got {type(self.envelope).__name__}")
        if self.envelope and self.penalty == "evidence":
            raise ValueError("RidgeEstimator: penalty='evidence' works with a white prior only; pass envelope=False")
        s = self.envelope_smoothing
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (math.isfinite(s) and s >= 0):
            raise ValueError(f"RidgeEstimator.envelope_smoothing: expected a float >= 0 (cells), got {s!r}")
        it = self.envelope_iterations
        if isinstance(it, bool) or not isinstance(it, int) or it < 1:
            raise ValueError(f"RidgeEstimator.envelope_iterations: expected an int >= 1, got {it!r}")

    def for_group(self, group: DesignGroup) -> Estimator:
        """The estimator that runs on ``group``: this one, or its structured form on large grids."""
        if group.p > MAX_DENSE_FEATURES:
            return SpectralRidgeEstimator()
        return self

    def estimate(self, accumulators: Sequence[Accumulator], contexts: Sequence[GroupContext]) -> List[Estimate]:
        accs: Sequence[GramAccumulator] = accumulators  # type: ignore[assignment]
        # Fewer units than cells: the n x n kernel is the smaller matrix (and needs the design).
        dual = [self.penalty == "gcv" and acc.units <= acc.group.p for acc in accs]
        scales: List[Optional[Tensor]] = [None] * len(accs)
        rounds = self.envelope_iterations if self.envelope else 0
        designs = [_cached(ctx.replay) if d else ctx.replay for ctx, d in zip(contexts, dual)]
        if self.envelope:
            moments = [acc.moment_estimate() for acc in accs]
            scales = list(initial_scales(moments, contexts, self.envelope_smoothing))
        for _ in range(rounds):
            fits = [acc.fit(self.penalty, s, r, d) for acc, s, r, d in zip(accs, scales, designs, dual)]
            scales = list(envelope_scales(fits, contexts, self.envelope_smoothing))
        fits = [acc.fit(self.penalty, s, r, d) for acc, s, r, d in zip(accs, scales, designs, dual)]
        return self._finish(accs, contexts, fits)


def _cached(replay: Optional[Replay]) -> Optional[Replay]:
    """Replay the design once and keep it (used with fewer units than cells: ``n x P`` is
    smaller than the Gram matrix, and the envelope's rounds read it several times)."""
    if replay is None:
        return None
    rows: List[Tensor] = []

    def again():  # type: ignore[no-untyped-def]
        if not rows:
            rows.extend(replay())
        return iter(rows)

    return again
