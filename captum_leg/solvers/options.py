"""Solver options: the common ones, a backend's declared ones, and the call's deadline.

Every backend accepts the options of :class:`SolveOptions`. A backend declares its own
as :class:`OptionSpec` entries (name, default, validator) and may forward further names
unchanged to an external engine (:meth:`~captum_leg.solvers.TVSolver.engine_options`);
the driver checks every option a caller passes against that declaration with
:func:`check_options` before the backend runs. The validators below are the ones the
built-in backends use; each raises an error naming the option.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Collection, Dict, Iterable, Mapping, Optional, Tuple, Type

import numpy as np

#: A validator: ``check(option_name, value)`` returns the (normalised) value or raises
#: ``TypeError``/``ValueError`` naming the option.
Validator = Callable[[str, Any], Any]


class UnknownOptionError(TypeError, ValueError):
    """An option the backend does not declare.

    Both a ``ValueError`` (a bad option value for ``solve_tv``'s ``**options``) and a
    ``TypeError`` (what Python raises for an unexpected keyword argument), so callers
    catching either see it.
    """


@dataclass(frozen=True)
class SolveOptions:
    """Options every backend accepts (validated by the driver, :meth:`TVSolver.solve`).

    Attributes:
        tol: certified relative duality gap every returned map must reach, in (0, 1).
        time_limit: wall-clock seconds for the whole call (all maps), or ``None``.
        accept_inexact: when a map misses ``tol``, return the best feasible map (status
            ``"inexact"``, the gap the driver certified for it) instead of raising
            :class:`~captum_leg.solvers.SolverError`.
        verbose: print the backend's progress/log.
    """

    tol: float = 1e-4
    time_limit: Optional[float] = None
    accept_inexact: bool = False
    verbose: bool = False

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        """The names of the common options."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def split(cls, options: Mapping[str, Any]) -> Tuple["SolveOptions", Dict[str, Any]]:
        """Validate the common options and return the rest (backend-specific)."""
        rest = dict(options)
        tol = rest.pop("tol", cls.tol)
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not (0 < float(tol) < 1):
            raise ValueError(f"tol must be a number in (0, 1), got {tol!r}")
        limit = rest.pop("time_limit", cls.time_limit)
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


@dataclass(frozen=True)
class OptionSpec:
    """One option a backend declares.

    Attributes:
        name: the keyword.
        default: its value when the caller does not pass it.
        check: validator ``check(name, value) -> value`` (see :func:`positive_int`, ...).
        doc: one line for error messages and documentation.
    """

    name: str
    default: Any
    check: Validator
    doc: str = ""


def check_options(
    backend: str,
    given: Mapping[str, Any],
    specs: Iterable[OptionSpec],
    engine: Collection[str] = (),
) -> Dict[str, Any]:
    """Check a call's backend options against what the backend declares.

    Args:
        backend: the backend's name (for messages).
        given: the options the caller passed, without the common ones.
        specs: the backend's declared options (validated here).
        engine: names forwarded unchanged to the backend's engine (not validated here).

    Returns:
        The given options, declared ones validated and normalised (defaults not filled:
        see :func:`option_values`).

    Raises:
        UnknownOptionError: an option neither declared nor forwarded; the message names it
            and lists the accepted ones.
        TypeError, ValueError: a declared option with an invalid value.
    """
    by_name = {spec.name: spec for spec in specs}
    unknown = sorted(set(given) - set(by_name) - set(engine))
    if unknown:
        accepted = sorted(set(by_name) | set(engine) | set(SolveOptions.names()))
        raise UnknownOptionError(
            f"LEG-TV backend {backend!r}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; it accepts {', '.join(accepted)}"
        )
    return {
        name: by_name[name].check(name, value) if name in by_name else value
        for name, value in given.items()
    }


def option_values(given: Mapping[str, Any], specs: Iterable[OptionSpec]) -> Dict[str, Any]:
    """Every declared option: the given value or the declared default (forwarded names kept)."""
    values = {spec.name: spec.default for spec in specs}
    values.update(given)
    return values


# ---------------------------------------------------------------------------------------
# validators
# ---------------------------------------------------------------------------------------
def positive_int(name: str, value: Any) -> int:
    """An integer ``>= 1`` (``ValueError`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def positive_number(name: str, value: Any) -> float:
    """A finite real number ``> 0`` (``ValueError`` otherwise)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (math.isfinite(float(value)) and float(value) > 0)
    ):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return float(value)


def one_of(*choices: Any, error: Type[Exception] = ValueError) -> Validator:
    """A validator accepting exactly ``choices`` (raising ``error`` otherwise)."""

    def check(name: str, value: Any) -> Any:
        if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
            raise error(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    return check


class Deadline:
    """Wall-clock budget of one call (``time_limit`` seconds from construction)."""

    def __init__(self, time_limit: Optional[float]):
        self.limit = time_limit
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the call started."""
        return time.perf_counter() - self.start

    def remaining(self) -> Optional[float]:
        """Seconds left (negative once past), or ``None`` without a limit."""
        if self.limit is None:
            return None
        return self.limit - self.elapsed()

    def expired(self) -> bool:
        rem = self.remaining()
        return rem is not None and rem <= 0

    def reason(self) -> str:
        """The message for a call stopped by this deadline."""
        return f"time limit {self.limit:g} s reached" if self.limit is not None else ""
