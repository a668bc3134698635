"""The LEG-TV problem, the solver interface and the backend registry.

The problem for one map (``LEG_METHOD.md`` section 4), grid ``k1 x k2``, ``p = k1 k2``::

    minimise  ||D g||_1   s.t.   ||D^{+T} (Sigma g - m)||_inf <= lam ||D^{+T} m||_inf

With ``Sigma = s^2 (L + 1 1^T / p)`` and ``D^{+T} = D L^{-1}`` the constraint reads
``s^2 |A g - b| <= lam s^2 ||b||_inf`` where ``A = D + c 1^T / p``, ``c = D L^{-1} 1`` and
``b = D L^{-1} m / s^2``. Backends solve the *scaled* problem (O(1) data, well
conditioned)::

    minimise  ||D h||_1   s.t.   |A h - b~| <= lam,     b~ = b / beta,  beta = ||b||_inf

and the map is ``g = beta h`` (the objective scales by ``beta``; the constraint is
homogeneous in ``(g, b)``). ``m = 0`` gives ``beta = 0`` and ``g = 0`` without a solve.

Public API: :class:`TVProblem`, :class:`TVSolution`, :class:`SolverError`,
:class:`TVSolver`, :func:`register_solver`, :func:`available_solvers`,
:func:`get_solver`, :func:`solve_tv`, :func:`solve_tv_batch`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from captum_leg.grid import Grid, get_grid

ArrayLike = Union[Tensor, np.ndarray]
ScalarOrSeq = Union[float, Sequence[float], np.ndarray, Tensor]


class SolverError(RuntimeError):
    """A LEG-TV solve failed (infeasible, limit reached, licence or backend missing).

    Raised instead of ever returning a map that is not a certified/optimal solution.
    """


# ---------------------------------------------------------------------------------------
# problem and solution types
# ---------------------------------------------------------------------------------------
@dataclass
class TVProblem:
    """A batch of LEG-TV problems sharing one grid.

    Attributes:
        moments: ``(B, p)`` moment vectors ``m`` (row-major grid cells).
        grid_shape: ``(k1, k2)`` with ``k1 * k2 == p``.
        noise_levels: ``(B,)`` noise levels ``s > 0``.
        lams: ``(B,)`` relative constraint levels in ``(0, 1)``.
    """

    moments: Tensor
    grid_shape: Tuple[int, int]
    noise_levels: Tensor
    lams: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.moments.shape[0])

    @property
    def p(self) -> int:
        return int(self.grid_shape[0] * self.grid_shape[1])

    def grid(self, dtype: torch.dtype = torch.float64, device: Any = None) -> Grid:
        """The cached :class:`Grid` (default: float64 on the moments' device)."""
        dev = self.moments.device if device is None else device
        return get_grid(self.grid_shape, dev, dtype)

    def scaled(
        self, dtype: torch.dtype = torch.float64, device: Any = None
    ) -> Tuple[Grid, Tensor, Tensor, Tensor]:
        """Data of the scaled problem.

        Args:
            dtype: working precision.
            device: working device (default: the moments' device).

        Returns:
            ``(grid, b_tilde (B, M), beta (B,), lams (B,))``; rows with ``beta == 0``
            (``m = 0``) have ``b_tilde == 0`` and must be answered with ``g = 0``.
        """
        grid = self.grid(dtype, device)
        m = self.moments.to(device=grid.device, dtype=dtype)
        s2 = self.noise_levels.to(device=grid.device, dtype=dtype) ** 2
        b = grid.pinv_t(m.reshape(-1, *self.grid_shape)) / s2[:, None]
        beta = b.abs().amax(-1)
        b_tilde = b / torch.where(beta > 0, beta, torch.ones_like(beta))[:, None]
        return grid, b_tilde, beta, self.lams.to(device=grid.device, dtype=dtype)


@dataclass
class TVSolution:
    """Solutions of a :class:`TVProblem`.

    Attributes:
        maps: ``(B, p)`` LEG-TV maps ``g`` (device/dtype of the moments).
        objective: ``(B,)`` ``||D g||_1`` (float64, CPU).
        max_violation: ``(B,)`` relative constraint violation
            ``max(0, ||D^{+T}(Sigma g - m)||_inf - lam ||D^{+T} m||_inf) / ||D^{+T} m||_inf``
            measured in float64 on the returned maps.
        rel_gap: ``(B,)`` certified relative duality gap, NaN where the backend does not
            certify one.
        backend: name of the backend that produced the maps.
        status: per-map status strings.
        iterations: per-map iteration counts (backend-specific meaning).
        solve_time: wall-clock seconds of the whole batch.
        info: free-form backend details.
    """

    maps: Tensor
    objective: Tensor
    max_violation: Tensor
    rel_gap: Tensor
    backend: str
    status: List[str]
    iterations: List[int]
    solve_time: float
    info: Dict[str, Any] = field(default_factory=dict)


def evaluate_maps(problem: TVProblem, maps: Tensor) -> Tuple[Tensor, Tensor]:
    """Objective ``||D g||_1`` and relative violation of maps, in float64 (structured).

    Args:
        problem: the problem the maps answer.
        maps: ``(B, p)`` candidate maps.

    Returns:
        ``(objective (B,), max_violation (B,))`` as float64 CPU tensors. Where
        ``D^{+T} m = 0`` the violation is the absolute ``||D^{+T} Sigma g||_inf``.
    """
    grid = problem.grid(torch.float64)
    k1, k2 = problem.grid_shape
    g = maps.to(device=grid.device, dtype=torch.float64).reshape(-1, k1, k2)
    m = problem.moments.to(device=grid.device, dtype=torch.float64).reshape(-1, k1, k2)
    s2 = problem.noise_levels.to(device=grid.device, dtype=torch.float64) ** 2
    lams = problem.lams.to(device=grid.device, dtype=torch.float64)
    dg = grid.diff(g)
    sigma_g = s2[:, None] * (dg + grid.c * g.sum((-2, -1))[:, None] / grid.p)
    dm = grid.pinv_t(m)
    scale = dm.abs().amax(-1)
    resid = (sigma_g - dm).abs().amax(-1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    viol = torch.clamp(resid - lams * scale, min=0) / safe
    return dg.abs().sum(-1).cpu(), viol.cpu()


def finish_solution(
    problem: TVProblem,
    h: Tensor,
    beta: Tensor,
    backend: str,
    status: List[str],
    iterations: List[int],
    solve_time: float,
    rel_gap: Optional[Tensor] = None,
    info: Optional[Dict[str, Any]] = None,
) -> TVSolution:
    """Unscale ``g = beta h``, cast to the moments' dtype/device and measure it.

    Args:
        problem: the solved problem.
        h: ``(B, p)`` scaled solutions (any device/dtype).
        beta: ``(B,)`` scale factors from :meth:`TVProblem.scaled`.
        backend, status, iterations, solve_time, rel_gap, info: see :class:`TVSolution`.

    Returns:
        The :class:`TVSolution`.
    """
    h = h.to(device=beta.device, dtype=beta.dtype).reshape(problem.batch_size, -1)
    g = (beta[:, None] * h).to(device=problem.moments.device, dtype=problem.moments.dtype)
    obj, viol = evaluate_maps(problem, g)
    if rel_gap is None:
        rel_gap = torch.full((problem.batch_size,), math.nan, dtype=torch.float64)
    return TVSolution(
        maps=g,
        objective=obj,
        max_violation=viol,
        rel_gap=rel_gap.detach().to("cpu", torch.float64),
        backend=backend,
        status=list(status),
        iterations=list(iterations),
        solve_time=float(solve_time),
        info=dict(info or {}),
    )


# ---------------------------------------------------------------------------------------
# solver interface and registry
# ---------------------------------------------------------------------------------------
class TVSolver:
    """Base class of LEG-TV backends.

    Subclasses set ``name``, override :meth:`unavailable_reason` when they depend on
    optional software, and implement :meth:`solve_scaled` for the rows with ``m != 0``
    (``m = 0`` rows are answered by :meth:`solve` with ``g = 0``).
    """

    name: str = "base"

    def unavailable_reason(self) -> Optional[str]:
        """``None`` when usable now, else a human-readable reason."""
        return None

    def available(self) -> bool:
        """Whether the backend can be used now."""
        return self.unavailable_reason() is None

    def solve(self, problem: TVProblem, **options: Any) -> TVSolution:
        """Solve a batch of problems.

        Args:
            problem: the batch.
            **options: backend options (see each backend).

        Returns:
            The :class:`TVSolution`.

        Raises:
            SolverError: backend unavailable or any map not solved to its tolerance.
        """
        reason = self.unavailable_reason()
        if reason is not None:
            raise SolverError(
                f"LEG-TV backend {self.name!r} is unavailable: {reason}. "
                f"Available backends: {', '.join(available_solvers()) or 'none'}."
            )
        t0 = time.perf_counter()
        grid, b_tilde, beta, lams = problem.scaled(self.working_dtype(options), self.working_device(problem))
        nz = (beta > 0).nonzero().flatten()
        B = problem.batch_size
        h = torch.zeros(B, problem.p, dtype=b_tilde.dtype, device=b_tilde.device)
        status = ["zero moment"] * B
        iters = [0] * B
        gap = torch.full((B,), math.nan, dtype=torch.float64)
        info: Dict[str, Any] = {}
        if nz.numel():
            res = self.solve_scaled(grid, b_tilde[nz], lams[nz], **options)
            h[nz] = res["h"].to(h)
            for j, i in enumerate(nz.tolist()):
                status[i] = res["status"][j]
                iters[i] = int(res["iterations"][j])
            if res.get("rel_gap") is not None:
                gap[nz.cpu()] = res["rel_gap"].detach().to("cpu", torch.float64)
            info = res.get("info", {})
        gap[(beta <= 0).cpu()] = 0.0
        return finish_solution(
            problem, h, beta, self.name, status, iters, time.perf_counter() - t0, gap, info
        )

    # hooks ---------------------------------------------------------------------------
    def working_dtype(self, options: Dict[str, Any]) -> torch.dtype:
        return torch.float64

    def working_device(self, problem: TVProblem) -> torch.device:
        return torch.device("cpu")

    def solve_scaled(
        self, grid: Grid, b_tilde: Tensor, lams: Tensor, **options: Any
    ) -> Dict[str, Any]:
        """Solve ``min ||D h||_1 s.t. |D h + c 1^T h / p - b~| <= lam`` per row.

        Returns:
            dict with ``h`` ``(B, p)``, ``status`` (list), ``iterations`` (list),
            optionally ``rel_gap`` ``(B,)`` and ``info``.
        """
        raise NotImplementedError


_REGISTRY: Dict[str, Callable[[], TVSolver]] = {}
_INSTANCES: Dict[str, TVSolver] = {}


def register_solver(name: str, factory: Callable[[], TVSolver]) -> None:
    """Register a backend under ``name`` (replaces an existing one of that name).

    Args:
        name: registry key (case-sensitive, e.g. ``"highs"``).
        factory: zero-argument callable (e.g. the class) returning a :class:`TVSolver`.
    """
    _REGISTRY[name] = factory
    _INSTANCES.pop(name, None)


def registered_solvers() -> List[str]:
    """All registered backend names, usable or not."""
    return sorted(_REGISTRY)


def get_solver(name: str) -> TVSolver:
    """The backend registered as ``name``.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: unknown name (the message lists the available backends).
    """
    if not isinstance(name, str):
        raise TypeError(f"solver: expected a backend name (str), got {type(name).__name__}")
    if name not in _REGISTRY:
        raise ValueError(
            f"solver: unknown LEG-TV backend {name!r}; available: "
            f"{', '.join(available_solvers())} (registered: {', '.join(registered_solvers())})"
        )
    if name not in _INSTANCES:
        _INSTANCES[name] = _REGISTRY[name]()
    return _INSTANCES[name]


def available_solvers() -> List[str]:
    """Names of the backends usable now."""
    out = []
    for name in sorted(_REGISTRY):
        try:
            if get_solver(name).available():
                out.append(name)
        except Exception:  # a broken optional backend must not hide the others
            continue
    return out


# ---------------------------------------------------------------------------------------
# user-facing entry points
# ---------------------------------------------------------------------------------------
def _check_grid_shape(grid_shape: Sequence[int]) -> Tuple[int, int]:
    try:
        k1, k2 = (int(v) for v in grid_shape)
    except (TypeError, ValueError):
        raise TypeError(f"grid_shape must be a pair of ints (k1, k2), got {grid_shape!r}")
    if tuple(grid_shape) != (k1, k2) or k1 < 1 or k2 < 1:
        raise ValueError(f"grid_shape must be two positive ints, got {grid_shape!r}")
    return k1, k2


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


def make_problem(
    moments: ArrayLike,
    grid_shape: Sequence[int],
    noise_levels: ScalarOrSeq,
    lams: ScalarOrSeq,
) -> TVProblem:
    """Validate arguments and build a :class:`TVProblem`.

    Args:
        moments: ``(B, p)`` tensor or array (a 1-D input is one map).
        grid_shape: ``(k1, k2)``.
        noise_levels: scalar or ``(B,)``; every entry ``> 0`` and finite.
        lams: scalar or ``(B,)``; every entry in ``(0, 1)``.

    Returns:
        The problem (moments as a floating tensor on their device; numpy -> CPU tensor).

    Raises:
        TypeError, ValueError: naming the offending argument.
    """
    k1, k2 = _check_grid_shape(grid_shape)
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
    if moments.dim() != 2 or moments.shape[1] != k1 * k2:
        raise ValueError(
            f"moments must have length k1*k2 = {k1 * k2} per map (grid_shape {(k1, k2)}), "
            f"got shape {tuple(moments.shape)}"
        )
    if not bool(torch.isfinite(moments).all()):
        raise ValueError("moments contain NaN or inf")
    B = int(moments.shape[0])
    s = _per_map(noise_levels, B, "noise_level")
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError(f"noise_level must be finite and > 0, got {s.tolist()}")
    lam = _per_map(lams, B, "lam")
    if not bool(torch.isfinite(lam).all()) or bool(((lam <= 0) | (lam >= 1)).any()):
        raise ValueError(f"lam must lie in the open interval (0, 1), got {lam.tolist()}")
    return TVProblem(moments.detach(), (k1, k2), s, lam)


def solve_tv_batch(
    moments: ArrayLike,
    grid_shape: Sequence[int],
    noise_levels: ScalarOrSeq,
    lams: ScalarOrSeq,
    solver: str = "auto",
    **options: Any,
) -> TVSolution:
    """Solve many LEG-TV maps on one grid in one call.

    Args:
        moments: ``(B, p)`` tensor (any device) or numpy array.
        grid_shape: ``(k1, k2)``, ``k1 * k2 == p``.
        noise_levels: noise level(s) ``s``: scalar or ``(B,)``.
        lams: relative level(s) ``lambda`` in ``(0, 1)``: scalar or ``(B,)``.
        solver: backend name (``"auto"``, ``"highs"``, ``"admm"``, ``"clarabel"``,
            ``"mosek"``, or any registered one).
        **options: backend options, e.g. ``time_limit`` (seconds, all backends);
            ``tol``/``max_iter``/``accept_inexact`` for ``"admm"``.

    Returns:
        A :class:`TVSolution`; ``maps`` are on the moments' device in their dtype
        (numpy input: a CPU tensor).

    Raises:
        ValueError, TypeError: invalid arguments or unknown solver.
        SolverError: the backend failed or is unavailable.
    """
    backend = get_solver(solver)
    problem = make_problem(moments, grid_shape, noise_levels, lams)
    return backend.solve(problem, **options)


def solve_tv(
    moment: ArrayLike,
    grid_shape: Sequence[int],
    noise_level: float,
    lam: float,
    solver: str = "auto",
    **options: Any,
) -> ArrayLike:
    """Solve one LEG-TV map.

    Args:
        moment: length ``k1*k2`` tensor or numpy array (any 1-D shape or ``(k1, k2)``).
        grid_shape: ``(k1, k2)``.
        noise_level: ``s > 0``.
        lam: ``lambda`` in ``(0, 1)``.
        solver: backend name, see :func:`solve_tv_batch`.
        **options: backend options.

    Returns:
        The map ``g`` of length ``p``, of the input's kind (tensor or numpy), dtype
        (integer input gives float64) and device.
    """
    is_numpy = isinstance(moment, np.ndarray)
    if not is_numpy and not isinstance(moment, Tensor):
        raise TypeError(f"moment must be a torch.Tensor or numpy.ndarray, got {type(moment).__name__}")
    for name, v in (("noise_level", noise_level), ("lam", lam)):
        if np.ndim(v if not isinstance(v, Tensor) else v.detach().cpu().numpy()) != 0:
            raise TypeError(f"{name} must be a scalar for solve_tv (use solve_tv_batch for many maps)")
    flat = moment.reshape(1, -1)
    sol = solve_tv_batch(flat, grid_shape, noise_level, lam, solver=solver, **options)
    g = sol.maps[0]
    if is_numpy:
        out = g.cpu().numpy()
        return out.astype(moment.dtype) if np.issubdtype(moment.dtype, np.floating) else out
    return g
