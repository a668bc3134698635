"""``auto``: the chooser that picks a LEG-TV backend for a problem (not a backend).

It ranks the available backends by what they declare
(:class:`~captum_leg.solvers.Capabilities`), never by name:

1. backends that compute on the moments' device type come first (CUDA moments go to a
   backend that runs there, with no host round trip);
2. then those whose ``preferred_cells`` range holds the grid's size;
3. then by ``priority``, then by name (so the choice is deterministic).

With the built-in declarations this gives (measured with ``benchmarks/solvers.py``;
tables in ``docs/method.md``, "Solving the LP"): moments on CUDA -> ``torch`` on that
device; on the CPU ``highs`` below 2000 cells and ``clarabel`` from 2000 (``highs`` when
cvxpy is missing). The rule depends on the problem only (device, size), so the same call
gives the same maps whatever the thread settings: the ``torch`` backend is faster on the
CPU only when torch runs single-threaded, and choosing it by the thread count made the
maps depend on ``OMP_NUM_THREADS`` (two optimal maps of a non-unique LP optimum, both
within the tolerance, differ). Programs that run torch single-threaded can pass
``solver="torch"``.

Options are passed unchanged to the chosen backend, so backend-specific options belong
with an explicit ``solver=``; the common ones (``tol``, ``time_limit``,
``accept_inexact``, ``verbose``) work everywhere.
"""

from __future__ import annotations

from typing import List, Tuple

from captum_leg.solvers.problem import SolverError, TVProblem
from captum_leg.solvers.registry import SolverChoice, available_backends


def rank_backends(device_type: str, cells: int) -> List[str]:
    """The available backends in ``auto``'s order of preference.

    Args:
        device_type: the moments' device type (``"cpu"``, ``"cuda"``, ...).
        cells: the grid's number of cells ``p``.

    Returns:
        Backend names, best first (aliases and choosers left out).
    """
    backends = available_backends()  # sorted by name; the stable sort keeps ties so

    def key(name: str) -> Tuple[bool, bool, int]:
        caps = backends[name].capabilities
        return (caps.runs_on(device_type), caps.prefers(cells), caps.priority)

    return sorted(backends, key=key, reverse=True)


def choose_backend(problem: TVProblem) -> str:
    """The backend name ``auto`` uses for ``problem`` (see the module docstring).

    Raises:
        SolverError: no backend is available.
    """
    ranked = rank_backends(problem.device.type, problem.p)
    if not ranked:
        raise SolverError("no LEG-TV backend is available")
    return ranked[0]


def auto_choice() -> SolverChoice:
    """The ``"auto"`` registry entry."""
    return SolverChoice("auto", choose_backend)
