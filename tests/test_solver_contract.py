"""The solver contract: the driver certifies, checks options, and ``auto`` reads capabilities.

Backends registered here are fakes built on the ``highs`` backend; every test removes
what it registers. Reference optima come from ``highs`` itself, which
``tests/test_solvers.py`` checks against an independent dense solve.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any, Callable, Iterator, Optional

import pytest
import torch

from captum_leg._checks import check_solver
from captum_leg.grid import get_grid
from captum_leg.solvers import (
    Capabilities,
    LPOperators,
    OptionSpec,
    ScaledProblem,
    ScaledResult,
    SolveOptions,
    SolverError,
    TVSolver,
    UnknownOptionError,
    available_solvers,
    choose_backend,
    get_solver,
    make_problem,
    positive_int,
    rank_backends,
    register_solver,
    registered_solvers,
    solve_tv_batch,
    unregister_solver,
)
from captum_leg.solvers.highs import HighsSolver
from captum_leg.solvers.options import Deadline

HAVE_CVXPY = importlib.util.find_spec("cvxpy") is not None
S = 0.02
SHAPE = (6, 7)
CLAIMED = 1e-9


def moments(B: int = 1, seed: int = 0) -> torch.Tensor:
    """Moments ``Sigma g + noise`` of a random piecewise-constant map on :data:`SHAPE`."""
    gen = torch.Generator().manual_seed(seed)
    grid = get_grid(SHAPE)
    g = torch.zeros((B,) + SHAPE, dtype=torch.float64)
    g[:, 1:4, 2:6] = 1.0
    g[:, 3:, :3] -= 0.7
    noise = grid.sample_standard(B, gen) * 0.05
    return (grid.covariance(g, S) + S * noise).reshape(B, -1)


@pytest.fixture
def registered() -> Iterator[Callable[[str, Any], None]]:
    """``register(name, factory)`` for the test; everything is unregistered afterwards."""
    names = set()

    def register(name: str, factory: Any) -> None:
        register_solver(name, factory)
        names.add(name)

    yield register
    for name in names & set(registered_solvers()):
        unregister_solver(name)


def liar(corrupt: Callable[[ScaledResult, ScaledProblem], ScaledResult]) -> type:
    """A backend that takes HiGHS's answer, corrupts it and claims a tiny gap."""

    class Liar(TVSolver):
        name = "liar"

        def solve_scaled(self, scaled: ScaledProblem, opts: SolveOptions, deadline: Deadline,
                         **options: Any) -> ScaledResult:
            honest = get_solver("highs").solve_scaled(scaled, opts, deadline)
            wrong = corrupt(honest, scaled)
            wrong.reported_gap = torch.full((scaled.batch_size,), CLAIMED, dtype=torch.float64)
            return wrong

    return Liar


def perturbed_map(res: ScaledResult, scaled: ScaledProblem) -> ScaledResult:
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(res.h.shape, generator=gen, dtype=res.h.dtype)
    res.h = res.h + 0.1 * res.h.abs().amax(-1, keepdim=True) * noise  # the dual stays optimal
    return res


def dropped_dual(res: ScaledResult, scaled: ScaledProblem) -> ScaledResult:
    res.z = res.w = None  # the optimal map, but nothing proves it
    return res


def zero_map(res: ScaledResult, scaled: ScaledProblem) -> ScaledResult:
    res.h = torch.zeros_like(res.h)  # infeasible: |A 0 - b| = |b| = 1 > lam
    return res


# ---------------------------------------------------------------------------------------
# the driver certifies
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("corrupt", [perturbed_map, dropped_dual, zero_map])
def test_driver_rejects_wrong_maps_whatever_the_backend_claims(registered, corrupt):
    registered("liar", liar(corrupt))
    m = moments(2, seed=3)
    ref = solve_tv_batch(m, SHAPE, S, [0.1, 0.3], solver="highs", tol=1e-9)
    with pytest.raises(SolverError, match="liar.*2 of 2 maps.*do not certify"):
        solve_tv_batch(m, SHAPE, S, [0.1, 0.3], solver="liar")

    # accept_inexact=True: the driver's gap for its feasible repair, never the claim
    sol = solve_tv_batch(m, SHAPE, S, [0.1, 0.3], solver="liar", accept_inexact=True)
    assert sol.status == ["inexact", "inexact"]
    assert sol.info["reported_gap"] == [CLAIMED, CLAIMED]
    assert torch.all(sol.max_violation <= 1e-12)  # repaired to feasibility
    subopt = (sol.objective - ref.objective) / sol.objective
    assert torch.all(sol.rel_gap > 1e-3)
    assert torch.all(subopt <= sol.rel_gap + 1e-9)  # a true bound
    if corrupt is dropped_dual:  # only the trivial bound 0 is left
        assert torch.allclose(sol.rel_gap, torch.ones(2, dtype=torch.float64))
        assert torch.allclose(sol.objective, ref.objective, rtol=1e-8)
    else:  # the optimal dual: the certified gap is the true suboptimality
        assert torch.allclose(sol.rel_gap, subopt, rtol=1e-6, atol=1e-10)


def test_driver_replaces_non_finite_and_unanswered_maps_by_leg(registered):
    def corrupt(res: ScaledResult, scaled: ScaledProblem) -> ScaledResult:
        res.h[0] = float("nan")
        res.answered = torch.tensor([True, False])
        return res

    registered("liar", liar(corrupt))
    m = moments(2, seed=4)
    sol = solve_tv_batch(m, SHAPE, S, 0.2, solver="liar", accept_inexact=True)
    problem = make_problem(m, SHAPE, S, 0.2)
    scaled, beta = problem.scaled()
    leg = LPOperators(scaled.grid).leg(scaled.b).reshape(2, -1) * beta[:, None]
    assert torch.allclose(sol.maps, leg, rtol=1e-10, atol=1e-12)
    assert sol.rel_gap.tolist() == [1.0, 1.0]


def test_driver_rejects_a_malformed_result(registered):
    def corrupt(res: ScaledResult, scaled: ScaledProblem) -> ScaledResult:
        res.z = res.z[:, :-1]
        return res

    registered("liar", liar(corrupt))
    with pytest.raises(SolverError, match="liar.*returned z of shape"):
        solve_tv_batch(moments(), SHAPE, S, 0.2, solver="liar", accept_inexact=True)


@pytest.mark.parametrize("name", ["torch", "highs"])
def test_backend_gap_and_driver_gap_agree(name):
    # an honest backend's own estimate (torch reports one) matches the driver's certificate
    sol = solve_tv_batch(moments(3, seed=5), SHAPE, S, [0.1, 0.2, 0.4], solver=name)
    assert sol.status == ["optimal"] * 3 and torch.all(sol.rel_gap <= 1e-4)
    if name == "torch":
        reported = torch.tensor(sol.info["reported_gap"], dtype=torch.float64)
        assert torch.allclose(reported, sol.rel_gap, rtol=1e-6, atol=1e-12)
    else:
        assert "reported_gap" not in sol.info


# ---------------------------------------------------------------------------------------
# options are checked against the declaration
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["highs", "torch", "admm", "auto"])
def test_unknown_option_is_named_with_the_accepted_ones(name):
    with pytest.raises(UnknownOptionError) as err:
        solve_tv_batch(moments(), SHAPE, S, 0.2, solver=name, rho=1.0)
    assert isinstance(err.value, ValueError) and isinstance(err.value, TypeError)
    msg = str(err.value)
    assert "'rho'" in msg and "tol" in msg and "accept_inexact" in msg
    own = "max_iter" if name in ("torch", "admm") else "method"
    assert own in msg


@pytest.mark.skipif(not HAVE_CVXPY, reason="needs cvxpy")
def test_clarabel_accepts_its_settings_only():
    sol = solve_tv_batch(moments(), SHAPE, S, 0.2, solver="clarabel", tol_gap_rel=1e-10)
    assert sol.status == ["optimal"]
    with pytest.raises(UnknownOptionError, match="'rho'.*tol_gap_rel"):
        solve_tv_batch(moments(), SHAPE, S, 0.2, solver="clarabel", rho=1.0)


def test_options_are_validated_before_the_backend_runs(registered):
    calls = []

    class Strict(HighsSolver):
        name = "strict"
        options = HighsSolver.options + (OptionSpec("rounds", 3, positive_int, "a count"),)

        def solve_scaled(self, scaled, opts, deadline, **options):
            calls.append(self.option_values(options))
            return super().solve_scaled(scaled, opts, deadline, **options)

    registered("strict", Strict)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="rounds"):
            solve_tv_batch(moments(), SHAPE, S, 0.2, solver="strict", rounds=bad)
    with pytest.raises(ValueError, match="method"):
        solve_tv_batch(moments(), SHAPE, S, 0.2, solver="strict", method="barrier")
    assert calls == []
    solve_tv_batch(moments(), SHAPE, S, 0.2, solver="strict")
    solve_tv_batch(moments(), SHAPE, S, 0.2, solver="strict", rounds=5, method="auto")
    assert calls == [{"method": "ipm", "rounds": 3}, {"method": "ipm", "rounds": 5}]


# ---------------------------------------------------------------------------------------
# auto chooses by declared capabilities
# ---------------------------------------------------------------------------------------
def fake(name: str, caps: Capabilities, reason: Optional[str] = None) -> type:
    """A HiGHS backend under another name, with other capabilities (and availability)."""
    return type(name, (HighsSolver,), {"name": name, "capabilities": caps,
                                       "probe": lambda self: reason})


def test_auto_prefers_a_backend_declaring_the_device(registered):
    registered("fake-cuda", fake("fake-cuda", Capabilities(devices=("cuda",), priority=100)))
    assert rank_backends("cuda", 100)[0] == "fake-cuda"
    assert rank_backends("cpu", 100)[0] == "highs"  # it does not run on the CPU
    # without it, CUDA moments go to the backend that runs on any device
    unregister_solver("fake-cuda")
    assert rank_backends("cuda", 100)[0] == "torch"


def test_auto_reads_device_size_priority_and_availability(registered):
    on_meta = make_problem(torch.ones(1, 42), SHAPE, S, 0.2)
    on_meta.moments = torch.empty(1, 42, device="meta")
    assert choose_backend(on_meta) == "torch"
    registered("fake-meta", fake("fake-meta", Capabilities(devices=("meta",))))
    assert choose_backend(on_meta) == "fake-meta"

    cpu = make_problem(moments(), SHAPE, S, 0.2)
    assert choose_backend(cpu) == "highs"
    # preferred for this size, but a lower priority than highs, which is preferred too
    registered("fake-low", fake("fake-low", Capabilities(preferred_cells=(0, 100), priority=1)))
    assert choose_backend(cpu) == "highs"
    # a higher priority wins, unless the size is outside its range or it is unavailable
    registered("fake-high", fake("fake-high", Capabilities(preferred_cells=(0, 100), priority=99)))
    assert choose_backend(cpu) == "fake-high"
    assert choose_backend(make_problem(torch.ones(1, 400), (20, 20), S, 0.2)) == "highs"
    registered("fake-high", fake("fake-high", Capabilities(preferred_cells=(0, 100), priority=99),
                                 reason="licence missing"))
    assert choose_backend(cpu) == "highs"


def test_auto_runs_the_chosen_backend(registered):
    registered("fake-high", fake("fake-high", Capabilities(preferred_cells=(0, None), priority=99)))
    m = moments()
    sol = solve_tv_batch(m, SHAPE, S, 0.2, solver="auto", method="simplex")
    ref = solve_tv_batch(m, SHAPE, S, 0.2, solver="highs")
    assert sol.backend == "fake-high" and sol.info["method"] == "simplex"
    assert torch.allclose(sol.objective, ref.objective, rtol=1e-6)


# ---------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------
def test_unknown_solver_names_the_argument_once():
    messages = []
    for call in (
        lambda: solve_tv_batch(moments(), SHAPE, S, 0.2, solver="gurobi"),
        lambda: check_solver("solver", "gurobi", needed=True),
    ):
        with pytest.raises(ValueError) as err:
            call()
        messages.append(str(err.value))
    with pytest.raises(ValueError) as err:
        get_solver("gurobi")
    assert "solver:" not in str(err.value)
    for msg in messages:
        assert msg.count("solver:") == 1 and msg.startswith("solver: ")
        assert "'gurobi'" in msg
        assert all(name in msg for name in available_solvers())


def test_backends_are_imported_on_first_use_only():
    code = (
        "import sys, captum_leg.solvers as s\n"
        "mods = [m for m in ('pdhg', 'highs', 'clarabel', 'mosek', '_cvxpy') "
        "if 'captum_leg.solvers.' + m in sys.modules]\n"
        "assert mods == [], mods\n"
        "s.get_solver('highs')\n"
        "assert 'captum_leg.solvers.highs' in sys.modules\n"
        "assert 'captum_leg.solvers.pdhg' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unregister_restores_a_builtin(registered):
    original = get_solver("highs")
    registered("highs", fake("highs", Capabilities()))
    assert get_solver("highs") is not original
    unregister_solver("highs")
    assert type(get_solver("highs")) is HighsSolver
    assert get_solver("admm") is get_solver("torch")  # an alias is the same instance
    assert {"torch", "admm", "highs", "clarabel", "mosek", "auto"} <= set(registered_solvers())
    with pytest.raises(ValueError, match="nope"):
        unregister_solver("nope")


# ---------------------------------------------------------------------------------------
# the operators' public interface (used by the torch backend)
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(9,), (5, 6), (3, 4, 5)])
def test_sine_transform_buffers_and_laplacian_solve(shape):
    grid = get_grid(shape)
    ops = LPOperators(grid)
    v = torch.randn((3,) + shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    plain = ops.sine_transform(v)
    out, spare = torch.empty_like(v), torch.empty_like(v)
    buffered = ops.sine_transform(v, out, spare)
    assert buffered is out or buffered is spare
    assert torch.allclose(plain, buffered, rtol=0, atol=1e-12)
    # the sine path of L^{-1} against the grid's FFT path
    assert torch.allclose(ops.laplacian_solve(v), grid.laplacian_solve(v), rtol=1e-10, atol=1e-12)
    assert torch.allclose(grid.laplacian(ops.laplacian_solve(v)), v, atol=1e-10)
