"""The registry of LEG-TV backends: an explicit table of lazy entries.

:data:`BUILTIN_SOLVERS` names every built-in entry and where it lives; nothing registers
itself on import, and a backend's module is imported the first time its entry is used.
:func:`register_solver` adds or replaces entries (plugins, tests). Each entry is
instantiated once, and each backend probes its availability once
(:meth:`~captum_leg.solvers.TVSolver.unavailable_reason`), so :func:`available_solvers`
is computed from cached probes.

An entry is a backend (:class:`~captum_leg.solvers.TVSolver`), a chooser
(:class:`SolverChoice`, e.g. ``"auto"``) or an alias (``"admm"`` for ``"torch"``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Union

from captum_leg.solvers.contract import TVSolver
from captum_leg.solvers.problem import TVProblem


class SolverChoice:
    """A registry entry that picks a backend per problem (e.g. ``"auto"``).

    It is not a backend: :func:`resolve_backend` asks :attr:`choose` for a backend name
    and runs that backend. It is available when any backend is.
    """

    def __init__(self, name: str, choose: Callable[[TVProblem], str], doc: str = ""):
        self.name = name
        self.choose = choose
        self.__doc__ = doc or choose.__doc__

    def unavailable_reason(self, refresh: bool = False) -> Optional[str]:
        return None if available_backends() else "no LEG-TV backend is available"

    def available(self) -> bool:
        return self.unavailable_reason() is None


Entry = Union[TVSolver, SolverChoice]
Factory = Callable[[], Entry]


@dataclass(frozen=True)
class Lazy:
    """A factory imported on first use: ``module.attr()``."""

    module: str
    attr: str

    def __call__(self) -> Entry:
        entry: Entry = getattr(importlib.import_module(self.module), self.attr)()
        return entry


@dataclass(frozen=True)
class Alias:
    """Another name for the entry ``target`` (the same instance)."""

    target: str


#: The built-in entries: name -> where it is defined (imported on first use) or an alias.
BUILTIN_SOLVERS: Dict[str, Union[Lazy, Alias]] = {
    "torch": Lazy("captum_leg.solvers.pdhg", "TorchPdhgSolver"),
    # "admm" named an earlier torch backend (plain ADMM: slower at every grid measured and
    # short of a 1e-4 certificate at 112 x 112); kept as an alias
    "admm": Alias("torch"),
    "highs": Lazy("captum_leg.solvers.highs", "HighsSolver"),
    "clarabel": Lazy("captum_leg.solvers.clarabel", "ClarabelSolver"),
    "mosek": Lazy("captum_leg.solvers.mosek", "MosekSolver"),
    "auto": Lazy("captum_leg.solvers.auto", "auto_choice"),
}

#: The entry used when no backend is named (``attribute``'s default, via
#: :data:`captum_leg.settings.DEFAULT_SOLVER`, and :func:`~captum_leg.solvers.solve_tv`'s).
DEFAULT_SOLVER = "auto"

_table: Dict[str, Union[Factory, Alias]] = dict(BUILTIN_SOLVERS)
_instances: Dict[str, Entry] = {}


def register_solver(name: str, factory: Factory) -> None:
    """Register a backend (or a :class:`SolverChoice`) under ``name``.

    Args:
        name: registry key (case-sensitive, e.g. ``"highs"``); replaces an existing one.
        factory: zero-argument callable (e.g. the class) returning the entry.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {factory!r}")
    _table[name] = factory
    _instances.pop(name, None)


def unregister_solver(name: str) -> None:
    """Remove a registered name; a built-in name reverts to its built-in entry.

    Raises:
        ValueError: ``name`` is not registered.
    """
    if name not in _table:
        raise ValueError(f"no LEG-TV backend is registered as {name!r}")
    if name in BUILTIN_SOLVERS:
        _table[name] = BUILTIN_SOLVERS[name]
    else:
        del _table[name]
    _instances.pop(name, None)


def registered_solvers() -> List[str]:
    """All registered names, usable or not."""
    return sorted(_table)


def _lookup(name: str) -> Entry:
    target = _table[name]
    if isinstance(target, Alias):
        return _lookup(target.target)
    if name not in _instances:
        _instances[name] = target()
    return _instances[name]


def get_solver(name: str) -> Entry:
    """The backend (or chooser) registered as ``name``.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: unknown name (the message lists the available backends).
    """
    if not isinstance(name, str):
        raise TypeError(f"expected a LEG-TV backend name (str), got {type(name).__name__}")
    if name not in _table:
        unusable = sorted(set(registered_solvers()) - set(available_solvers()))
        raise ValueError(
            f"unknown LEG-TV backend {name!r}; available: {', '.join(available_solvers()) or 'none'}"
            + (f" (registered, not usable here: {', '.join(unusable)})" if unusable else "")
        )
    return _lookup(name)


def available_backends() -> Dict[str, TVSolver]:
    """The backends usable here by name (sorted), without aliases and choosers."""
    backends = {}
    for name in sorted(_table):
        if isinstance(_table[name], Alias):
            continue
        entry = _lookup(name)
        if isinstance(entry, TVSolver) and entry.available():
            backends[name] = entry
    return backends


def available_solvers() -> List[str]:
    """Names usable here: backends whose probe passed, their aliases, and choosers."""
    names = []
    for name in sorted(_table):
        entry = _lookup(name)
        if isinstance(entry, SolverChoice) or entry.available():
            names.append(name)
    backends = [n for n in names if not isinstance(_lookup(n), SolverChoice)]
    return names if backends else []


def resolve_backend(name: str, problem: TVProblem) -> TVSolver:
    """The backend that will solve ``problem`` under the registry name ``name``."""
    entry = get_solver(name)
    while isinstance(entry, SolverChoice):
        entry = get_solver(entry.choose(problem))
    return entry
