"""Benchmark the LEG-TV LP backends on realistic instances; print the issue-10 targets.

Instances (what LEG produces): a piecewise-smooth ``g_true`` on the grid (random boxes
with random heights plus a smooth bump), moments
``m = Sigma g_true + sqrt(g_true^T Sigma g_true) * Sigma^{1/2} z / sqrt(n)`` (the sampling
noise of the Monte-Carlo moment with ``n`` samples; ``Sigma^{1/2} z`` drawn exactly by
``Grid.sample_standard``), ``lam`` alternating over ``{0.1, 0.3}``.

Usage::

    python benchmarks/solvers.py                          # grids 28 56 112, all backends
    python benchmarks/solvers.py --grids 28 --batch 16 --backends torch highs
    python benchmarks/solvers.py --with-224 --backends torch clarabel
    python benchmarks/solvers.py --targets                # the issue-10 target table
    python benchmarks/solvers.py --device cuda --backends torch --reference torch

``--threads N`` sets this benchmark process's torch threads (the library never does).
The table gives wall time per batch and per map, CPU time per map, mean/max iterations,
the largest relative objective gap to the reference backend (default ``highs``), the
largest relative constraint violation and the largest certified duality gap.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from captum_leg.grid import get_grid
from captum_leg.solvers import SolverError, available_backends, available_solvers, solve_tv_batch

#: issue 10, CPU with 2 cores: (grid, batch, seconds per map) for the torch backend
CPU_TARGETS = ((28, 16, 0.05), (112, 2, 2.0), (224, 1, 30.0))


def make_instances(
    shape: Sequence[int] | int,
    batch: int,
    noise_level: float = 0.02,
    n: int = 2000,
    seed: int = 0,
    device: str = "cpu",
) -> torch.Tensor:
    """``(batch, p)`` realistic moments on a grid of any shape (see the module docstring)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    gen = torch.Generator().manual_seed(seed)
    grid = get_grid(shape)
    coords = torch.meshgrid(
        *[torch.linspace(0, 1, k, dtype=torch.float64) for k in shape], indexing="ij"
    )
    out = []
    for _ in range(batch):
        g = torch.zeros(shape, dtype=torch.float64)
        for _ in range(4):
            box = []
            for k in shape:
                a, b = sorted(torch.randint(0, k, (2,), generator=gen).tolist())
                box.append(slice(a, b + 1))
            g[tuple(box)] += float(torch.randn(1, generator=gen))
        centre = torch.rand(len(shape), generator=gen, dtype=torch.float64)
        dist2 = sum((x - c) ** 2 for x, c in zip(coords, centre))
        g += 0.5 * float(torch.randn(1, generator=gen)) * torch.exp(-dist2 / 0.05)
        sg = grid.covariance(g, noise_level)
        std_y = math.sqrt(float((g * sg).sum()))
        noise = noise_level * grid.sample_standard(1, gen)[0] * std_y / math.sqrt(n)
        out.append((sg + noise).flatten())
    return torch.stack(out).to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(
    grids: Sequence[int],
    backends: Sequence[str],
    batch: Dict[int, int],
    reference: Optional[str],
    device: str,
    time_limit: Optional[float],
) -> List[dict]:
    rows = []
    names = ([reference] if reference else []) + [b for b in backends if b != reference]
    for name in names:  # exclude one-off imports/initialisation
        try:
            solve_tv_batch(make_instances((4, 4), 1, device=device), (4, 4), 0.02, 0.1, solver=name)
        except SolverError:
            pass
    for k in grids:
        B = batch[k]
        m = make_instances((k, k), B, device=device)
        lams = torch.tensor([0.1, 0.3] * ((B + 1) // 2))[:B]
        ref_obj = None
        for name in names:
            opts = {} if time_limit is None else {"time_limit": time_limit}
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                sol = solve_tv_batch(m, (k, k), 0.02, lams, solver=name, **opts)
            except SolverError as exc:
                print(f"{name:>9} grid {k}: FAILED: {exc}", flush=True)
                continue
            _sync(device)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            if name == reference:
                ref_obj = sol.objective
            gap = (
                float(((sol.objective - ref_obj).abs() / ref_obj.abs().clamp(min=1e-300)).max())
                if ref_obj is not None else math.nan
            )
            it = torch.tensor(sol.iterations, dtype=torch.float64)
            row = dict(
                backend=sol.backend if name != "auto" else f"auto->{sol.backend}", grid=k,
                batch=B, t_batch=dt, t_map=dt / B, cpu_map=cpu / B, it_mean=float(it.mean()),
                it_max=int(it.max()), obj_gap=gap, viol=float(sol.max_violation.max()),
                cert=float(sol.rel_gap.max()),
            )
            rows.append(row)
            print(_fmt(row), flush=True)
    return rows


HEADER = (
    f"{'backend':>15} {'grid':>5} {'batch':>6} {'s/batch':>9} {'s/map':>9} {'cpu s/map':>9} "
    f"{'iters':>11} {'obj gap':>9} {'viol':>8} {'cert gap':>8}"
)


def _fmt(r: dict) -> str:
    its = f"{r['it_mean']:.0f}/{r['it_max']}"
    return (
        f"{r['backend']:>15} {r['grid']:>5} {r['batch']:>6} {r['t_batch']:>9.3f} "
        f"{r['t_map']:>9.3f} {r['cpu_map']:>9.3f} {its:>11} {r['obj_gap']:>9.1e} "
        f"{r['viol']:>8.0e} {r['cert']:>8.1e}"
    )


def targets(backend: str, device: str) -> List[Tuple[str, bool]]:
    """Run the issue-10 CPU targets for ``backend`` and print pass/fail per target."""
    out = []
    print(f"\nissue-10 targets, backend {backend!r} on {device} "
          f"(torch threads {torch.get_num_threads()}):")
    for k, B, limit in CPU_TARGETS:
        rows = run([k], [backend], {k: B}, None, device, None)
        ok = bool(rows) and rows[-1]["t_map"] <= limit and rows[-1]["cert"] <= 1e-4
        line = (f"grid {k} batch {B}: {rows[-1]['t_map']:.3f} s/map, iterations "
                f"{rows[-1]['it_mean']:.0f} mean / {rows[-1]['it_max']} max (target <= {limit} s)"
                if rows else f"grid {k}: failed")
        print(f"  [{'ok' if ok else 'MISSED'}] {line}", flush=True)
        out.append((line, ok))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", type=int, nargs="+", default=[28, 56, 112])
    ap.add_argument("--with-224", action="store_true", help="also run grid 224")
    ap.add_argument("--backends", nargs="+", default=None,
                    help="default: every available backend (no aliases), plus auto")
    ap.add_argument("--batch", type=int, default=None,
                    help="maps per call (lam alternates 0.1/0.3); default 16 at grid 28, 1 at 224, else 2")
    ap.add_argument("--reference", default="highs",
                    help="backend the objective gap is measured to ('none' to skip)")
    ap.add_argument("--device", default="cpu", help="device of the moments (cpu, cuda, ...)")
    ap.add_argument("--time-limit", type=float, default=None, help="per-call time limit (s)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads for this benchmark process")
    ap.add_argument("--targets", action="store_true",
                    help="run the issue-10 target table for the torch backend")
    args = ap.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, "
          f"load average {load:.1f}, device {args.device}, available: "
          f"{', '.join(available_solvers())}")
    if args.targets:
        targets("torch", args.device)
        return
    grids = list(args.grids) + ([224] if args.with_224 and 224 not in args.grids else [])
    backends = args.backends or [*available_backends(), "auto"]
    batch = {k: args.batch or (16 if k <= 28 else 1 if k >= 224 else 2) for k in grids}
    reference = None if args.reference == "none" else args.reference
    print(HEADER)
    run(grids, backends, batch, reference, args.device, args.time_limit)


if __name__ == "__main__":
    main()
