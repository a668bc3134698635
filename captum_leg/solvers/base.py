"""The LEG-TV problem, the typed solver contract and the backend registry.

The problem for one map (``docs/method.md``, LEG-TV), on a grid of any number of axes
``(k_1, ..., k_d)`` with ``p`` cells, ``D`` the first differences along every axis
(anisotropic TV)::

    minimise  ||D g||_1   s.t.   ||D^{+T} (Sigma g - m)||_inf <= lam ||D^{+T} m||_inf

With ``Sigma = s^2 (L + 1 1^T / p)`` and ``D^{+T} = D L^{-1}`` the constraint reads
``s^2 |A g - b| <= lam s^2 ||b||_inf`` where ``A = D + c 1^T / p``, ``c = D L^{-1} 1`` and
``b = D L^{-1} m / s^2``. Backends solve the *scaled* problem (O(1) data, well
conditioned)::

    minimise  ||D h||_1   s.t.   |A h - b~| <= lam,     b~ = b / beta,  beta = ||b||_inf

and the map is ``g = beta h`` (the objective scales by ``beta``; the constraint is
homogeneous in ``(g, b)``). ``m = 0`` gives ``beta = 0`` and ``g = 0`` without a solve.

The contract (:class:`TVSolver`):

* every backend implements :meth:`TVSolver.solve_scaled`, returning a
  :class:`ScaledResult`; :meth:`TVSolver.solve` (not overridden) validates the common
  options, answers ``m = 0`` rows, unscales and measures the maps;
* **certificates**: every map returned is feasible (violation at rounding level) and has a
  certified relative duality gap ``(UB - LB) / UB <= tol`` (default ``1e-4``), where
  ``UB = ||D g||_1`` of the returned map and ``LB`` comes from a dual-feasible point
  (:mod:`captum_leg.solvers.operators`); otherwise :class:`SolverError` is raised, or,
  with ``accept_inexact=True``, the best feasible map is returned with status
  ``"inexact"`` and its (larger) certified gap;
* ``time_limit`` is wall-clock seconds for the **whole call** (all maps of the batch),
  for every backend;
* availability is probed once per backend instance (:meth:`TVSolver.unavailable_reason`).

``"auto"`` is not a backend but a chooser (:mod:`captum_leg.solvers.auto`):
:func:`solve_tv_batch` resolves it to a backend name for the problem at hand.
"""

from __future__ import annotations

import abc
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from captum_leg.grid import Grid, as_grid_shape, get_grid
from captum_leg.solvers.operators import LPOperators, certify

ArrayLike = Union[Tensor, np.ndarray]
ScalarOrSeq = Union[float, Sequence[float], np.ndarray, Tensor]
GridShape = Tuple[int, ...]


class SolverError(RuntimeError):
    """A LEG-TV solve failed (infeasible, limit reached, licence or backend missing).

    Raised instead of ever returning a map that is not certified to the requested gap
    (unless the caller passed ``accept_inexact=True``).
    """


# ---------------------------------------------------------------------------------------
# problem and solution types
# ---------------------------------------------------------------------------------------
@dataclass
class ScaledProblem:
    """The scaled LP data of the rows that need a solve (all on the working device/dtype).

    Attributes:
        grid: the grid (its operators), in the working device and dtype.
        b: ``(B, M)`` scaled right-hand sides ``b~`` (``||b~||_inf = 1``).
        lams: ``(B,)`` levels ``lam``.
    """

    grid: Grid
    b: Tensor
    lams: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.b.shape[0])


@dataclass
class TVProblem:
    """A batch of LEG-TV problems sharing one grid.

    Attributes:
        moments: ``(B, p)`` moment vectors ``m`` (row-major grid cells).
        grid_shape: ``(k_1, ..., k_d)`` with ``prod(grid_shape) == p`` (any ``d >= 1``).
        noise_levels: ``(B,)`` noise levels ``s > 0`` (float64, CPU).
        lams: ``(B,)`` relative constraint levels in ``(0, 1)`` (float64, CPU).
    """

    moments: Tensor
    grid_shape: GridShape
    noise_levels: Tensor
    lams: Tensor

    @property
    def batch_size(self) -> int:
        return int(self.moments.shape[0])

    @property
    def p(self) -> int:
        return math.prod(self.grid_shape)

    def grid(self, dtype: torch.dtype = torch.float64, device: Any = None) -> Grid:
        """The cached :class:`Grid` (default: float64 on the moments' device)."""
        dev = self.moments.device if device is None else device
        return get_grid(self.grid_shape, dev, dtype)

    def scaled(
        self, dtype: torch.dtype = torch.float64, device: Any = None
    ) -> Tuple[ScaledProblem, Tensor]:
        """Data of the scaled problem for every row.

        Args:
            dtype: working precision.
            device: working device (default: the moments' device).

        Returns:
            ``(scaled, beta (B,))``; rows with ``beta == 0`` (``m = 0``) have ``b~ == 0``
            and are answered with ``g = 0``.
        """
        grid = self.grid(dtype, device)
        m = self.moments.to(device=grid.device, dtype=dtype)
        s2 = self.noise_levels.to(device=grid.device, dtype=dtype) ** 2
        b = grid.pinv_t(grid.unflat(m)) / s2[:, None]
        beta = b.abs().amax(-1)
        b_tilde = b / torch.where(beta > 0, beta, torch.ones_like(beta))[:, None]
        lams = self.lams.to(device=grid.device, dtype=dtype)
        return ScaledProblem(grid, b_tilde, lams), beta


@dataclass
class ScaledResult:
    """What a backend returns for the rows of a :class:`ScaledProblem`.

    Attributes:
        h: ``(B, p)`` feasible scaled maps (any device/dtype).
        rel_gap: ``(B,)`` certified relative duality gaps.
        status: per-map ``"optimal"`` (gap within ``tol``) or ``"inexact"``.
        iterations: per-map iteration counts (backend-specific meaning).
        info: free-form backend details.
    """

    h: Tensor
    rel_gap: Tensor
    status: List[str]
    iterations: List[int]
    info: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TVSolution:
    """Solutions of a :class:`TVProblem`.

    Attributes:
        maps: ``(B, p)`` LEG-TV maps ``g`` (device/dtype of the moments).
        objective: ``(B,)`` ``||D g||_1`` (float64, CPU).
        max_violation: ``(B,)`` relative constraint violation
            ``max(0, ||D^{+T}(Sigma g - m)||_inf - lam ||D^{+T} m||_inf) / ||D^{+T} m||_inf``
            measured in float64 on the returned maps.
        rel_gap: ``(B,)`` certified relative duality gap (0 for ``m = 0`` rows).
        backend: name of the backend that produced the maps.
        status: per-map ``"optimal"``, ``"inexact"`` or ``"zero moment"``.
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


@dataclass(frozen=True)
class SolveOptions:
    """Options every backend accepts (validated by :meth:`TVSolver.solve`).

    Attributes:
        tol: certified relative duality gap every returned map must reach, in (0, 1).
        time_limit: wall-clock seconds for the whole call (all maps), or ``None``.
        accept_inexact: on a limit, return the best feasible maps (status
            ``"inexact"``, their certified gap) instead of raising :class:`SolverError`.
        verbose: print the backend's progress/log.
    """

    tol: float = 1e-4
    time_limit: Optional[float] = None
    accept_inexact: bool = False
    verbose: bool = False

    @classmethod
    def split(cls, options: Dict[str, Any]) -> Tuple["SolveOptions", Dict[str, Any]]:
        """Validate the common options and return the rest (backend-specific)."""
        rest = dict(options)
        tol = rest.pop("tol", 1e-4)
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (0 < float(tol) < 1):
            raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
        limit = rest.pop("time_limit", None)
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, numbers.Real) or not (float(limit) > 0)
        ):
            raise ValueError(f"time_limit must be a number of seconds > 0 or None, got {limit!r}")
        flags = {}
        for name in ("accept_inexact", "verbose"):
            value = rest.pop(name, False)
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {value!r}")
            flags[name] = bool(value)
        opts = cls(float(tol), None if limit is None else float(limit), **flags)
        return opts, rest


class Deadline:
    """Wall-clock budget of one call (``time_limit`` seconds from construction)."""

    def __init__(self, time_limit: Optional[float]):
        self.limit = time_limit
        self.start = time.perf_counter()

    def remaining(self) -> Optional[float]:
        if self.limit is None:
            return None
        return self.limit - (time.perf_counter() - self.start)

    def expired(self) -> bool:
        rem = self.remaining()
        return rem is not None and rem <= 0


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
    g = grid.unflat(maps.to(device=grid.device, dtype=torch.float64).reshape(problem.batch_size, -1))
    m = grid.unflat(problem.moments.to(device=grid.device, dtype=torch.float64))
    s2 = problem.noise_levels.to(device=grid.device, dtype=torch.float64) ** 2
    lams = problem.lams.to(device=grid.device, dtype=torch.float64)
    dg = grid.diff(g)
    # D^{+T} Sigma g = s^2 (D g + c 1^T g / p)
    sigma_g = s2[:, None] * (dg + grid.c * grid.total(g)[:, None] / grid.p)
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
    rel_gap: Tensor,
    info: Optional[Dict[str, Any]] = None,
) -> TVSolution:
    """Unscale ``g = beta h``, cast to the moments' dtype/device and measure it."""
    h = h.to(device=beta.device, dtype=beta.dtype).reshape(problem.batch_size, -1)
    g = (beta[:, None] * h).to(device=problem.moments.device, dtype=problem.moments.dtype)
    obj, viol = evaluate_maps(problem, g)
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
# solver contract and registry
# ---------------------------------------------------------------------------------------
class TVSolver(abc.ABC):
    """Abstract LEG-TV backend.

    Subclasses set :attr:`name`, implement :meth:`solve_scaled`, and override
    :meth:`probe` when they depend on optional software. :meth:`solve` is the common
    driver and is not meant to be overridden.
    """

    name: ClassVar[str] = "base"

    def __init__(self) -> None:
        self._reason: Optional[str] = None
        self._probed = False

    # availability --------------------------------------------------------------------
    def probe(self) -> Optional[str]:
        """``None`` when the backend can run here, else why not (called once)."""
        return None

    def unavailable_reason(self, refresh: bool = False) -> Optional[str]:
        """``None`` when usable, else a human-readable reason (probed once and cached).

        Args:
            refresh: probe again (e.g. after installing a package or a licence).
        """
        if refresh or not self._probed:
            try:
                self._reason = self.probe()
            except Exception as exc:  # a broken optional backend must not break others
                self._reason = f"probing failed: {exc!r}"
            self._probed = True
        return self._reason

    def available(self) -> bool:
        """Whether the backend can be used here."""
        return self.unavailable_reason() is None

    # hooks ---------------------------------------------------------------------------
    def working_dtype(self, extra: Dict[str, Any]) -> torch.dtype:
        return torch.float64

    def working_device(self, problem: TVProblem) -> torch.device:
        return torch.device("cpu")

    @abc.abstractmethod
    def solve_scaled(
        self, scaled: ScaledProblem, opts: SolveOptions, deadline: Deadline, **extra: Any
    ) -> ScaledResult:
        """Solve ``min ||D h||_1 s.t. |A h - b~| <= lam`` for every row of ``scaled``.

        Args:
            scaled: the rows with ``m != 0``.
            opts: the validated common options.
            deadline: the call's wall-clock budget (``opts.time_limit``).
            **extra: backend-specific options; unknown names must raise ``TypeError``.

        Returns:
            Certified feasible maps (see the module docstring). Raises
            :class:`SolverError` when a map misses ``opts.tol`` and not
            ``opts.accept_inexact``.
        """

    # driver --------------------------------------------------------------------------
    def solve(self, problem: TVProblem, **options: Any) -> TVSolution:
        """Solve a batch of problems.

        Args:
            problem: the batch.
            **options: :class:`SolveOptions` fields plus the backend's own options.

        Returns:
            The :class:`TVSolution`.

        Raises:
            SolverError: backend unavailable or a map not certified to ``tol``.
            TypeError, ValueError: invalid options.
        """
        opts, extra = SolveOptions.split(options)
        reason = self.unavailable_reason()
        if reason is not None:
            raise SolverError(
                f"LEG-TV backend {self.name!r} is unavailable: {reason}. "
                f"Available backends: {', '.join(available_solvers()) or 'none'}."
            )
        deadline = Deadline(opts.time_limit)
        scaled, beta = problem.scaled(self.working_dtype(extra), self.working_device(problem))
        nz = (beta > 0).nonzero().flatten()
        B = problem.batch_size
        h = torch.zeros(B, problem.p, dtype=scaled.b.dtype, device=scaled.b.device)
        status = ["zero moment"] * B
        iters = [0] * B
        gap = torch.zeros(B, dtype=torch.float64)
        info: Dict[str, Any] = {}
        if nz.numel():
            sub = ScaledProblem(scaled.grid, scaled.b[nz], scaled.lams[nz])
            res = self.solve_scaled(sub, opts, deadline, **extra)
            h[nz] = res.h.to(h).reshape(len(nz), -1)
            nz_list = nz.tolist()
            for j, i in enumerate(nz_list):
                status[i] = res.status[j]
                iters[i] = int(res.iterations[j])
            gap[nz.cpu()] = res.rel_gap.detach().to("cpu", torch.float64)
            info = res.info
        return finish_solution(
            problem, h, beta, self.name, status, iters,
            time.perf_counter() - deadline.start, gap, info,
        )


def check_extra(backend: str, extra: Dict[str, Any], allowed: Sequence[str]) -> None:
    """``TypeError`` naming any option the backend does not know."""
    unknown = sorted(set(extra) - set(allowed))
    if unknown:
        known = ", ".join(sorted(set(allowed) | set(SolveOptions.__dataclass_fields__)))
        raise TypeError(
            f"LEG-TV backend {backend!r}: unknown option(s) {', '.join(unknown)}; "
            f"it accepts {known}"
        )


def finish_certified(
    backend: str,
    h: Tensor,
    gap: Tensor,
    iterations: List[int],
    opts: SolveOptions,
    info: Dict[str, Any],
    why: str = "",
) -> ScaledResult:
    """Statuses from certified gaps; ``SolverError`` for a miss unless inexact is accepted."""
    gap = gap.detach().to("cpu", torch.float64)
    ok = gap <= opts.tol
    if not bool(ok.all()) and not opts.accept_inexact:
        bad = (~ok).nonzero().flatten().tolist()
        raise SolverError(
            f"LEG-TV backend {backend!r}: {why + ': ' if why else ''}{len(bad)} of "
            f"{len(ok)} maps above the requested gap {opts.tol:g} (worst certified gap "
            f"{float(gap.max()):.3g}, maps {bad[:8]}{'...' if len(bad) > 8 else ''}); raise "
            "the limits or pass accept_inexact=True"
        )
    status = ["optimal" if bool(o) else "inexact" for o in ok]
    return ScaledResult(h, gap, status, list(iterations), info)


def certify_lp_result(
    backend: str,
    scaled: ScaledProblem,
    h: np.ndarray,
    z: np.ndarray,
    w: np.ndarray,
    solved: np.ndarray,
    iters: List[int],
    opts: SolveOptions,
    info: Dict[str, Any],
    why: str,
) -> ScaledResult:
    """Certify the maps an LP backend solved; unsolved ones fall back to the LEG map.

    The LEG map is feasible for every ``lam``, so an unsolved map (time limit) is
    returned as LEG with the trivial bound ``LB = 0`` (gap 1) when inexact results are
    accepted; :func:`finish_certified` raises otherwise.
    """
    grid = get_grid(scaled.grid.shape, "cpu", torch.float64)
    ops = LPOperators(grid)
    b = scaled.b.detach().to("cpu", torch.float64)
    t = scaled.lams.detach().to("cpu", torch.float64)
    hh = grid.unflat(torch.from_numpy(h))
    zt, wt = torch.from_numpy(z), torch.from_numpy(w)
    h_leg = ops.leg(b)
    done = torch.from_numpy(solved)
    hh = torch.where(done.reshape(-1, *([1] * grid.ndim)), hh, h_leg)
    h_feas, _, gap = certify(ops, b, t, hh, zt, wt)
    gap = torch.where(done, gap, torch.ones_like(gap))
    return finish_certified(backend, h_feas.reshape(len(b), -1), gap, iters, opts, info, why)


class SolverChoice:
    """A registry entry that picks a backend per problem (e.g. ``"auto"``).

    It is not a backend: :func:`solve_tv_batch` asks :attr:`choose` for a backend name
    and runs that backend. It is available when any backend is.
    """

    def __init__(self, name: str, choose: Callable[[TVProblem], str], doc: str = ""):
        self.name = name
        self.choose = choose
        self.__doc__ = doc or choose.__doc__

    def unavailable_reason(self, refresh: bool = False) -> Optional[str]:
        return None if available_solvers() else "no LEG-TV backend is available"

    def available(self) -> bool:
        return self.unavailable_reason() is None


Entry = Union[TVSolver, SolverChoice]
_FACTORIES: Dict[str, Callable[[], Entry]] = {}
_INSTANCES: Dict[str, Entry] = {}


def register_solver(name: str, factory: Callable[[], Entry]) -> None:
    """Register a backend (or a :class:`SolverChoice`) under ``name``.

    Args:
        name: registry key (case-sensitive, e.g. ``"highs"``); replaces an existing one.
        factory: zero-argument callable (e.g. the class) returning the entry.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    _FACTORIES[name] = factory
    _INSTANCES.pop(name, None)


def registered_solvers() -> List[str]:
    """All registered names, usable or not."""
    return sorted(_FACTORIES)


def _lookup(name: str) -> Entry:
    if name not in _INSTANCES:
        _INSTANCES[name] = _FACTORIES[name]()
    return _INSTANCES[name]


def get_solver(name: str) -> Entry:
    """The backend (or chooser) registered as ``name``.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: unknown name (the message lists the available backends).
    """
    if not isinstance(name, str):
        raise TypeError(f"solver: expected a backend name (str), got {type(name).__name__}")
    if name not in _FACTORIES:
        raise ValueError(
            f"solver: unknown LEG-TV backend {name!r}; available: "
            f"{', '.join(available_solvers())} (registered: {', '.join(registered_solvers())})"
        )
    return _lookup(name)


def available_solvers() -> List[str]:
    """Names usable here (backends whose probe passed, and choosers)."""
    backends, choosers = [], []
    for name in sorted(_FACTORIES):
        entry = _lookup(name)
        if isinstance(entry, SolverChoice):
            choosers.append(name)
        elif entry.available():
            backends.append(name)
    return sorted(backends + (choosers if backends else []))


def resolve_backend(name: str, problem: TVProblem) -> TVSolver:
    """The backend that will solve ``problem`` under the registry name ``name``."""
    entry = get_solver(name)
    while isinstance(entry, SolverChoice):
        entry = get_solver(entry.choose(problem))
    return entry


# ---------------------------------------------------------------------------------------
# user-facing entry points
# ---------------------------------------------------------------------------------------
def _check_grid_shape(grid_shape: Any) -> GridShape:
    bad = TypeError(f"grid_shape must be an int or a tuple of ints, got {grid_shape!r}")
    if isinstance(grid_shape, (str, bytes, bool)):
        raise bad
    items = grid_shape if isinstance(grid_shape, (tuple, list)) else [grid_shape]
    if not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in items):
        if not isinstance(grid_shape, (tuple, list, numbers.Integral)):
            try:  # other sequences of ints (numpy arrays, torch.Size)
                items = list(grid_shape)
            except TypeError:
                raise bad from None
        if not all(isinstance(k, numbers.Integral) and not isinstance(k, bool) for k in items):
            raise bad
    try:
        return as_grid_shape(grid_shape)
    except TypeError:
        raise TypeError(f"grid_shape must be an int or a tuple of ints, got {grid_shape!r}") from None
    except ValueError:
        raise ValueError(f"grid_shape must hold one or more positive ints, got {grid_shape!r}") from None


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
    grid_shape: Union[int, Sequence[int]],
    noise_levels: ScalarOrSeq,
    lams: ScalarOrSeq,
) -> TVProblem:
    """Validate arguments and build a :class:`TVProblem`.

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
    shape = _check_grid_shape(grid_shape)
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
    B = int(moments.shape[0])
    s = _per_map(noise_levels, B, "noise_level")
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError(f"noise_level must be finite and > 0, got {s.tolist()}")
    lam = _per_map(lams, B, "lam")
    if not bool(torch.isfinite(lam).all()) or bool(((lam <= 0) | (lam >= 1)).any()):
        raise ValueError(f"lam must lie in the open interval (0, 1), got {lam.tolist()}")
    return TVProblem(moments.detach(), shape, s, lam)


def solve_tv_batch(
    moments: ArrayLike,
    grid_shape: Union[int, Sequence[int]],
    noise_levels: ScalarOrSeq,
    lams: ScalarOrSeq,
    solver: str = "auto",
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
        A :class:`TVSolution`; ``maps`` are on the moments' device in their dtype
        (numpy input: a CPU tensor).

    Raises:
        ValueError, TypeError: invalid arguments, options or unknown solver.
        SolverError: the backend failed, is unavailable, or missed ``tol``.
    """
    get_solver(solver)  # name errors before argument errors
    problem = make_problem(moments, grid_shape, noise_levels, lams)
    return resolve_backend(solver, problem).solve(problem, **options)


def solve_tv(
    moment: ArrayLike,
    grid_shape: Union[int, Sequence[int]],
    noise_level: float,
    lam: float,
    solver: str = "auto",
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
