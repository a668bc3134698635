"""Regression estimators: least squares and empirical-Bayes ridge on the perturbations.

The population least-squares coefficient of ``y`` on ``X`` (with an intercept) is
``Sigma^{-1} E[X y]``, the same smoothed gradient the moment estimator targets, so
regression is just as consistent. It removes the variance the moment estimator pays for
the random design: with ``y = a + <beta, X> + e`` its error is driven by ``e`` alone.

Ridge adds the prior ``beta ~ N(0, tau^2 I)`` with ``tau^2`` and the residual variance
chosen by maximising the marginal likelihood (empirical Bayes). Because
``X^T X ~ n Sigma`` and ``Sigma`` puts little variance on smooth patterns, the penalty
acts like a Wiener filter: it damps the smooth, poorly sampled directions in which the
noise of every grid estimator concentrates, and leaves the rest almost untouched. It
is defined for any ``n`` and tends to least squares as ``n`` grows.

Both work with the ``P x P`` Gram matrix, so they are limited to
``max_dense_features`` cells per group; larger grids use the structured estimators.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple, Type

import torch
from torch import Tensor

from captum_leg.estimators.base import Estimate, Estimator, Replay, register_estimator
from captum_leg.estimators.design import DesignGroup

#: Cells per design group up to which the regression estimators form ``P x P`` matrices
#: (64 MB in float64 at 2900 cells; a 53 x 53 image grid is 2809).
MAX_DENSE_FEATURES = 2900

# Examples per chunk in the robust standard error (bounds an (examples, rows, P) temporary).
_SE_CHUNK = 4


class _GramEstimator(Estimator):
    """Streams the sufficient statistics of a linear regression of ``y`` on ``X``."""

    max_dense_features = MAX_DENSE_FEATURES

    def __init__(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool):
        super().__init__(group, n_examples, centered, track_error)
        opts = dict(device=group.device, dtype=group.dtype)
        p = group.p
        self._sx = torch.zeros(p, **opts)
        self._sxx = torch.zeros(p, p, **opts)
        self._sy = torch.zeros(n_examples, **opts)
        self._sxy = torch.zeros(n_examples, p, **opts)
        self._syy = torch.zeros(n_examples, **opts)
        # Responses kept for the residuals of the robust standard error; the design is
        # replayed from the noise stream rather than stored.
        self._y_rows: List[Tensor] = []

    def update(self, features: Tensor, responses: Tensor) -> None:
        self._sx += features.sum(0)
        self._sxx += features.T @ features
        self._sy += responses.sum(0)
        self._sxy += responses.T @ features
        self._syy += (responses**2).sum(0)
        self.units += features.shape[0]
        if self.track_error:
            self._y_rows.append(responses)

    def _statistics(self) -> Tuple[Tensor, Tensor, Tensor, int]:
        """Gram matrix, ``X^T y``, ``y^T y`` and residual degrees of freedom (centred if needed)."""
        n = self.units
        if not self.centered:
            return self._sxx, self._sxy, self._syy, n
        mx = self._sx / n
        gram = self._sxx - n * torch.outer(mx, mx)
        xy = self._sxy - self._sy[:, None] * mx
        yy = self._syy - self._sy**2 / n
        return gram, xy, yy, n - 1

    def _robust_se(
        self,
        replay: Optional[Replay],
        coef: Tensor,
        eigval: Tensor,
        eigvec: Tensor,
        filt: Tensor,
        prior_var: Tensor,
    ) -> Tensor:
        """Standard error of the linear smoother ``H X^T y``, ``H = V diag(filt) V^T``.

        ``Var = H X^T diag(e^2) X H + tau^2 (H X^T X - I)^2``: the sampling variance
        from the residuals ``e`` (heteroskedasticity-robust, HC1-scaled by the effective
        degrees of freedom ``sum_k d_k filt_k``) plus the spread of the shrinkage bias
        under the prior ``beta ~ N(0, tau^2 I)`` (``prior_var = tau^2`` per example;
        zero for least squares).
        """
        if replay is None:
            raise ValueError("standard errors of a regression estimator need the design replayed")
        y = torch.cat(self._y_rows)
        mean_x = self._sx / self.units if self.centered else None
        if self.centered:
            y = y - self._sy / self.units
        meat = torch.zeros_like(coef)
        row = 0
        for x in replay():
            x = x.to(self.group.dtype)
            if mean_x is not None:
                x = x - mean_x
            resid = y[row : row + x.shape[0]] - x @ coef.T  # (k, N)
            row += x.shape[0]
            rotated = x @ eigvec  # rows V^T x_i
            for lo in range(0, coef.shape[0], _SE_CHUNK):
                # Rows of H x_i for every unit of the chunk and example: (c, k, P).
                ax = (rotated[None] * filt[lo : lo + _SE_CHUNK, None, :]) @ eigvec.T
                meat[lo : lo + _SE_CHUNK] += torch.einsum("kc,ckp->cp", resid[:, lo : lo + _SE_CHUNK] ** 2, ax**2)
        dof = self._statistics()[3]
        used = (eigval * filt).sum(-1, keepdim=True)  # effective number of parameters
        meat = meat * (dof / (dof - used).clamp_min(1.0))
        bias = prior_var[:, None] * (((eigval * filt - 1) ** 2) @ (eigvec.T**2))
        return (meat + bias).sqrt()


@register_estimator
class LeastSquaresEstimator(_GramEstimator):
    """Ordinary least squares of the responses on the perturbations (with an intercept
    for Gaussian sampling). Needs more units than cells; exact for linear models."""

    name = "least_squares"

    @classmethod
    def min_units(cls, group: DesignGroup, centered: bool) -> int:
        return group.p + 1 + int(centered)

    def estimate(self, replay: Optional[Replay] = None) -> Estimate:
        gram, xy, _, _ = self._statistics()
        eigval, eigvec = torch.linalg.eigh(gram)
        filt = (1.0 / eigval).expand(xy.shape[0], -1)
        coef = ((xy @ eigvec) * filt) @ eigvec.T
        se = None
        if self.track_error:
            no_prior = torch.zeros(coef.shape[0], device=coef.device, dtype=coef.dtype)
            se = self._robust_se(replay, coef, eigval, eigvec, filt, no_prior)
        return Estimate(coef, se)


@register_estimator
class RidgeEstimator(_GramEstimator):
    """Ridge regression averaged over its penalty by empirical Bayes, per example.

    The estimate is ``V diag(h) V^T X^T y`` with ``X^T X = V diag(d) V^T`` and the
    spectral filter ``h = E[1 / (d + alpha)]``, the average over the penalty's
    posterior (:func:`penalty_posterior`). With plenty of data the posterior is sharp
    and this is ridge at the most likely penalty; with few it also averages in smaller
    penalties, which keeps the estimate and its standard error honest when the data
    cannot yet tell signal from noise.
    """

    name = "ridge"

    @classmethod
    def for_group(cls, group: DesignGroup) -> Type[Estimator]:
        if group.p > cls.max_dense_features:
            from captum_leg.estimators.spectral import SpectralRidgeEstimator

            return SpectralRidgeEstimator
        return cls

    def estimate(self, replay: Optional[Replay] = None) -> Estimate:
        gram, xy, yy, dof = self._statistics()
        eigval, eigvec = torch.linalg.eigh(gram)
        eigval = eigval.clamp_min(0)
        u = xy @ eigvec  # (N, P)
        log_alpha, weights, noise_var = penalty_posterior(eigval, u, yy, dof)
        alpha = log_alpha.exp()[..., None]  # (F, N, 1)
        filt = (weights[..., None] / (eigval + alpha)).sum(0)  # (N, P)
        coef = (u * filt) @ eigvec.T
        se = None
        if self.track_error:
            prior_var = (weights * noise_var / alpha[..., 0]).sum(0)  # E[tau^2]
            se = self._robust_se(replay, coef, eigval, eigvec, filt, prior_var)
        return Estimate(coef, se)


def penalty_posterior(
    eigval: Tensor, u: Tensor, yy: Tensor, dof: int, points: int = 81
) -> Tuple[Tensor, Tensor, Tensor]:
    """Posterior of the ridge penalty ``alpha = sigma^2 / tau^2`` on a per-example grid.

    Model: ``y = X beta + e``, ``beta ~ N(0, tau^2 I)``, ``e ~ N(0, sigma^2 I)``, a flat
    prior on ``log alpha``. With ``X^T X = V diag(d) V^T`` and ``u = V^T X^T y`` the
    profile negative log-likelihood (``sigma^2`` maximised out) is, up to a constant,
    ``(dof / 2) log Q(alpha) + (1/2) sum_k log(1 + d_k / alpha)`` with
    ``Q(alpha) = sum_k u_k^2 / (d_k + d_k^2 / alpha) + (y^T y - sum_k u_k^2 / d_k)``.
    A coarse log grid locates the region holding the posterior mass; ``points``
    evenly spaced values cover it.

    Args:
        eigval: ``(P,)`` eigenvalues ``d`` of the Gram matrix.
        u: ``(N, P)`` rotated ``X^T y``, one row per example.
        yy: ``(N,)`` ``y^T y``.
        dof: residual degrees of freedom (units, minus one with an intercept).
        points: grid points per example.

    Returns:
        ``log alpha`` ``(F, N)``, posterior weights ``(F, N)`` (summing to one per
        example) and the noise variance ``sigma^2 = Q / dof`` at each point ``(F, N)``.
    """
    keep = eigval > eigval.max() * 1e-12
    d = torch.where(keep, eigval, torch.ones_like(eigval))
    fit = torch.where(keep, u**2 / d, torch.zeros_like(u))  # (N, P)
    # Least-squares residual sum of squares, floored at 1e-10 of y^T y: a noise-free fit
    # would leave the likelihood flat in alpha (and the choice to rounding) otherwise.
    resid = (yy - fit.sum(-1)).clamp_min(0) + 1e-10 * yy
    scale = float(eigval[keep].mean()) if bool(keep.any()) else 1.0
    tiny = torch.finfo(eigval.dtype).tiny

    def profile(log_alpha: Tensor) -> Tuple[Tensor, Tensor]:  # (F, N) -> nll, Q
        a = log_alpha.exp()[..., None]
        q = (fit * a / (a + d)).sum(-1) + resid
        logdet = torch.where(keep, torch.log1p(d / a), torch.zeros_like(d * a)).sum(-1)
        return 0.5 * (dof * torch.log(q.clamp_min(tiny)) + logdet), q

    opts = dict(device=eigval.device, dtype=eigval.dtype)
    step = 0.5
    coarse = math.log(scale) + torch.arange(-30.0, 8.0 + step / 2, step, **opts)[:, None]
    coarse = coarse.expand(-1, u.shape[0])
    nll = profile(coarse)[0]
    # Where the posterior has weight above e^-20 of its peak, one coarse step either side.
    inside = nll - nll.min(0).values <= 20.0
    lo = torch.where(inside, coarse, torch.full_like(coarse, math.inf)).min(0).values - step
    hi = torch.where(inside, coarse, torch.full_like(coarse, -math.inf)).max(0).values + step
    fine = lo + (hi - lo) * torch.linspace(0, 1, points, **opts)[:, None]  # (F, N)
    nll, q = profile(fine)
    weights = torch.softmax(-nll, dim=0)
    return fine, weights, q / dof
