"""The ridge penalty's posterior under the marginal likelihood (``RidgeEstimator(penalty="evidence")``)."""

from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import torch
from torch import Tensor


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

    opts: Dict[str, Any] = dict(device=eigval.device, dtype=eigval.dtype)
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
