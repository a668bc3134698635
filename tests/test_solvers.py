"""Tests of the LEG-TV LP backends (captum_leg.solvers).

The reference is an independent *dense* cvxpy formulation of the published problem
(dense ``D`` built here from its definition, ``D^+`` by ``numpy.linalg.pinv``, dense
``Sigma``), not the structured operators the backends use.
"""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch

from captum_leg.grid import get_grid
from captum_leg.solvers import (
    SolverError,
    available_solvers,
    get_solver,
    solve_tv,
    solve_tv_batch,
)

cp = pytest.importorskip("cvxpy")

LP_BACKENDS = ["highs", "clarabel"]
ALL_BACKENDS = ["highs", "clarabel", "admm"]
S = 0.02


# ---------------------------------------------------------------------------------------
# independent dense reference
# ---------------------------------------------------------------------------------------
def dense_diff(k1: int, k2: int) -> np.ndarray:
    """``D`` from LEG_METHOD.md section 3, row order irrelevant for the LP."""
    idx = np.arange(k1 * k2).reshape(k1, k2)
    rows = []
    for i in range(k1):
        for j in range(-1, k2):  # horizontal pairs incl. the two border sides
            r = np.zeros(k1 * k2)
            if j >= 0:
                r[idx[i, j]] += 1
            if j + 1 < k2:
                r[idx[i, j + 1]] -= 1
            rows.append(r)
    for j in range(k2):
        for i in range(-1, k1):
            r = np.zeros(k1 * k2)
            if i >= 0:
                r[idx[i, j]] += 1
            if i + 1 < k1:
                r[idx[i + 1, j]] -= 1
            rows.append(r)
    return np.array(rows)


def dense_reference(m: np.ndarray, shape, s: float, lam: float) -> float:
    """Optimal ``||D g||_1`` of the published problem, dense, via cvxpy + Clarabel.

    Both sides of the constraint are divided by ``s^2`` (an equivalent problem) so the
    generic solver sees O(1) data.
    """
    k1, k2 = shape
    D = dense_diff(k1, k2)
    p = k1 * k2
    pinv_t = np.linalg.pinv(D).T
    sigma = D.T @ D + np.ones((p, p)) / p  # Sigma / s^2
    rhs = pinv_t @ m / s**2
    g = cp.Variable(p)
    cons = [cp.norm_inf(pinv_t @ (sigma @ g) - rhs) <= lam * np.abs(rhs).max()]
    prob = cp.Problem(cp.Minimize(cp.norm1(D @ g)), cons)
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert prob.status == cp.OPTIMAL
    return float(prob.value)


def make_moments(shape, B: int, seed: int, s: float = S, n: int = 500) -> torch.Tensor:
    """``m = Sigma g_true + noise``: g_true piecewise constant (a few rectangles)."""
    k1, k2 = shape
    gen = torch.Generator().manual_seed(seed)
    grid = get_grid(k1, k2)
    out = []
    for _ in range(B):
        g = torch.zeros(k1, k2, dtype=torch.float64)
        for _ in range(3):
            a, b = sorted(torch.randint(0, k1, (2,), generator=gen).tolist())
            c, d = sorted(torch.randint(0, k2, (2,), generator=gen).tolist())
            g[a : b + 1, c : d + 1] += float(torch.randn(1, generator=gen))
        noise = s * grid.sample_standard(1, gen)[0] / math.sqrt(n)
        out.append((grid.covariance(g, s) + s * noise).flatten())
    return torch.stack(out)


def rel(a, b) -> float:
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-12)


# ---------------------------------------------------------------------------------------
# correctness against the dense reference
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,lam,seed", [((4, 5), 0.1, 0), ((6, 6), 0.3, 1), ((8, 7), 0.2, 2)])
def test_backends_match_dense_reference(shape, lam, seed):
    m = make_moments(shape, 1, seed)
    ref = dense_reference(m[0].numpy(), shape, S, lam)
    assert ref > 0
    objs = {}
    for name in ALL_BACKENDS:
        opts = {"tol": 1e-7, "max_iter": 200000} if name == "admm" else {}
        sol = solve_tv_batch(m, shape, S, lam, solver=name, **opts)
        assert sol.backend == name
        assert sol.maps.shape == (1, shape[0] * shape[1])
        assert rel(sol.objective[0], ref) <= 1e-6, (name, float(sol.objective[0]), ref)
        assert float(sol.max_violation[0]) <= 1e-7, name
        # the reported objective is ||D g||_1 of the returned map (dense check)
        D = dense_diff(*shape)
        assert rel(np.abs(D @ sol.maps[0].numpy()).sum(), sol.objective[0]) <= 1e-10
        objs[name] = float(sol.objective[0])
    for a in objs:
        for b in objs:
            assert rel(objs[a], objs[b]) <= 2e-6


def test_violation_measure_matches_dense():
    shape, lam = (5, 4), 0.25
    m = make_moments(shape, 1, 7)
    sol = solve_tv_batch(m, shape, S, lam, solver="highs")
    D = dense_diff(*shape)
    p = 20
    pinv_t = np.linalg.pinv(D).T
    sigma = S**2 * (D.T @ D + np.ones((p, p)) / p)
    # perturb the optimum to make it infeasible and compare the measured violation
    rng = np.random.default_rng(0)
    g = sol.maps[0].numpy() + rng.normal(size=p) * np.abs(sol.maps[0].numpy()).max()
    scale = np.abs(pinv_t @ m[0].numpy()).max()
    want = max(0.0, np.abs(pinv_t @ (sigma @ g - m[0].numpy())).max() - lam * scale) / scale
    from captum_leg.solvers import evaluate_maps, make_problem

    _, viol = evaluate_maps(make_problem(m, shape, S, lam), torch.from_numpy(g)[None])
    assert want > 1e-3
    assert abs(float(viol[0]) - want) <= 1e-9 * max(1.0, want)


# ---------------------------------------------------------------------------------------
# the torch solver: batching, certificate, lambdas
# ---------------------------------------------------------------------------------------
def test_admm_batch_matches_per_map_and_highs():
    shape = (12, 10)
    m = make_moments(shape, 4, 3)
    s = torch.tensor([0.02, 0.05, 0.02, 0.1])
    lams = torch.tensor([0.1, 0.3, 0.5, 0.2])
    batch = solve_tv_batch(m, shape, s, lams, solver="admm")
    ref = solve_tv_batch(m, shape, s, lams, solver="highs")
    for i in range(4):
        single = solve_tv_batch(m[i], shape, float(s[i]), float(lams[i]), solver="admm")
        assert rel(batch.objective[i], single.objective[0]) <= 2e-4
        # certified: the returned gap bounds the true suboptimality
        assert batch.rel_gap[i] <= 1e-4
        assert (batch.objective[i] - ref.objective[i]) / batch.objective[i] <= batch.rel_gap[i] + 1e-9
        assert rel(batch.objective[i], ref.objective[i]) <= 1e-4
        assert batch.max_violation[i] <= 1e-9
        assert batch.status[i] == "optimal"


def test_admm_float32_working_precision():
    # the GPU configuration: float32 all the way, still certified and feasible
    shape = (10, 12)
    m = make_moments(shape, 2, 12).float()
    ref = solve_tv_batch(m.double(), shape, S, [0.1, 0.3], solver="highs")
    sol = solve_tv_batch(m, shape, S, [0.1, 0.3], solver="admm", dtype=torch.float32, tol=1e-3)
    assert sol.maps.dtype == torch.float32
    assert torch.all(sol.rel_gap <= 1e-3)
    assert torch.all(sol.max_violation <= 1e-5)
    for i in range(2):
        assert rel(sol.objective[i], ref.objective[i]) <= 2e-3


def test_lambda_sequence_is_monotone():
    shape = (9, 9)
    m = make_moments(shape, 1, 4).expand(5, -1)
    lams = [0.05, 0.1, 0.2, 0.4, 0.8]
    for name in ("highs", "admm"):
        sol = solve_tv_batch(m, shape, S, lams, solver=name)
        obj = sol.objective.numpy()
        # larger lambda = larger feasible set = no larger optimum
        assert np.all(np.diff(obj) <= 1e-6 * obj[:-1]), (name, obj)
        assert obj[-1] < 0.5 * obj[0]
        assert np.all(sol.max_violation.numpy() <= 1e-7)


def test_zero_moment_gives_zero_map():
    shape = (6, 5)
    m = make_moments(shape, 3, 5)
    m[1] = 0
    for name in ALL_BACKENDS:
        sol = solve_tv_batch(m, shape, S, 0.3, solver=name)
        assert torch.all(sol.maps[1] == 0)
        assert sol.status[1] == "zero moment"
        assert float(sol.objective[1]) == 0.0
        assert float(sol.objective[0]) > 0 and float(sol.objective[2]) > 0
    assert np.all(solve_tv(np.zeros(30), shape, S, 0.1, solver="highs") == 0)


def test_grid56_admm_vs_highs():
    shape = (56, 56)
    m = make_moments(shape, 1, 11, n=2000)
    ref = solve_tv_batch(m, shape, S, 0.3, solver="highs")
    sol = solve_tv_batch(m, shape, S, 0.3, solver="admm")
    assert rel(sol.objective[0], ref.objective[0]) <= 1e-4
    assert float(sol.max_violation[0]) <= 1e-5
    assert float(sol.rel_gap[0]) <= 1e-4


# ---------------------------------------------------------------------------------------
# failure paths
# ---------------------------------------------------------------------------------------
def test_iteration_limit_raises_or_returns_inexact():
    shape = (8, 8)
    m = make_moments(shape, 2, 6)
    with pytest.raises(SolverError, match="admm.*iteration limit"):
        solve_tv_batch(m, shape, S, 0.1, solver="admm", max_iter=25, check_every=25)
    sol = solve_tv_batch(
        m, shape, S, 0.1, solver="admm", max_iter=25, check_every=25, accept_inexact=True
    )
    assert sol.status == ["inexact", "inexact"]
    assert torch.all(sol.rel_gap > 1e-4)
    assert torch.all(sol.max_violation <= 1e-9)  # still exactly feasible


def test_highs_time_limit_raises():
    m = make_moments((20, 20), 1, 8)
    with pytest.raises(SolverError, match="highs.*(Time limit|time limit)"):
        solve_tv_batch(m, (20, 20), S, 0.1, solver="highs", time_limit=1e-6)


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
    assert not solver.available()
    assert "licence" in solver.unavailable_reason()
    assert "mosek" not in available_solvers()
    with pytest.raises(SolverError) as err:
        solve_tv_batch(make_moments((4, 4), 1, 0), (4, 4), S, 0.1, solver="mosek")
    msg = str(err.value)
    assert "mosek" in msg and "licence" in msg
    for name in ("highs", "admm", "clarabel"):
        assert name in msg


def test_unknown_solver_lists_available():
    with pytest.raises(ValueError, match="solver.*highs"):
        solve_tv(np.ones(4), (2, 2), S, 0.1, solver="gurobi")


@pytest.mark.parametrize(
    "kwargs,exc,word",
    [
        (dict(moment=np.ones(5)), ValueError, "k1\\*k2"),
        (dict(moment=np.array([1.0, np.nan, 0, 0])), ValueError, "NaN"),
        (dict(noise_level=0.0), ValueError, "noise_level"),
        (dict(noise_level=-1.0), ValueError, "noise_level"),
        (dict(lam=0.0), ValueError, "lam"),
        (dict(lam=1.0), ValueError, "lam"),
        (dict(moment=[1.0, 2.0, 3.0, 4.0]), TypeError, "moment"),
        (dict(grid_shape=(2,)), TypeError, "grid_shape"),
    ],
)
def test_argument_validation(kwargs, exc, word):
    args = dict(moment=np.ones(4), grid_shape=(2, 2), noise_level=S, lam=0.1)
    args.update(kwargs)
    with pytest.raises(exc, match=word):
        solve_tv(args.pop("moment"), args.pop("grid_shape"), **args, solver="highs")


def test_batch_argument_lengths():
    with pytest.raises(ValueError, match="lam"):
        solve_tv_batch(np.ones((3, 4)), (2, 2), S, [0.1, 0.2], solver="highs")


# ---------------------------------------------------------------------------------------
# solve_tv in/out types and auto
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

    out_t = solve_tv(m.float(), shape, S, 0.2, solver="admm")
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    assert out_t.shape == (42,)
    D = dense_diff(*shape)
    assert rel(np.abs(D @ out_t.double().numpy()).sum(), np.abs(D @ ref.numpy()).sum()) <= 2e-4

    out_2d = solve_tv(m.reshape(shape), shape, S, 0.2, solver="highs")
    assert out_2d.shape == (42,)


def test_auto_solves_and_reports_backend():
    shape = (10, 10)
    m = make_moments(shape, 2, 10)
    sol = solve_tv_batch(m, shape, S, [0.1, 0.3], solver="auto")
    ref = solve_tv_batch(m, shape, S, [0.1, 0.3], solver="highs")
    assert sol.backend in available_solvers() and sol.backend != "auto"
    for i in range(2):
        assert rel(sol.objective[i], ref.objective[i]) <= 1e-4
    assert set(ALL_BACKENDS) <= set(available_solvers())


def test_auto_admm_fallback_merges_lp_solutions(monkeypatch):
    # the CUDA path of auto (admm, stragglers re-solved by an LP backend), forced on CPU
    from captum_leg.solvers.auto import AutoSolver

    monkeypatch.setattr(AutoSolver, "choose", lambda self, problem: "admm")
    shape = (8, 9)
    m = make_moments(shape, 3, 13)
    m[1] = 0
    ref = solve_tv_batch(m, shape, S, [0.1, 0.2, 0.3], solver="highs")
    sol = solve_tv_batch(m, shape, S, [0.1, 0.2, 0.3], solver="auto", max_iter=25, check_every=25)
    assert sol.backend.startswith("admm+")
    assert sol.status[1] == "zero moment" and torch.all(sol.maps[1] == 0)
    for i in (0, 2):
        assert "fallback" in sol.status[i]
        assert rel(sol.objective[i], ref.objective[i]) <= 1e-6
        assert float(sol.max_violation[i]) <= 1e-7


def test_highs_prints_nothing(capfd) -> None:
    m = torch.randn(36, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    solve_tv(m, (6, 6), 0.1, 0.2, solver="highs")
    out, err = capfd.readouterr()
    assert out == "" and err == ""
