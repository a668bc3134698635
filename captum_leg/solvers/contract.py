"""The backend contract: what a backend declares and returns, and the driver that certifies.

A backend (:class:`TVSolver` subclass) declares

* :attr:`~TVSolver.name`, its :attr:`~TVSolver.options` (:class:`OptionSpec` entries)
  and, for engines reached through a modelling layer, the names it forwards unchanged
  (:meth:`~TVSolver.engine_options`);
* its :class:`Capabilities` (devices, grid sizes ``auto`` prefers it for, priority);
* :meth:`~TVSolver.probe`: why it cannot run here (optional software, licence), if so;

and implements :meth:`~TVSolver.solve_scaled`, which returns primal maps and dual points
(:class:`~captum_leg.solvers.ScaledResult`). The driver :meth:`TVSolver.solve` (not
overridden) checks availability and options, scales the problem, answers ``m = 0`` rows,
calls the backend, **certifies** its answer
(:func:`~captum_leg.solvers.certification.certify_result`: feasibility, duality gap,
``tol`` and ``accept_inexact``) and unscales the maps. A backend therefore cannot return
an uncertified map. ``time_limit`` is wall-clock seconds for the whole call; backends read
it from the :class:`Deadline` they are given.

Backends that solve maps one at a time with an external engine derive from
:class:`~captum_leg.solvers.per_map.PerMapSolver`, which runs the deadline loop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, FrozenSet, Optional, Tuple

import torch

from captum_leg.solvers.certification import ScaledResult, certify_result
from captum_leg.solvers.options import (
    Deadline,
    OptionSpec,
    SolveOptions,
    check_options,
    option_values,
)
from captum_leg.solvers.problem import ScaledProblem, SolverError, TVProblem, TVSolution, unscale


@dataclass(frozen=True)
class Capabilities:
    """What a backend declares about where and when it fits (read by ``auto``).

    Attributes:
        devices: device types (``torch.device.type``) the backend computes on, e.g.
            ``("cpu",)``; ``None``: any device (it computes where the moments are).
        preferred_cells: ``(lo, hi)``: ``auto`` prefers the backend for grids of
            ``lo <= p < hi`` cells (``hi`` ``None``: no upper end); ``None``: no size
            where it is preferred.
        priority: order among backends that fit a problem equally well (higher first).
    """

    devices: Optional[Tuple[str, ...]] = ("cpu",)
    preferred_cells: Optional[Tuple[int, Optional[int]]] = None
    priority: int = 0

    def runs_on(self, device_type: str) -> bool:
        """Whether the backend computes on devices of this type."""
        return self.devices is None or device_type in self.devices

    def prefers(self, cells: int) -> bool:
        """Whether ``auto`` prefers the backend for a grid of ``cells`` cells."""
        if self.preferred_cells is None:
            return False
        lo, hi = self.preferred_cells
        return lo <= cells and (hi is None or cells < hi)


class TVSolver(abc.ABC):
    """Abstract LEG-TV backend (see the module docstring for the contract).

    Subclasses set :attr:`name`, :attr:`options`, :attr:`capabilities`, implement
    :meth:`solve_scaled`, and override :meth:`probe` when they depend on optional
    software. :meth:`solve` is the driver and is not meant to be overridden.
    """

    name: ClassVar[str] = "base"
    #: the backend's own options (besides :class:`SolveOptions`)
    options: ClassVar[Tuple[OptionSpec, ...]] = ()
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self) -> None:
        self._reason: Optional[str] = None
        self._probed = False

    # declarations ----------------------------------------------------------------------
    def probe(self) -> Optional[str]:
        """``None`` when the backend can run here, else why not (called once)."""
        return None

    def engine_options(self) -> FrozenSet[str]:
        """Option names forwarded unchanged to an external engine (default: none)."""
        return frozenset()

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

    def option_values(self, given: Dict[str, Any]) -> Dict[str, Any]:
        """Every declared option: ``given`` or its default (see :func:`option_values`)."""
        return option_values(given, self.options)

    # hooks -----------------------------------------------------------------------------
    def working_dtype(self, options: Dict[str, Any]) -> torch.dtype:
        """The precision the backend works in (default float64)."""
        return torch.float64

    def working_device(self, problem: TVProblem) -> torch.device:
        """Where the backend works: the moments' device if it computes there, else its first."""
        devices = self.capabilities.devices
        if devices is None or problem.device.type in devices:
            return problem.device
        return torch.device(devices[0])

    @abc.abstractmethod
    def solve_scaled(
        self, scaled: ScaledProblem, opts: SolveOptions, deadline: Deadline, **options: Any
    ) -> ScaledResult:
        """Primal maps and dual points for the scaled problems of ``scaled``.

        Args:
            scaled: the :class:`~captum_leg.solvers.ScaledProblem` rows with ``m != 0``.
            opts: the validated common options (``opts.tol`` is the driver's target).
            deadline: the call's wall-clock budget (``opts.time_limit``).
            **options: the backend's options the caller passed, checked against its
                declaration (defaults: :meth:`option_values`).

        Returns:
            The answer for the driver to certify (:class:`ScaledResult`). Raise
            :class:`~captum_leg.solvers.SolverError` when the engine fails.
        """

    # driver ----------------------------------------------------------------------------
    def solve(self, problem: TVProblem, **options: Any) -> TVSolution:
        """Solve a batch of problems and certify every map.

        Args:
            problem: the batch.
            **options: :class:`SolveOptions` fields plus the backend's own options.

        Returns:
            The :class:`~captum_leg.solvers.TVSolution`.

        Raises:
            SolverError: backend unavailable or a map not certified to ``tol``.
            TypeError, ValueError: invalid options (:class:`UnknownOptionError` for
                names the backend does not declare).
        """
        opts, given = SolveOptions.split(options)
        self._require_available()
        own = check_options(self.name, given, self.options, self.engine_options())
        deadline = Deadline(opts.time_limit)
        scaled, beta = problem.scaled(self.working_dtype(own), self.working_device(problem))
        B = problem.batch_size
        h = torch.zeros(B, problem.p, dtype=scaled.b.dtype, device=scaled.b.device)
        status, iters = ["zero moment"] * B, [0] * B
        gap = torch.zeros(B, dtype=torch.float64)
        info: Dict[str, Any] = {}
        nz = (beta > 0).nonzero().flatten()
        if nz.numel():
            sub = scaled.rows(nz)
            result = self.solve_scaled(sub, opts, deadline, **own)
            cert = certify_result(self.name, sub, result, opts.tol, opts.accept_inexact)
            h[nz] = cert.h.to(h)
            gap[nz.cpu()] = cert.rel_gap
            for j, i in enumerate(nz.tolist()):
                status[i], iters[i] = cert.status[j], int(result.iterations[j])
            info = dict(result.info)
            if result.reported_gap is not None:
                reported = torch.full((B,), float("nan"), dtype=torch.float64)
                reported[nz.cpu()] = result.reported_gap.detach().to("cpu", torch.float64)
                info["reported_gap"] = reported.tolist()
        return unscale(problem, h, beta, self.name, status, iters, deadline.elapsed(), gap, info)

    def _require_available(self) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            # imported here: the registry holds backends, so it imports this module
            from captum_leg.solvers.registry import available_solvers

            raise SolverError(
                f"LEG-TV backend {self.name!r} is unavailable: {reason}. "
                f"Available backends: {', '.join(available_solvers()) or 'none'}."
            )
