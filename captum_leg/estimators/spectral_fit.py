"""Ridge fits through one eigendecomposition per example: penalty, estimate and errors.

With the prior ``beta ~ N(0, tau^2 diag(v))`` the substitution ``X' = X diag(sqrt v)``,
``beta = sqrt(v) gamma`` turns the problem into white ridge on ``X'``, whose solution is
a filter along orthonormal directions ``W`` (``P x r``) of the design:

* primal form (more units than cells): ``X'^T X' = W diag(d) W^T``;
* dual form (fewer units than cells): ``X' X'^T = U diag(d) U^T`` and
  ``W = X'^T U diag(d)^{-1/2}``, with no ``P x P`` matrix; directions outside ``W``
  carry no data and keep the prior.

Then ``gamma = W diag(h) c`` with ``c = W^T X'^T y`` and the filter ``h = 1 / (d + alpha)``.
With ``w_k^2 = c_k^2 / d_k`` the residual sum of squares is
``RSS(alpha) = RSS_0 + sum_k w_k^2 (alpha / (d_k + alpha))^2`` and the effective number
of parameters ``sum_k d_k / (d_k + alpha)``, so generalised cross-validation,
``n RSS / (n - df)^2``, costs ``O(r)`` per candidate penalty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import torch
from torch import Tensor

from captum_leg.estimators.evidence import penalty_posterior

# Candidate penalties: from 1e-12 to 1e6 times the mean eigenvalue, this many per decade.
_GCV_DECADES = (-12, 6)
_GCV_PER_DECADE = 8
# Examples fitted together (bounds the (examples, P, P) temporaries).
_CHUNK = 8
# GCV values within this share of the minimum count as equal (see _vertex).
_FLAT = 1e-7
# Smallest 1 - H_ii in the leverage-scaled residuals (a unit the fit reproduces exactly).
_MIN_FREE = 1e-6
# Eigenvalues below this share of the largest carry no direction.
_RANK_TOL = 1e-10


@dataclass
class SpectralFit:
    """A fitted ridge for every example of a group (``r`` fitted directions).

    Attributes:
        coef: ``(N, P)`` estimates of ``beta``.
        posterior_var: ``(N, P)`` model-based posterior variances of ``beta``.
        tau2: ``(N,)`` the prior's variance ``tau^2`` at the chosen penalty (0 without a
            prior).
        prior_var: ``(N,)`` ``tau^2`` for the standard error: its posterior mean under the
            marginal likelihood, which, unlike the point value, does not collapse to 0
            when the data cannot yet tell signal from noise.
        scales: ``(N, P)`` the prior's shape ``v`` (ones for a white prior).
        directions: ``(N, P, r)`` orthonormal directions ``W`` (zero columns unused).
        d: ``(N, r)`` their eigenvalues (0 for unused columns).
        h: ``(N, r)`` the filter along them (0 for unused columns).
        hc: ``(N, r)`` ``gamma``'s coordinates along them, ``h c``.
        rows: ``(n, N, r)`` the design's coordinates ``X' W`` (dual form), or None: the
            primal form reads them from the replayed design.
        free: ``(n, N)`` one minus each unit's leverage (dual form, where it is computed
            without cancellation), or None.
    """

    coef: Tensor
    posterior_var: Tensor
    tau2: Tensor
    prior_var: Tensor
    scales: Tensor
    directions: Tensor
    d: Tensor
    h: Tensor
    hc: Tensor
    rows: Optional[Tensor] = None
    free: Optional[Tensor] = None

    def robust_se(self, y: Tensor, design: Optional[Iterable[Tensor]]) -> Tensor:
        """Sandwich standard errors plus the spread of the prior's shrinkage bias.

        ``Var(gamma) = M diag(e~^2) M^T + tau^2 (I - H)^2`` with ``M = W diag(h) W^T X'^T``
        the map from responses to ``gamma``, ``H = W diag(d h) W^T`` and ``e~`` the
        residuals scaled for their leverage, ``e_i / sqrt(1 - H_ii)`` (the HC2 form of the
        heteroskedasticity-robust sandwich, unbiased under constant noise). ``tau^2`` is
        :attr:`prior_var`. ``beta``'s error is ``sqrt(v)`` times ``gamma``'s.

        Args:
            y: ``(n, N)`` responses (centred with an intercept).
            design: the design's rows in chunks (primal form), None in the dual form.
        """
        sv = self.scales.sqrt()
        meat = torch.zeros_like(self.coef)
        if self.rows is not None:
            chunks: Iterable[Tuple[Tensor, Tensor, Tensor]] = [(self.rows, y, self.free)]  # type: ignore[list-item]
        else:
            chunks = _with_rows(design, y, sv, self.directions, self.h)
        for rows, y_chunk, free in chunks:  # rows (k, N, r), free (k, N)
            resid = (y_chunk - (rows * self.hc).sum(-1)) / free.clamp_min(_MIN_FREE).sqrt()
            infl = torch.einsum("knr,nr,npr->knp", rows, self.h, self.directions)  # rows of M^T
            meat += ((resid**2)[..., None] * infl**2).sum(0)
        w2 = self.directions**2
        outside = (1 - w2.sum(-1)).clamp_min(0)  # directions without data keep the prior
        prior = self.prior_var[:, None]
        bias = prior * (w2 @ ((1 - self.d * self.h) ** 2)[..., None])[..., 0] + prior * outside
        return sv * (meat + bias).sqrt()


def _with_rows(
    design: Optional[Iterable[Tensor]], y: Tensor, sv: Tensor, directions: Tensor, h: Tensor
) -> Iterable[Tuple[Tensor, Tensor, Tensor]]:
    """Rows ``X' W``, responses and ``1 - H_ii`` chunk by chunk (primal form)."""
    if design is None:
        raise ValueError("the primal form's standard error needs the design replayed")
    lo = 0
    for x in design:  # (k, P)
        rows = torch.einsum("kp,np,npr->knr", x, sv, directions)
        yield rows, y[lo : lo + x.shape[0]], 1 - (rows**2 * h).sum(-1)
        lo += x.shape[0]


def fit_primal(
    gram: Tensor, xy: Tensor, yy: Tensor, scales: Optional[Tensor], dof: int, penalty: str
) -> SpectralFit:
    """Fit from ``X^T X`` ``(P, P)``, ``X^T y`` ``(N, P)`` and ``y^T y`` ``(N,)``.

    ``penalty`` is "gcv", "evidence" (white prior only) or "none" (least squares).
    """
    n_ex, p = xy.shape
    v = torch.ones_like(xy) if scales is None else scales
    sv = v.sqrt()
    if scales is None:
        d, vecs = torch.linalg.eigh(gram)
        d, vecs = d.clamp_min(0).expand(n_ex, p), vecs.expand(n_ex, p, p)
    else:
        parts = [torch.linalg.eigh(gram * (s[:, :, None] * s[:, None, :])) for s in sv.split(_CHUNK)]
        d = torch.cat([e for e, _ in parts]).clamp_min(0)
        vecs = torch.cat([q for _, q in parts])
    c = (vecs.transpose(1, 2) @ (sv * xy)[..., None])[..., 0]  # (N, P)
    keep = d > d.amax(-1, keepdim=True) * _RANK_TOL
    w2 = torch.where(keep, c**2 / torch.where(keep, d, torch.ones_like(d)), torch.zeros_like(c))
    resid0 = (yy - w2.sum(-1)).clamp_min(0)
    if penalty == "evidence":
        h, s2, tau2 = _evidence_filter(d[0], c, yy, dof)
        prior_var = tau2
    else:
        h, s2, tau2, _ = _choose_penalty(d, w2, resid0, keep, dof, penalty)
        prior_var = _posterior_tau2(d, c, yy, dof) if penalty != "none" else tau2
    gamma = (vecs @ (h * c)[..., None])[..., 0]
    post = s2[:, None] * ((vecs**2) @ h[..., None])[..., 0]
    return SpectralFit(sv * gamma, v * post, tau2, prior_var, v, vecs, d, h, h * c)


def fit_dual(x: Tensor, y: Tensor, scales: Optional[Tensor], dof: int, penalty: str) -> SpectralFit:
    """Fit from the design ``(n, P)`` itself (fewer units than cells) and ``y`` ``(n, N)``."""
    n_ex = y.shape[1]
    v = x.new_ones(n_ex, x.shape[1]) if scales is None else scales
    sv = v.sqrt()
    kernel = torch.einsum("ip,ep,jp->eij", x, v, x)  # X diag(v) X^T per example
    d, u = torch.linalg.eigh(kernel)  # (N, n), (N, n, n)
    d = d.clamp_min(0)
    keep = d > d.amax(-1, keepdim=True) * _RANK_TOL
    root = torch.where(keep, d.sqrt(), torch.zeros_like(d))
    inv_root = torch.where(keep, 1 / torch.where(keep, root, torch.ones_like(root)), torch.zeros_like(root))
    w = (u.transpose(1, 2) @ y.T[..., None])[..., 0]  # (N, n): components of y
    w2 = torch.where(keep, w**2, torch.zeros_like(w))
    resid0 = ((y**2).sum(0) - w2.sum(-1)).clamp_min(0)
    d = torch.where(keep, d, torch.zeros_like(d))
    h, s2, tau2, alpha = _choose_penalty(d, w2, resid0, keep, dof, penalty)
    prior_var = _posterior_tau2(d, root * w, (y**2).sum(0), dof)
    directions = torch.einsum("ip,ep,eir,er->epr", x, sv, u, inv_root)  # W = X'^T U d^{-1/2}
    c = root * w
    gamma = (directions @ (h * c)[..., None])[..., 0]
    outside = (1 - (directions**2).sum(-1)).clamp_min(0)
    post = s2[:, None] * (((directions**2) @ h[..., None])[..., 0] + outside / alpha[:, None])
    rows = (u * root[:, None, :]).permute(1, 0, 2)  # X' W = U d^{1/2}, (n, N, r)
    # 1 - H_ii = sum_k U_ik^2 (1 - d_k h_k): U is orthogonal, so no cancellation.
    free = ((u**2) * (1 - d * h)[:, None, :]).sum(-1).T  # (n, N)
    return SpectralFit(sv * gamma, v * post, tau2, prior_var, v, directions, d, h, h * c, rows, free)


def _choose_penalty(
    d: Tensor, w2: Tensor, resid0: Tensor, keep: Tensor, dof: int, penalty: str
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Filter ``h``, noise variance, prior variance and penalty per example.

    "gcv" minimises ``dof RSS / (dof - df)^2`` over a log grid of penalties; "none"
    gives least squares (``h = 1 / d``, no prior).
    """
    rank = keep.sum(-1)
    # With as many fitted directions as residual degrees of freedom the fit interpolates:
    # the least-squares residual is zero, and y^T y - sum w^2 is rounding that would
    # dominate the cross-validation at small penalties.
    resid0 = torch.where(rank < dof, resid0, torch.zeros_like(resid0))
    if penalty == "none":
        h = torch.where(keep, 1 / torch.where(keep, d, torch.ones_like(d)), torch.zeros_like(d))
        s2 = resid0 / (dof - rank).clamp_min(1)
        zero = torch.zeros_like(s2)
        return h, s2, zero, zero
    scale = (d * keep).sum(-1) / rank.clamp_min(1)  # (N,) mean fitted eigenvalue
    lo, hi = _GCV_DECADES
    exps = torch.linspace(lo, hi, (hi - lo) * _GCV_PER_DECADE + 1, dtype=d.dtype, device=d.device)
    alpha = scale * (10.0**exps)[:, None]  # (F, N)
    a = alpha[..., None]
    shrink = torch.where(keep, a / (d + a), torch.zeros_like(d * a))  # (F, N, r)
    rss = resid0 + (w2 * shrink**2).sum(-1)
    free = (dof - rank) + shrink.sum(-1)  # dof - df, without cancellation
    gcv = dof * rss / free.clamp_min(1e-300) ** 2
    log_alpha = _vertex(torch.log(gcv.clamp_min(1e-300)), torch.log(alpha))
    a = log_alpha.exp()
    shrink = torch.where(keep, a[:, None] / (d + a[:, None]), torch.zeros_like(d))
    s2 = (resid0 + (w2 * shrink**2).sum(-1)) / ((dof - rank) + shrink.sum(-1)).clamp_min(1e-300)
    h = torch.where(keep, 1 / (d + a[:, None]), torch.zeros_like(d))
    return h, s2, s2 / a, a


def _vertex(values: Tensor, where: Tensor) -> Tensor:
    """The minimiser of ``values`` ``(F, N)`` over the evenly spaced ``where``.

    Chosen to move continuously with the data, so that rounding-level changes of the
    responses (a batch of examples against one alone) change the penalty by rounding
    only: where the curve is flat to within ``_FLAT`` (interpolation with fewer units
    than cells leaves it flat towards small penalties) the smallest such penalty,
    otherwise the grid minimum refined by a parabola through its neighbours.
    """
    low = values.min(0).values
    flat = values <= low + _FLAT * low.abs()
    first = torch.arange(values.shape[0], device=values.device)[:, None].expand_as(values)
    best = torch.where(flat, first, torch.full_like(first, values.shape[0])).min(0).values  # (N,)
    inner = best.clamp(1, values.shape[0] - 2)
    take = lambda off: values.gather(0, (inner + off)[None])[0]  # noqa: E731
    left, mid, right = take(-1), take(0), take(1)
    curvature = left - 2 * mid + right
    refine = (best == inner) & (mid < left) & (mid <= right) & (curvature > 0)
    shift = torch.where(refine, 0.5 * (left - right) / curvature.clamp_min(1e-300), torch.zeros_like(mid))
    step = where[1] - where[0]
    return where.gather(0, best[None])[0] + shift.clamp(-1, 1) * step


def _evidence_filter(d: Tensor, c: Tensor, yy: Tensor, dof: int) -> Tuple[Tensor, Tensor, Tensor]:
    """The marginal likelihood's posterior average over the penalty (white prior, shared ``d``)."""
    log_alpha, weights, noise_var = penalty_posterior(d, c, yy, dof)
    alpha = log_alpha.exp()[..., None]  # (F, N, 1)
    h = (weights[..., None] / (d + alpha)).sum(0)  # (N, P)
    s2 = (weights * noise_var).sum(0)
    tau2 = (weights * noise_var / alpha[..., 0]).sum(0)
    return h, s2, tau2


def _posterior_tau2(d: Tensor, c: Tensor, yy: Tensor, dof: int) -> Tensor:
    """``E[tau^2]`` under the marginal likelihood, per example (``d``, ``c``: ``(N, r)``)."""
    out = []
    for d_e, c_e, yy_e in zip(d, c, yy):
        _, _, tau2 = _evidence_filter(d_e, c_e[None], yy_e[None], dof)
        out.append(tau2)
    return torch.cat(out)
