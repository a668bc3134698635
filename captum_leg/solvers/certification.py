"""The driver's certification step: from a backend's answer to certified maps.

A backend returns, per map, a primal map ``h`` of the scaled LP and a dual point
``(z, w)`` (:class:`~captum_leg.solvers.ScaledResult`). Whatever the backend believes
about them, :func:`certify_result` (run by the driver, not by the backend):

1. makes each map exactly feasible (projections between the box and ``range(A)``, then
   the smallest blend with the always-feasible LEG map); its ``||D h||_1`` is the upper
   bound ``UB``;
2. makes each dual point exactly dual-feasible and takes its dual objective as the lower
   bound ``LB`` (valid by weak duality, :func:`~captum_leg.solvers.operators.lower_bound`);
3. reports ``rel_gap = (UB - LB) / UB`` and applies the policy: every map within ``tol``
   is ``"optimal"``; otherwise :class:`~captum_leg.solvers.SolverError`, or with
   ``accept_inexact=True`` the feasible map with status ``"inexact"`` and **this**
   certified gap (never a gap the backend claims).

A map the backend did not answer (``answered`` false, e.g. a time limit before its
turn), or answered with non-finite values, is replaced by the LEG map with the trivial
bound ``LB = 0`` (gap 1). A backend without dual points gets ``LB = 0`` for every map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from captum_leg.solvers.operators import certify
from captum_leg.solvers.problem import ScaledProblem, SolverError


@dataclass(kw_only=True)
class ScaledResult:
    """What a backend returns for the rows of a :class:`~captum_leg.solvers.ScaledProblem`.

    Nothing here is trusted: the driver certifies ``h`` with the dual point ``(z, w)``
    (:func:`certify_result`).

    Attributes:
        h: ``(B, p)`` or ``(B, *shape)`` scaled primal maps (any device/dtype; need not
            be exactly feasible).
        z, w: ``(B, M)`` dual estimates, sign convention of
            :mod:`captum_leg.solvers.operators` (any accuracy: the driver repairs them);
            ``None``: no dual point, the lower bound is 0.
        iterations: per-map iteration counts (backend-specific meaning).
        answered: ``(B,)`` bool, false for maps the backend did not reach (their ``h``,
            ``z``, ``w`` are ignored); ``None``: every map.
        why: why maps may be unfinished (e.g. ``"time limit 2 s reached"``), for the
            error message.
        reported_gap: ``(B,)`` the backend's own gap estimates, for diagnosis only
            (copied to ``TVSolution.info["reported_gap"]``).
        info: free-form backend details (copied to ``TVSolution.info``).
    """

    h: Tensor
    z: Optional[Tensor] = None
    w: Optional[Tensor] = None
    iterations: List[int]
    answered: Optional[Tensor] = None
    why: str = ""
    reported_gap: Optional[Tensor] = None
    info: Dict[str, Any] = field(default_factory=dict)


@dataclass
class CertifiedMaps:
    """The driver's verdict on a :class:`ScaledResult`.

    Attributes:
        h: ``(B, p)`` exactly feasible scaled maps (working device/dtype).
        rel_gap: ``(B,)`` certified relative gaps (float64, CPU).
        status: per map ``"optimal"`` (gap within ``tol``) or ``"inexact"``.
    """

    h: Tensor
    rel_gap: Tensor
    status: List[str]


def _checked(
    backend: str, name: str, x: Optional[Tensor], shape: Tuple[int, ...], like: Tensor
) -> Tensor:
    """``x`` on ``like``'s device/dtype with ``shape`` (zeros for ``None``)."""
    if x is None:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    if not isinstance(x, Tensor) or x.numel() != torch.Size(shape).numel():
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise SolverError(f"LEG-TV backend {backend!r} returned {name} of shape {got}, expected {shape}")
    return x.detach().to(device=like.device, dtype=like.dtype).reshape(shape)


def certify_result(
    backend: str, scaled: ScaledProblem, result: ScaledResult, tol: float, accept_inexact: bool
) -> CertifiedMaps:
    """Certify a backend's answer (see the module docstring).

    Args:
        backend: the backend's name (for messages).
        scaled: the rows the backend was asked to solve.
        result: its answer.
        tol: the gap every map must reach.
        accept_inexact: return maps above ``tol`` (status ``"inexact"``) instead of raising.

    Returns:
        The feasible maps, their certified gaps and statuses.

    Raises:
        SolverError: a map above ``tol`` and not ``accept_inexact``, or a malformed result.
    """
    ops, b, t = scaled.ops, scaled.b, scaled.lams
    B, M = b.shape
    cells = (B,) + tuple(scaled.grid.shape)
    h = _checked(backend, "h", result.h, cells, b)
    z = _checked(backend, "z", result.z, (B, M), b)
    w = _checked(backend, "w", result.w, (B, M), b)
    answered = torch.ones(B, dtype=torch.bool, device=b.device)
    if result.answered is not None:
        answered &= _checked(backend, "answered", result.answered, (B,), answered)
    answered &= torch.isfinite(h).flatten(1).all(-1) & torch.isfinite(z).all(-1) & torch.isfinite(w).all(-1)
    h_leg = ops.leg(b)
    h = torch.where(answered.reshape((B,) + (1,) * ops.ndim), h, h_leg)
    z = torch.where(answered[:, None], z, torch.zeros_like(z))
    w = torch.where(answered[:, None], w, torch.zeros_like(w))
    h_feas, _, gap = certify(ops, b, t, h, z, w, h_leg)
    gap = gap.detach().to("cpu", torch.float64)
    ok = gap <= tol
    if not bool(ok.all()) and not accept_inexact:
        raise SolverError(_miss_message(backend, gap, ok, tol, result))
    status = ["optimal" if bool(o) else "inexact" for o in ok]
    return CertifiedMaps(h_feas.reshape(B, -1), gap, status)


def _miss_message(backend: str, gap: Tensor, ok: Tensor, tol: float, result: ScaledResult) -> str:
    bad = (~ok).nonzero().flatten().tolist()
    why = f"{result.why}: " if result.why else ""
    msg = (
        f"LEG-TV backend {backend!r}: {why}{len(bad)} of {len(ok)} maps above the requested "
        f"gap {tol:g} (worst certified gap {float(gap.max()):.3g}, maps "
        f"{bad[:8]}{'...' if len(bad) > 8 else ''})"
    )
    if result.reported_gap is not None:
        claimed = result.reported_gap.detach().to("cpu", torch.float64).flatten()
        if claimed.numel() == len(ok) and bool((claimed[~ok] <= tol).any()):
            msg += "; the backend reported gaps within tol that its dual points do not certify"
    return msg + "; raise the limits or pass accept_inexact=True"
