"""Benchmark the LEG-TV LP backends on realistic instances.

Instances: a piecewise-constant ``g_true`` (random rectangles) on a ``k x k`` grid, moments
``m = Sigma g_true + sqrt(g_true^T Sigma g_true) * Sigma^{1/2} z / sqrt(n)`` (the sampling
noise of the Monte-Carlo moment with ``n`` samples, ``Sigma^{1/2} z`` drawn exactly by
``Grid.sample_standard``), ``lam`` alternating over ``{0.1, 0.3}``.

Usage::

    python benchmarks/solvers.py                       # grids 28 56 112, all backends
    python benchmarks/solvers.py --grids 28 --batch 16 --backends admm highs
    python benchmarks/solvers.py --with-224            # add grid 224
    python benchmarks/solvers.py --device cuda --backends admm --reference admm

The table reports the wall time per batch and per map, the largest relative objective
gap to the reference backend (default ``highs``), the largest relative constraint
violation and the largest certified duality gap (``nan`` when the backend has none).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import List, Sequence

import torch

from captum_leg.grid import get_grid
from captum_leg.solvers import SolverError, available_solvers, solve_tv_batch


def make_instances(
    k: int, batch: int, noise_level: float = 0.02, n: int = 2000, seed: int = 0,
    device: str = "cpu",
) -> torch.Tensor:
    """``(batch, k*k)`` realistic moments (see module docstring), float64 on ``device``."""
    gen = torch.Generator().manual_seed(seed)
    grid = get_grid(k, k)
    out = []
    for _ in range(batch):
        g = torch.zeros(k, k, dtype=torch.float64)
        for _ in range(4):
            a, b = sorted(torch.randint(0, k, (2,), generator=gen).tolist())
            c, d = sorted(torch.randint(0, k, (2,), generator=gen).tolist())
            g[a : b + 1, c : d + 1] += float(torch.randn(1, generator=gen))
        sg = grid.covariance(g, noise_level)
        std_y = math.sqrt(float((g * sg).sum()))
        noise = noise_level * grid.sample_standard(1, gen)[0] * std_y / math.sqrt(n)
        out.append((sg + noise).flatten())
    return torch.stack(out).to(device)


def run(grids: Sequence[int], backends: Sequence[str], batch: int, reference: str,
        device: str, time_limit: float | None) -> List[dict]:
    rows = []
    for name in set(backends) | {reference}:  # exclude one-off imports/initialisation
        try:
            solve_tv_batch(make_instances(4, 1, device=device), (4, 4), 0.02, 0.1, solver=name)
        except SolverError:
            pass
    lams = torch.tensor([0.1, 0.3] * ((batch + 1) // 2))[:batch]
    for k in grids:
        m = make_instances(k, batch, device=device)
        names = [reference] + [b for b in backends if b != reference]
        ref_obj = None
        for name in names:
            opts = {} if time_limit is None else {"time_limit": time_limit}
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            try:
                sol = solve_tv_batch(m, (k, k), 0.02, lams, solver=name, **opts)
            except SolverError as exc:
                print(f"{name:>9} grid {k}: FAILED: {exc}", flush=True)
                continue
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if name == reference:
                ref_obj = sol.objective
            gap = (
                float(((sol.objective - ref_obj).abs() / ref_obj.abs().clamp(min=1e-300)).max())
                if ref_obj is not None else math.nan
            )
            row = dict(
                backend=sol.backend if name != "auto" else f"auto->{sol.backend}", grid=k,
                batch=batch, t_batch=dt, t_map=dt / batch, obj_gap=gap,
                viol=float(sol.max_violation.max()), cert=float(sol.rel_gap.max()),
            )
            rows.append(row)
            print(_fmt(row), flush=True)
    return rows


def _fmt(r: dict) -> str:
    return (
        f"{r['backend']:>15} {r['grid']:>5} {r['batch']:>6} {r['t_batch']:>10.3f} "
        f"{r['t_map']:>10.3f} {r['obj_gap']:>12.2e} {r['viol']:>10.1e} {r['cert']:>10.1e}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", type=int, nargs="+", default=[28, 56, 112])
    ap.add_argument("--with-224", action="store_true", help="also run grid 224")
    ap.add_argument("--backends", nargs="+", default=None,
                    help="default: every available backend except mosek-less ones, plus auto")
    ap.add_argument("--batch", type=int, default=2, help="maps per call (lam alternates 0.1/0.3)")
    ap.add_argument("--reference", default="highs", help="backend the objective gap is measured to")
    ap.add_argument("--device", default="cpu", help="device of the moments (cpu, cuda, ...)")
    ap.add_argument("--time-limit", type=float, default=None, help="per-backend time limit (s)")
    args = ap.parse_args(argv)
    grids = list(args.grids) + ([224] if args.with_224 and 224 not in args.grids else [])
    backends = args.backends or [b for b in available_solvers() if b != "torch"]
    print(f"torch threads {torch.get_num_threads()}, device {args.device}, available: "
          f"{', '.join(available_solvers())}")
    print(f"{'backend':>15} {'grid':>5} {'batch':>6} {'s/batch':>10} {'s/map':>10} "
          f"{'obj gap':>12} {'viol':>10} {'cert gap':>10}")
    run(grids, backends, args.batch, args.reference, args.device, args.time_limit)


if __name__ == "__main__":
    main()
