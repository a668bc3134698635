"""Tests of the LEG-TV LP backends (captum_leg.solvers).

The reference is an independent *dense* formulation of the published problem (dense
``D`` built here cell by cell from its definition, ``D^+`` by ``numpy.linalg.pinv``,
dense ``Sigma``), not the structured operators the backends use. It is solved by SciPy's
HiGHS dual simplex on the primal LP, so the tests run in a base install (no cvxpy); the
``highs`` backend solves the structured *dual* LP by interior point instead. Where cvxpy
is installed, a second dense reference (cvxpy + Clarabel, another engine) is checked
against the first, and the ``clarabel`` backend joins the backends under test.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import types
from typing import Tuple

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from captum_leg.grid import get_grid
from captum_leg.solvers import (
    ScaledProblem,
    SolverChoice,
    SolverError,
    TVSolver,
    available_solvers,
    choose_backend,
    evaluate_maps,
    get_solver,
    make_problem,
    register_solver,
    registered_solvers,
    resolve_backend,
    solve_tv,
    solve_tv_batch,
    unregister_solver,
)
from captum_leg.solvers import TVProblem
from captum_leg.solvers.operators import LPOperators, lower_bound, make_feasible
from conftest import benchmark_script

HAVE_CVXPY = importlib.util.find_spec("cvxpy") is not None
needs_cvxpy = pytest.mark.skipif(not HAVE_CVXPY, reason="needs cvxpy (the cvxpy extra)")

#: the backends under test in loops: clarabel only where cvxpy is installed
BACKENDS = ["highs"] + (["clarabel"] if HAVE_CVXPY else []) + ["torch"]
#: the same for parametrised tests (a missing cvxpy shows as a skip)
BACKEND_PARAMS = ["highs", pytest.param("clarabel", marks=needs_cvxpy), "torch"]
S = 0.02


# ---------------------------------------------------------------------------------------
# independent dense reference
# ---------------------------------------------------------------------------------------
def dense_diff(shape: Tuple[int, ...]) -> np.ndarray:
    """``D`` from the method's definition: for every axis and every pair of neighbouring
    cells along it (including the two zero-padded border pairs), one row ``+1, -1``.
    Row order is irrelevant for the LP."""
    p = math.prod(shape)
    index = np.arange(p).reshape(shape)
    rows = []
    for axis, k in enumerate(shape):
        for pos in np.ndindex(*shape[:axis], *shape[axis + 1 :]):
            for j in range(-1, k):  # pair (j, j + 1) along the axis, cells -1 and k padded
                r = np.zeros(p)
                if j >= 0:
                    r[index[pos[:axis] + (j,) + pos[axis:]]] += 1
                if j + 1 < k:
                    r[index[pos[:axis] + (j + 1,) + pos[axis:]]] -= 1
                rows.append(r)
    return np.array(rows)


def dense_data(m: np.ndarray, shape, s: float):
    """``D``, ``D^{+T} Sigma / s^2`` and ``D^{+T} m / s^2`` of the published problem, dense.

    Both sides of the constraint are divided by ``s^2`` (an equivalent problem) so the
    generic solvers see O(1) data.
    """
    D = dense_diff(tuple(shape))
    p = D.shape[1]
    pinv_t = np.linalg.pinv(D).T
    sigma = D.T @ D + np.ones((p, p)) / p  # Sigma / s^2
    return D, pinv_t @ sigma, pinv_t @ m / s**2


def dense_reference(m: np.ndarray, shape, s: float, lam: float) -> float:
    """Optimal ``||D g||_1`` of the published problem, dense, via SciPy's HiGHS.

    The primal LP ``min 1^T u  s.t.  -u <= D g <= u,  |K g - r| <= lam ||r||_inf`` by dual
    simplex with tight feasibility tolerances (a vertex optimum).
    """
    D, K, r = dense_data(m, shape, s)
    M, p = D.shape
    eye, zero = np.eye(M), np.zeros((K.shape[0], M))
    width = lam * np.abs(r).max()
    res = linprog(
        np.r_[np.zeros(p), np.ones(M)],
        A_ub=np.block([[D, -eye], [-D, -eye], [K, zero], [-K, zero]]),
        b_ub=np.r_[np.zeros(2 * M), r + width, width - r],
        bounds=[(None, None)] * p + [(0, None)] * M,
        method="highs-ds",
        options=dict(primal_feasibility_tolerance=1e-10, dual_feasibility_tolerance=1e-10),
    )
    assert res.status == 0, res.message
    return float(np.abs(D @ res.x[:p]).sum())


def dense_reference_cvxpy(m: np.ndarray, shape, s: float, lam: float) -> float:
    """The same optimum via cvxpy + Clarabel (an interior-point engine)."""
    import cvxpy as cp

    D, K, r = dense_data(m, shape, s)
    g = cp.Variable(D.shape[1])
    cons = [cp.norm_inf(K @ g - r) <= lam * np.abs(r).max()]
    prob = cp.Problem(cp.Minimize(cp.norm1(D @ g)), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    assert prob.status == cp.OPTIMAL
    return float(prob.value)


def make_moments(shape, B: int, seed: int, s: float = S, n: int = 500) -> torch.Tensor:
    """``m = Sigma g_true + noise``: g_true piecewise constant (a few boxes), any axes."""
    shape = tuple(shape)
    gen = torch.Generator().manual_seed(seed)
    grid = get_grid(shape)
    out = []
    for _ in range(B):
        g = torch.zeros(shape, dtype=torch.float64)
        for _ in range(3):
            box = []
            for k in shape:
                a, b = sorted(torch.randint(0, k, (2,), generator=gen).tolist())
                box.append(slice(a, b + 1))
            g[tuple(box)] += float(torch.randn(1, generator=gen))
        noise = s * grid.sample_standard(1, gen)[0] / math.sqrt(n)
        out.append((grid.covariance(g, s) + s * noise).flatten())
    return torch.stack(out)


def realistic_moments(k: int, B: int, seed: int, n: int = 2000) -> torch.Tensor:
    """The benchmark's instances (piecewise-smooth map, Monte-Carlo noise of n samples)."""
    return benchmark_script("solvers").make_instances((k, k), B, n=n, seed=seed)


def rel(a, b) -> float:
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-12)


def suboptimality(obj, ref) -> float:
    return (float(obj) - float(ref)) / float(obj)


# ---------------------------------------------------------------------------------------
# correctness against the dense reference, on 1-D, 2-D and 3-D grids
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,lam,seed",
    [((13,), 0.2, 3), ((4, 5), 0.1, 0), ((6, 6), 0.3, 1), ((8, 7), 0.2, 2), ((3, 3, 4), 0.15, 4)],
)
def test_backends_match_dense_reference(shape, lam, seed):
    m = make_moments(shape, 1, seed)
    ref = dense_reference(m[0].numpy(), shape, S, lam)
    assert ref > 0
    D = dense_diff(shape)
    p = math.prod(shape)
    pinv_t = np.linalg.pinv(D).T
    sigma = S**2 * (D.T @ D + np.ones((p, p)) / p)
    scale = np.abs(pinv_t @ m[0].numpy()).max()
    for name in BACKENDS + ["auto", "admm"]:
        sol = solve_tv_batch(m, shape, S, lam, solver=name, tol=1e-7)
        g = sol.maps[0].numpy()
        assert sol.maps.shape == (1, p)
        assert sol.status == ["optimal"]
        assert rel(sol.objective[0], ref) <= 2e-7, (name, float(sol.objective[0]), ref)
        # feasible in the dense published form (rounding level)
        resid = np.abs(pinv_t @ (sigma @ g - m[0].numpy())).max()
        assert resid <= lam * scale * (1 + 1e-9), name
        # the certificate bounds the true suboptimality
        assert 0 <= float(sol.rel_gap[0]) <= 1e-7, name
        assert suboptimality(sol.objective[0], ref) <= float(sol.rel_gap[0]) + 1e-9, name
        # the reported objective is ||D g||_1 of the returned map (dense check)
        assert rel(np.abs(D @ g).sum(), sol.objective[0]) <= 1e-10


def test_violation_measure_matches_dense():
    shape, lam = (5, 4), 0.25
    m = make_moments(shape, 1, 7)
    sol = solve_tv_batch(m, shape, S, lam, solver="highs")
    D = dense_diff(shape)
    p = 20
    pinv_t = np.linalg.pinv(D).T
    sigma = S**2 * (D.T @ D + np.ones((p, p)) / p)
    # perturb the optimum to make it infeasible and compare the measured violation
    rng = np.random.default_rng(0)
    g = sol.maps[0].numpy() + rng.normal(size=p) * np.abs(sol.maps[0].numpy()).max()
    scale = np.abs(pinv_t @ m[0].numpy()).max()
    want = max(0.0, np.abs(pinv_t @ (sigma @ g - m[0].numpy())).max() - lam * scale) / scale
    _, viol = evaluate_maps(make_problem(m, shape, S, lam), torch.from_numpy(g)[None])
    assert want > 1e-3
    assert abs(float(viol[0]) - want) <= 1e-9 * max(1.0, want)


@needs_cvxpy
@pytest.mark.parametrize("shape,lam,seed", [((13,), 0.2, 3), ((6, 6), 0.3, 1), ((3, 3, 4), 0.15, 4)])
def test_dense_references_agree(shape, lam, seed):
    # the two dense references use different engines (dual simplex, interior point)
    m = make_moments(shape, 1, seed)[0].numpy()
    assert rel(dense_reference(m, shape, S, lam), dense_reference_cvxpy(m, shape, S, lam)) <= 1e-9


@needs_cvxpy
def test_clarabel_is_available_with_cvxpy():
    assert "clarabel" in available_solvers()


# ---------------------------------------------------------------------------------------
# the certificate machinery on its own
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(9,), (5, 6), (3, 4, 3)])
def test_lower_bound_and_repair_are_valid_for_arbitrary_inputs(shape):
    # any (z, w) must give a bound below the optimum, any h a feasible map above it
    m = make_moments(shape, 1, 11)
    problem = make_problem(m, shape, S, 0.2)
    scaled, beta = problem.scaled()
    opt = float(solve_tv_batch(m, shape, S, 0.2, solver="highs").objective[0]) / float(beta[0])
    ops = LPOperators(scaled.grid)
    gen = torch.Generator().manual_seed(0)
    M = scaled.grid.n_edges
    z = torch.randn(8, M, generator=gen, dtype=torch.float64)
    w = torch.randn(8, M, generator=gen, dtype=torch.float64) * 0.1
    b, t = scaled.b.expand(8, -1), scaled.lams.expand(8)
    lb = lower_bound(ops, b, t, z, w)
    assert torch.all(lb <= opt * (1 + 1e-12))
    h = torch.randn((8,) + tuple(shape), generator=gen, dtype=torch.float64)
    h_f, ub = make_feasible(ops, b, t, h, ops.leg(b))
    assert torch.all((ops.A(h_f) - b).abs().amax(-1) <= t * (1 + 1e-12))
    assert torch.all(ub >= opt * (1 - 1e-12))
    assert torch.allclose(ub, ops.diff(h_f).abs().sum(-1))


# ---------------------------------------------------------------------------------------
# the torch solver: realistic grids, batching, lambdas, precision, limits
# ---------------------------------------------------------------------------------------
def test_torch_converges_on_realistic_grid28_batch():
    shape = (28, 28)
    m = realistic_moments(28, 8, seed=5)
    lams = torch.tensor([0.1, 0.3] * 4)
    sol = solve_tv_batch(m, shape, S, lams, solver="torch")
    ref = solve_tv_batch(m, shape, S, lams, solver="highs")
    assert sol.status == ["optimal"] * 8
    assert torch.all(sol.rel_gap <= 1e-4)
    assert torch.all(sol.max_violation <= 1e-12)
    for i in range(8):
        # certified: the returned gap bounds the true suboptimality
        assert -1e-9 <= suboptimality(sol.objective[i], ref.objective[i]) <= sol.rel_gap[i] + 1e-9


def test_torch_converges_on_realistic_grid112():
    m = realistic_moments(112, 1, seed=6)
    sol = solve_tv_batch(m, (112, 112), S, 0.3, solver="torch")
    assert sol.status == ["optimal"]
    assert float(sol.rel_gap[0]) <= 1e-4
    assert float(sol.max_violation[0]) <= 1e-12
    assert sol.iterations[0] <= 5000  # measured 1000-2500 at this grid


def test_torch_batch_matches_single_maps():
    shape = (12, 10)
    m = make_moments(shape, 4, 3)
    s = torch.tensor([0.02, 0.05, 0.02, 0.1])
    lams = torch.tensor([0.1, 0.3, 0.5, 0.2])
    batch = solve_tv_batch(m, shape, s, lams, solver="torch", tol=1e-6)
    for i in range(4):
        single = solve_tv_batch(m[i], shape, float(s[i]), float(lams[i]), solver="torch", tol=1e-6)
        assert rel(batch.objective[i], single.objective[0]) <= 2e-6


def test_torch_float32_working_precision():
    # the GPU configuration: float32 all the way, still certified and feasible
    shape = (10, 12)
    m = make_moments(shape, 2, 12).float()
    ref = solve_tv_batch(m.double(), shape, S, [0.1, 0.3], solver="highs")
    sol = solve_tv_batch(m, shape, S, [0.1, 0.3], solver="torch", dtype=torch.float32, tol=1e-3)
    assert sol.maps.dtype == torch.float32
    assert torch.all(sol.rel_gap <= 1e-3)
    assert torch.all(sol.max_violation <= 1e-5)
    for i in range(2):
        assert suboptimality(sol.objective[i], ref.objective[i]) <= 1e-3 + 1e-5


def test_lambda_sequence_is_monotone():
    shape = (9, 9)
    m = make_moments(shape, 1, 4).expand(5, -1)
    lams = [0.05, 0.1, 0.2, 0.4, 0.8]
    for name in ("highs", "torch"):
        sol = solve_tv_batch(m, shape, S, lams, solver=name, tol=1e-7)
        obj = sol.objective.numpy()
        # larger lambda = larger feasible set = no larger optimum
        assert np.all(np.diff(obj) <= 1e-6 * obj[:-1]), (name, obj)
        assert obj[-1] < 0.5 * obj[0]


def test_zero_moment_gives_zero_map():
    shape = (6, 5)
    m = make_moments(shape, 3, 5)
    m[1] = 0
    for name in BACKENDS:
        sol = solve_tv_batch(m, shape, S, 0.3, solver=name)
        assert torch.all(sol.maps[1] == 0)
        assert sol.status[1] == "zero moment" and float(sol.rel_gap[1]) == 0.0
        assert float(sol.objective[1]) == 0.0
        assert float(sol.objective[0]) > 0 and float(sol.objective[2]) > 0
    assert np.all(solve_tv(np.zeros(30), shape, S, 0.1, solver="highs") == 0)


def test_iteration_limit_raises_or_returns_certified_inexact():
    shape = (8, 8)
    m = make_moments(shape, 2, 6)
    with pytest.raises(SolverError, match="torch.*iteration limit"):
        solve_tv_batch(m, shape, S, 0.1, solver="torch", max_iter=32, check_every=32)
    sol = solve_tv_batch(
        m, shape, S, 0.1, solver="torch", max_iter=32, check_every=32, accept_inexact=True
    )
    ref = solve_tv_batch(m, shape, S, 0.1, solver="highs")
    assert sol.status == ["inexact", "inexact"]
    assert torch.all(sol.rel_gap > 1e-4)
    assert torch.all(sol.max_violation <= 1e-12)  # still feasible
    for i in range(2):  # and the larger gap is still a true bound
        assert suboptimality(sol.objective[i], ref.objective[i]) <= float(sol.rel_gap[i]) + 1e-9


@pytest.mark.parametrize("name", BACKEND_PARAMS)
def test_time_limit_is_per_call(name):
    # time_limit is wall-clock seconds for the whole call, for every backend
    m = make_moments((20, 20), 3, 8)
    with pytest.raises(SolverError, match="time limit"):
        solve_tv_batch(m, (20, 20), S, 0.1, solver=name, time_limit=1e-9)
    sol = solve_tv_batch(m, (20, 20), S, 0.1, solver=name, time_limit=1e-9, accept_inexact=True)
    assert all(s == "inexact" for s in sol.status)
    assert torch.all(sol.max_violation <= 1e-12)  # at worst the LEG map: feasible
    assert torch.all(sol.rel_gap > 1e-4) and torch.all(sol.rel_gap <= 1)


# ---------------------------------------------------------------------------------------
# the contract: registry, availability, options, auto
# ---------------------------------------------------------------------------------------
def test_solver_contract_is_abstract_and_typed():
    with pytest.raises(TypeError):
        TVSolver()  # abstract: solve_scaled missing

    class Calls(TVSolver):
        name = "counting"
        probes = 0

        def probe(self):
            Calls.probes += 1
            return None

        def solve_scaled(self, scaled: ScaledProblem, opts, deadline, **extra):
            return get_solver("highs").solve_scaled(scaled, opts, deadline, **extra)

    register_solver("counting", Calls)
    try:
        for _ in range(3):
            assert "counting" in available_solvers()
        assert Calls.probes == 1  # availability is probed once
        m = make_moments((5, 5), 1, 1)
        sol = solve_tv_batch(m, (5, 5), S, 0.2, solver="counting")
        assert sol.backend == "counting" and sol.status == ["optimal"]
    finally:
        unregister_solver("counting")


def test_unknown_option_names_itself():
    m = make_moments((4, 4), 1, 0)
    for name in BACKENDS:  # every backend checks names against its declaration
        with pytest.raises(TypeError, match="rho"):
            solve_tv_batch(m, (4, 4), S, 0.1, solver=name, rho=1.0)
    with pytest.raises(ValueError, match="tol"):
        solve_tv_batch(m, (4, 4), S, 0.1, solver="highs", tol=0)
    with pytest.raises(ValueError, match="time_limit"):
        solve_tv_batch(m, (4, 4), S, 0.1, solver="highs", time_limit=-1)
    with pytest.raises(TypeError, match="accept_inexact"):
        solve_tv_batch(m, (4, 4), S, 0.1, solver="highs", accept_inexact="yes")


def test_auto_is_a_chooser():
    entry = get_solver("auto")
    assert isinstance(entry, SolverChoice) and entry.available()
    assert "auto" in registered_solvers() and "auto" in available_solvers()
    shape = (10, 10)
    m = make_moments(shape, 2, 10)
    problem = make_problem(m, shape, S, [0.1, 0.3])
    chosen = choose_backend(problem)
    assert chosen in available_solvers() and chosen != "auto"
    assert resolve_backend("auto", problem).name == chosen
    sol = solve_tv_batch(m, shape, S, [0.1, 0.3], solver="auto")
    ref = solve_tv_batch(m, shape, S, [0.1, 0.3], solver="highs")
    assert sol.backend == chosen
    for i in range(2):
        assert suboptimality(sol.objective[i], ref.objective[i]) <= float(sol.rel_gap[i]) + 1e-9
    # moments on an accelerator go to the torch backend (the chooser reads the device only)
    on_meta = TVProblem(torch.empty(2, 100, device="meta"), shape, problem.noise_levels, problem.lams)
    assert choose_backend(on_meta) == "torch"


def test_auto_cpu_rule_depends_on_the_problem_only(monkeypatch):
    small = make_problem(torch.ones(1, 100), (10, 10), S, 0.1)
    large = make_problem(torch.ones(1, 2500), (50, 50), S, 0.1)
    for threads in (1, 2):  # the same maps whatever the thread settings
        monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
        assert choose_backend(small) == "highs"
        assert choose_backend(large) == ("clarabel" if HAVE_CVXPY else "highs")


def test_admm_is_an_alias_of_torch():
    assert type(get_solver("admm")) is type(get_solver("torch"))
    m = make_moments((6, 6), 1, 2)
    assert solve_tv_batch(m, (6, 6), S, 0.2, solver="admm").backend == "torch"


def test_mosek_without_licence(monkeypatch):
    class FakeError(Exception):
        pass

    class FakeEnv:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def checkoutlicense(self, feature):
            raise FakeError("err_license_file: no licence file found")

    fake = types.SimpleNamespace(Env=FakeEnv, feature=types.SimpleNamespace(pts=0))
    monkeypatch.setitem(sys.modules, "mosek", fake)
    solver = get_solver("mosek")
    assert solver.unavailable_reason(refresh=True) is not None
    try:
        assert not solver.available()
        assert "licence" in solver.unavailable_reason()
        assert "mosek" not in available_solvers()
        with pytest.raises(SolverError) as err:
            solve_tv_batch(make_moments((4, 4), 1, 0), (4, 4), S, 0.1, solver="mosek")
        msg = str(err.value)
        assert "mosek" in msg and "licence" in msg
        for name in BACKENDS:
            assert name in msg
    finally:
        monkeypatch.undo()
        solver.unavailable_reason(refresh=True)


def test_unknown_solver_lists_available():
    with pytest.raises(ValueError, match="solver.*highs"):
        solve_tv(np.ones(4), (2, 2), S, 0.1, solver="gurobi")
    with pytest.raises(TypeError, match="solver"):
        solve_tv(np.ones(4), (2, 2), S, 0.1, solver=3)


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        (dict(moment=np.ones(5)), ValueError, "grid_shape"),
        (dict(moment=np.array([1.0, np.nan, 0, 0])), ValueError, "NaN"),
        (dict(noise_level=0.0), ValueError, "noise_level"),
        (dict(noise_level=-1.0), ValueError, "noise_level"),
        (dict(lam=0.0), ValueError, "lam"),
        (dict(lam=1.0), ValueError, "lam"),
        (dict(moment=[1.0, 2.0, 3.0, 4.0]), TypeError, "moment"),
        (dict(grid_shape=(2, 0)), ValueError, "grid_shape"),
        (dict(grid_shape=()), ValueError, "grid_shape"),
        (dict(grid_shape="2x2"), TypeError, "grid_shape"),
        (dict(grid_shape=(2.5, 2)), TypeError, "grid_shape"),
        (dict(grid_shape=(3,)), ValueError, "grid_shape"),
    ],
)
def test_argument_validation(kwargs, exc, word):
    args = dict(moment=np.ones(4), grid_shape=(2, 2), noise_level=S, lam=0.1)
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        solve_tv(args.pop("moment"), args.pop("grid_shape"), **args, solver="highs")


def test_grid_shape_forms():
    m = make_moments((8,), 1, 1)
    a = solve_tv_batch(m, 8, S, 0.2, solver="highs")  # an int is a 1-D grid
    b = solve_tv_batch(m, (8,), S, 0.2, solver="highs")
    assert torch.equal(a.maps, b.maps)
    m2 = make_moments((2, 3, 4), 1, 1)
    sol = solve_tv_batch(m2, [2, 3, 4], S, 0.2, solver="torch")
    assert sol.maps.shape == (1, 24)


def test_batch_argument_lengths():
    with pytest.raises(ValueError, match="lam"):
        solve_tv_batch(np.ones((3, 4)), (2, 2), S, [0.1, 0.2], solver="highs")


# ---------------------------------------------------------------------------------------
# solve_tv in/out types
# ---------------------------------------------------------------------------------------
def test_solve_tv_numpy_and_tensor_roundtrip():
    shape = (7, 6)
    m = make_moments(shape, 1, 9)[0]
    ref = solve_tv_batch(m, shape, S, 0.2, solver="highs").maps[0]

    out_np = solve_tv(m.numpy(), shape, S, 0.2, solver="highs")
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float64 and out_np.shape == (42,)
    np.testing.assert_allclose(out_np, ref.numpy(), atol=1e-12)

    out32 = solve_tv(m.numpy().astype(np.float32), shape, S, 0.2, solver="highs")
    assert isinstance(out32, np.ndarray) and out32.dtype == np.float32

    out_t = solve_tv(m.float(), shape, S, 0.2, solver="torch")
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    assert out_t.shape == (42,)
    D = dense_diff(shape)
    assert rel(np.abs(D @ out_t.double().numpy()).sum(), np.abs(D @ ref.numpy()).sum()) <= 2e-4

    out_2d = solve_tv(m.reshape(shape), shape, S, 0.2, solver="highs")
    assert out_2d.shape == (42,)


# ---------------------------------------------------------------------------------------
# no process-wide side effects
# ---------------------------------------------------------------------------------------
def test_solvers_touch_no_process_state(monkeypatch, capfd):
    # no file-descriptor redirection, no thread-count changes, nothing printed
    def forbidden(*args, **kwargs):
        raise AssertionError("process-wide state touched")

    threads = torch.get_num_threads()
    seen = []
    from captum_leg.solvers import pdhg

    original = pdhg._Batch.run

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pdhg._Batch, "run", spy)
    m = make_moments((6, 6), 2, 0)
    # patched by hand around the solves only: pytest's own capture uses os.dup2
    patched = [(os, "dup"), (os, "dup2"), (torch, "set_num_threads"),
               (torch, "set_num_interop_threads")]
    saved = [getattr(mod, attr) for mod, attr in patched]
    try:
        for mod, attr in patched:
            setattr(mod, attr, forbidden)
        for name in BACKENDS + ["auto"]:
            solve_tv_batch(m, (6, 6), S, 0.2, solver=name)
    finally:
        for (mod, attr), value in zip(patched, saved):
            setattr(mod, attr, value)
    assert seen and set(seen) == {threads}
    assert torch.get_num_threads() == threads
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_verbose_goes_to_stdout(capfd):
    m = make_moments((6, 6), 1, 0)
    solve_tv_batch(m, (6, 6), S, 0.2, solver="torch", verbose=True)
    out, _ = capfd.readouterr()
    assert "[torch] it" in out


# ---------------------------------------------------------------------------------------
# CUDA (run by benchmarks/gpu_check.py on a GPU machine; skipped elsewhere)
# ---------------------------------------------------------------------------------------
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-6), (torch.float32, 1e-3)])
def test_torch_on_cuda_matches_cpu_reference(dtype, tol):
    shape = (16, 12)
    m = make_moments(shape, 6, 21)
    lams = torch.tensor([0.1, 0.3] * 3)
    ref = solve_tv_batch(m, shape, S, lams, solver="highs")
    sol = solve_tv_batch(m.to("cuda", dtype), shape, S, lams, solver="torch", tol=tol, dtype=dtype)
    assert sol.maps.device.type == "cuda" and sol.maps.dtype == dtype
    assert torch.all(sol.rel_gap <= tol)
    assert torch.all(sol.max_violation <= (1e-12 if dtype == torch.float64 else 1e-5))
    for i in range(6):
        assert suboptimality(sol.objective[i], ref.objective[i]) <= tol + 1e-6


@cuda
def test_auto_on_cuda_runs_torch_on_the_device():
    m = make_moments((10, 10), 2, 22).cuda()
    sol = solve_tv_batch(m, (10, 10), S, [0.1, 0.3], solver="auto")
    assert sol.backend == "torch" and sol.maps.device.type == "cuda"
    assert sol.status == ["optimal", "optimal"]


@cuda
def test_cuda_3d_grid():
    shape = (4, 5, 6)
    m = make_moments(shape, 2, 23)
    ref = solve_tv_batch(m, shape, S, 0.2, solver="highs")
    sol = solve_tv_batch(m.cuda(), shape, S, 0.2, solver="torch")
    for i in range(2):
        assert suboptimality(sol.objective[i], ref.objective[i]) <= float(sol.rel_gap[i]) + 1e-9


# ---------------------------------------------------------------------------------------
# the benchmark scripts run (CPU-safe parts)
# ---------------------------------------------------------------------------------------
def test_benchmark_scripts_run_on_cpu(capsys):
    bench = benchmark_script("solvers")
    bench.main(["--grids", "8", "--backends", "torch", "highs", "--batch", "2"])
    out = capsys.readouterr().out
    assert "torch" in out and "highs" in out and "FAILED" not in out
    m = bench.make_instances((3, 4, 5), 2)
    assert m.shape == (2, 60) and torch.isfinite(m).all()
    gpu = benchmark_script("gpu_check")
    assert gpu.main(["--self-check"]) == 0
    if not torch.cuda.is_available():
        assert gpu.main([]) == 0
        assert "no CUDA device" in capsys.readouterr().out
