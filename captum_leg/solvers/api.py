"""The user-facing entry points: :func:`solve_tv`, :func:`solve_tv_batch`, :func:`make_problem`."""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from captum_leg.grid import GridShape, check_grid_shape
from captum_leg.solvers.problem import TVProblem, TVSolution
from captum_leg.solvers.registry import DEFAULT_SOLVER, get_solver, resolve_backend

ArrayLike = Union[Tensor, np.ndarray]
ScalarOrSeq = Union[float, Sequence[float], np.ndarray, Tensor]


def _per_map(value: ScalarOrSeq, B: int, name: str) -> Tensor:
    if isinstance(value, Tensor):
        t = value.detach().to("cpu", torch.float64).flatten()
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64)).flatten()
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number or a sequence of numbers, got {value!r}")
    if t.numel() == 1:
        t = t.expand(B).clone()
    if t.numel() != B:
        raise ValueError(f"{name} must be a scalar or have one entry per map ({B}), got {t.numel()}")
    return t


def _check_moments(moments: object, shape: GridShape) -> Tensor:
    p = math.prod(shape)
    if isinstance(moments, np.ndarray):
        if not (np.issubdtype(moments.dtype, np.floating) or np.issubdtype(moments.dtype, np.integer)):
            raise TypeError(f"moments must be a real array, got dtype {moments.dtype}")
        moments = torch.from_numpy(np.ascontiguousarray(moments))
    if not isinstance(moments, Tensor):
        raise TypeError(f"moments must be a torch.Tensor or numpy.ndarray, got {type(moments).__name__}")
    if moments.is_complex() or moments.dtype == torch.bool:
        raise TypeError(f"moments must be real, got dtype {moments.dtype}")
    if not moments.is_floating_point():
        moments = moments.to(torch.float64)
    if moments.dim() == 1:
        moments = moments[None]
    if moments.dim() != 2 or moments.shape[1] != p:
        raise ValueError(
            f"moments must have prod(grid_shape) = {p} entries per map (grid_shape {shape}), "
            f"got shape {tuple(moments.shape)}"
        )
    if not bool(torch.isfinite(moments).all()):
        raise ValueError("moments contain NaN or inf")
    return moments.detach()


def make_problem(
    moments: ArrayLike,
    grid_shape: Union[int, Sequence[int]],
    noise_levels: ScalarOrSeq,
    lams: ScalarOrSeq,
) -> TVProblem:
    """Validate arguments and build a :class:`~captum_leg.solvers.TVProblem`.

    Args:
        moments: ``(B, p)`` tensor or array (a 1-D input is one map).
        grid_shape: ``(k_1, ..., k_d)`` (an int is a 1-D grid).
        noise_levels: scalar or ``(B,)``; every entry ``> 0`` and finite.
        lams: scalar or ``(B,)``; every entry in ``(0, 1)``.

    Returns:
        The problem (moments as a floating tensor on their device; numpy -> CPU tensor).

    Raises:
        TypeError, ValueError: naming the offending argument.
    """
    shape = check_grid_shape("grid_shape", grid_shape)
    m = _check_moments(moments, shape)
    B = int(m.shape[0])
    s = _per_map(noise_levels, B, "noise_level")
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError(f"noise_level must be finite and > 0, got {s.tolist()}")
    lam = _per_map(lams, B, "lam")
    if not bool(torch.isfinite(lam).all()) or bool(((lam <= 0) | (lam >= 1)).any()):
        raise ValueError(f"lam must lie in the open interval (0, 1), got {lam.tolist()}")
    return TVProblem(m, shape, s, lam)


def solve_tv_batch(
    moments: ArrayLike,
    grid_shape: Union[int, Sequence[int]],
    noise_levels: ScalarOrSeq,
    lams: ScalarOrSeq,
    solver: str = DEFAULT_SOLVER,
    **options: Any,
) -> TVSolution:
    """Solve many LEG-TV maps on one grid in one call.

    Args:
        moments: ``(B, p)`` tensor (any device) or numpy array.
        grid_shape: ``(k_1, ..., k_d)`` with ``prod == p``: a signal, an image, a volume.
        noise_levels: noise level(s) ``s``: scalar or ``(B,)``.
        lams: relative level(s) ``lambda`` in ``(0, 1)``: scalar or ``(B,)``.
        solver: ``"auto"``, ``"torch"`` (alias ``"admm"``), ``"highs"``, ``"clarabel"``,
            ``"mosek"``, or any registered name.
        **options: ``tol`` (certified relative gap, default ``1e-4``), ``time_limit``
            (seconds for the whole call), ``accept_inexact``, ``verbose``, and the
            backend's own options (see each backend).

    Returns:
        A :class:`~captum_leg.solvers.TVSolution`; ``maps`` are on the moments' device in
        their dtype (numpy input: a CPU tensor).

    Raises:
        ValueError, TypeError: invalid arguments, options or unknown solver.
        SolverError: the backend failed, is unavailable, or missed ``tol``.
    """
    try:  # name errors before argument errors
        get_solver(solver)
    except (TypeError, ValueError) as err:
        raise type(err)(f"solver: {err}") from None
    problem = make_problem(moments, grid_shape, noise_levels, lams)
    return resolve_backend(solver, problem).solve(problem, **options)


def solve_tv(
    moment: ArrayLike,
    grid_shape: Union[int, Sequence[int]],
    noise_level: float,
    lam: float,
    solver: str = DEFAULT_SOLVER,
    **options: Any,
) -> ArrayLike:
    """Solve one LEG-TV map.

    Args:
        moment: ``p`` values as a tensor or numpy array (flat or shaped like the grid).
        grid_shape: ``(k_1, ..., k_d)``.
        noise_level: ``s > 0``.
        lam: ``lambda`` in ``(0, 1)``.
        solver: backend name, see :func:`solve_tv_batch`.
        **options: see :func:`solve_tv_batch`.

    Returns:
        The map ``g`` of length ``p``, of the input's kind (tensor or numpy), dtype
        (integer input gives float64) and device.
    """
    if not isinstance(moment, (np.ndarray, Tensor)):
        raise TypeError(f"moment must be a torch.Tensor or numpy.ndarray, got {type(moment).__name__}")
    for name, v in (("noise_level", noise_level), ("lam", lam)):
        if not _is_scalar(v):
            raise TypeError(f"{name} must be a scalar for solve_tv (use solve_tv_batch for many maps)")
    sol = solve_tv_batch(moment.reshape(1, -1), grid_shape, noise_level, lam, solver=solver, **options)
    g = sol.maps[0]
    if isinstance(moment, np.ndarray):
        out = g.cpu().numpy()
        return out.astype(moment.dtype) if np.issubdtype(moment.dtype, np.floating) else out
    return g


def _is_scalar(value: object) -> bool:
    return value.dim() == 0 if isinstance(value, Tensor) else np.ndim(np.asarray(value)) == 0
