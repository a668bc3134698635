"""Ridge on grids too large for ``P x P`` matrices: empirical-Bayes shrinkage of the moment.

Above :data:`~captum_leg.estimators.regression.MAX_DENSE_FEATURES` cells the ridge
estimator replaces the Gram matrix ``X^T X`` by its expectation ``n Sigma``. The moment
``m = (1/n) sum_i r_i X_i`` (responses centred for Gaussian sampling) then satisfies,
approximately, ``m ~ N(Sigma beta, (v/n) Sigma)`` with ``v`` the response variance,
and under the prior ``beta ~ N(0, tau^2 I)`` the posterior mean is the structured solve

    beta_hat = (Sigma + delta I)^{-1} m,    delta = v / (n tau^2),

diagonal in the DST-I basis of each grid up to the rank-one term of ``Sigma``
(Sherman-Morrison). ``tau^2`` is averaged over its posterior given ``m`` (flat prior on
``log tau^2``), as the dense ridge averages its penalty. Everything is ``O(p log p)``.
This keeps the moment estimator's design variance but removes its worst part, the
noise in smooth patterns, which ``Sigma^{-1}`` amplifies most. Standard errors are the
posterior standard deviations ``sqrt((v/n) diag((Sigma + delta I)^{-1}))``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_leg.estimators.base import Accumulator, Estimate, Estimator, GroupContext
from captum_leg.estimators.design import Block, DesignGroup

#: Cells per design group up to which the regression estimators form ``P x P`` matrices
#: (64 MB in float64 at 2900 cells; a 53 x 53 image grid is 2809); ``RidgeEstimator``
#: hands larger groups over to this structured form.
MAX_DENSE_FEATURES = 2900

_POINTS = 81


class SpectralRidgeEstimator(Estimator):
    """The ridge estimator's structured form for large grids (any number of cells).

    ``RidgeEstimator`` hands groups above ``MAX_DENSE_FEATURES`` cells to it; it has a
    white prior (no envelope) and chooses ``tau^2`` by its posterior given the moment.
    """

    name = "ridge"

    def __init__(self) -> None:
        pass

    def accumulator(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool) -> Accumulator:
        return SpectralRidgeAccumulator(group, n_examples, centered, track_error)

    def estimate(self, accumulators: Sequence[Accumulator], contexts: Sequence[GroupContext]) -> List[Estimate]:
        if any(acc.track_error for acc in accumulators):
            warnings.warn(
                "standard errors of the structured ridge (more than "
                f"{MAX_DENSE_FEATURES} cells per perturbed channel) are approximate: they leave "
                "out part of the random design's variance and understate the error when "
                "samples are far fewer than cells (measured 1.5 to 5 times on linear models "
                "at 150 pairs for 4096 cells; docs/method.md); use a coarser grid_size for "
                "calibrated errors",
                UserWarning,
                stacklevel=6,
            )
        return [acc.result() for acc in accumulators]  # type: ignore[attr-defined]


class SpectralRidgeAccumulator(Accumulator):
    """The moment's running sums, and the response's for its variance."""

    def __init__(self, group: DesignGroup, n_examples: int, centered: bool, track_error: bool):
        super().__init__(group, n_examples, centered, track_error)
        opts: Dict[str, Any] = dict(device=group.device, dtype=group.dtype)
        self._srx = torch.zeros(n_examples, group.p, **opts)
        self._sx = torch.zeros(group.p, **opts)
        self._sr = torch.zeros(n_examples, **opts)
        self._srr = torch.zeros(n_examples, **opts)

    def update(self, features: Tensor, responses: Tensor) -> None:
        self._srx += responses.T @ features
        self._sx += features.sum(0)
        self._sr += responses.sum(0)
        self._srr += (responses**2).sum(0)
        self.units += features.shape[0]

    def result(self) -> Estimate:
        n = self.units
        if self.centered:
            mean_r = self._sr / n
            moment = (self._srx - mean_r[:, None] * self._sx) / n
            var_r = (self._srr - n * mean_r**2) / max(n - 1, 1)
        else:
            moment = self._srx / n
            var_r = self._srr / n
        noise = var_r / n  # Cov(m) ~ noise * Sigma
        blocks = self.group.blocks
        spectra = [b.grid.flat(b.grid.spectrum(b.part(moment))) for b in blocks]  # (N, p_b)
        mus = [b.noise_level**2 * b.grid.flat(b.grid.eigenvalues) for b in blocks]  # (p_b,)
        log_tau2, weights = _prior_posterior(torch.cat(spectra, -1), torch.cat(mus), noise)
        tau2 = log_tau2.exp()  # (F, N)
        delta = noise / tau2  # (F, N)
        coef_parts: List[Tensor] = []
        se_parts: List[Tensor] = []
        for b, spec, mu in zip(blocks, spectra, mus):
            mean, var = _shifted_solve(b, spec, mu, delta, weights, noise, self.track_error)
            coef_parts.append(mean)
            se_parts.append(var.clamp_min(0).sqrt() if var is not None else mean)
        coef = torch.cat(coef_parts, -1) if len(coef_parts) > 1 else coef_parts[0]
        se = None
        if self.track_error:
            se = torch.cat(se_parts, -1) if len(se_parts) > 1 else se_parts[0]
        return Estimate(coef, se)


def _prior_posterior(spec: Tensor, mu: Tensor, noise: Tensor) -> Tuple[Tensor, Tensor]:
    """Posterior of ``log tau^2`` on a per-example grid: ``spec_k ~ N(0, tau^2 mu_k^2 + noise mu_k)``."""
    opts: Dict[str, Any] = dict(device=spec.device, dtype=spec.dtype)
    sq = spec**2  # (N, P)

    def nll(log_tau2: Tensor) -> Tensor:  # (F, N) -> (F, N)
        var = log_tau2.exp()[..., None] * mu**2 + noise[:, None] * mu
        return 0.5 * (torch.log(var) + sq / var).sum(-1)

    # tau^2 where prior and noise variance meet at the typical eigenvalue, +- many e-folds.
    centre = torch.log(noise / mu.mean()).clamp_min(-700)
    step = 0.5
    coarse = centre + torch.arange(-30.0, 30.0 + step / 2, step, **opts)[:, None]
    values = nll(coarse)
    inside = values - values.min(0).values <= 20.0
    lo = torch.where(inside, coarse, torch.full_like(coarse, math.inf)).min(0).values - step
    hi = torch.where(inside, coarse, torch.full_like(coarse, -math.inf)).max(0).values + step
    fine = lo + (hi - lo) * torch.linspace(0, 1, _POINTS, **opts)[:, None]
    return fine, torch.softmax(-nll(fine), dim=0)


def _shifted_solve(
    block: Block, spec: Tensor, mu: Tensor, delta: Tensor, weights: Tensor, noise: Tensor, with_var: bool
) -> Tuple[Tensor, Optional[Tensor]]:
    """Posterior mean (and variance) of one block, averaged over the ``delta`` grid.

    ``(Sigma + delta I)^{-1} = A^{-1} - A^{-1} u u^T A^{-1} / (1 + u^T A^{-1} u)`` with the
    spectral ``A = s^2 L + delta I`` and ``u = s 1 / sqrt(p)``.
    """
    grid = block.grid
    p = grid.p
    s2 = block.noise_level**2
    inv = 1.0 / (mu + delta[..., None])  # (F, N, p) spectral A^{-1}
    ones = grid.flat(grid.spectrum(torch.ones(grid.shape, device=spec.device, dtype=spec.dtype)))
    a_inv_m = inv * spec  # spectra of A^{-1} m
    a_inv_1 = inv * ones
    denom = 1 + (s2 / p) * (ones * a_inv_1).sum(-1)  # (F, N)
    coupling = (s2 / p) * (ones * a_inv_m).sum(-1) / denom  # (F, N)
    mean_spec = (weights[..., None] * (a_inv_m - coupling[..., None] * a_inv_1)).sum(0)
    mean = grid.flat(grid.from_spectrum(grid.unflat(mean_spec)))
    if not with_var:
        return mean, None
    w = weights[..., None]
    diag_inv = grid.flat(grid.basis_diagonal(grid.unflat((w * inv).sum(0))))  # E[diag A^{-1}]
    a_inv_1_cells = grid.flat(grid.from_spectrum(grid.unflat(a_inv_1)))  # (F, N, p)
    rank_one = (w * (s2 / p) * a_inv_1_cells**2 / denom[..., None]).sum(0)
    return mean, noise[:, None] * (diag_inv - rank_one)
