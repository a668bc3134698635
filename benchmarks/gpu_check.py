"""One prepared run of the GPU checks of issue 10: CUDA tests, then the GPU table.

Meant for a machine with an NVIDIA GPU (CI has none). Without CUDA it says so and exits
0 after the CPU-safe self-check (``--self-check`` runs only that), so the script itself
is tested on CPU. Steps, each timed, with a summary at the end:

1. the CUDA tests (``pytest -k cuda tests/test_solvers.py``);
2. ``solve_tv_batch``, 64 maps at grid 28, ``torch`` on the GPU (target <= 1 s);
3. one map at grid 224, ``torch`` on the GPU (target <= 10 s);
4. LEG-TV for 16 images x 2 lambdas vs LEG's own time (target <= 1.5x), with
   EfficientNet-Lite0 when the ``models`` extra is installed, else a small CNN;
5. optional (``--full``): ``benchmarks/solvers.py`` on CUDA at grids 28-224.

Usage::

    python benchmarks/gpu_check.py              # steps 1-4
    python benchmarks/gpu_check.py --full       # and step 5
    python benchmarks/gpu_check.py --self-check # CPU-safe parts only
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]


def _benchmarks_solvers():
    spec = importlib.util.spec_from_file_location("_bench_solvers", ROOT / "benchmarks" / "solvers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_solver(device: str, grid: int, batch: int, dtype: torch.dtype = torch.float64,
                repeats: int = 2) -> Tuple[float, dict]:
    """Seconds of ``solve_tv_batch`` with ``torch`` on ``device`` (best of ``repeats``)."""
    from captum_leg.solvers import solve_tv_batch

    bench = _benchmarks_solvers()
    m = bench.make_instances((grid, grid), batch, device=device)
    lams = torch.tensor([0.1, 0.3] * ((batch + 1) // 2))[:batch]
    best, info = float("inf"), {}
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        sol = solve_tv_batch(m, (grid, grid), 0.02, lams, solver="torch", dtype=dtype)
        _sync(device)
        seconds = time.perf_counter() - t0
        if seconds < best:
            its = torch.tensor(sol.iterations, dtype=torch.float64)
            best, info = seconds, dict(
                it_mean=float(its.mean()), it_max=int(its.max()),
                gap=float(sol.rel_gap.max()), viol=float(sol.max_violation.max()),
            )
    return best, info


def leg_tv_vs_leg(device: str, n_images: int = 16, n_samples: int = 500) -> Tuple[float, float, str]:
    """Seconds of LEG and of LEG-TV (lam 0.1 and 0.3) on ``n_images`` images."""
    from captum_leg import LEG

    try:
        from captum_leg.models import load_efficientnet_lite0

        model, what = load_efficientnet_lite0(torch.device(device)), "EfficientNet-Lite0"
    except Exception as exc:  # the models extra is optional
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 5, stride=2), torch.nn.ReLU(),
            torch.nn.Conv2d(16, 32, 5, stride=2), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10),
        ).to(device).eval()
        what = f"small CNN ({type(exc).__name__}: no EfficientNet-Lite0)"
    x = torch.randn(n_images, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    leg = LEG(model)
    kw = dict(target=0, n_samples=n_samples, seed=0)
    leg.attribute(x[:1], n_samples=8, target=0, seed=0)  # warm-up
    times = []
    for call in (lambda: leg.attribute(x, **kw), lambda: leg.attribute_tv_path(x, lams=[0.1, 0.3], solver="auto", **kw)):
        _sync(device)
        t0 = time.perf_counter()
        call()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times[0], times[1], what


def self_check() -> None:
    """The CPU-safe parts: instance generation and a tiny timed solve on the CPU."""
    seconds, info = time_solver("cpu", 8, 4, repeats=1)
    assert info["gap"] <= 1e-4 and info["viol"] <= 1e-9, info
    print(f"self-check ok: 4 maps at grid 8 on cpu in {seconds:.2f} s, {info}")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="also run benchmarks/solvers.py on CUDA")
    ap.add_argument("--self-check", action="store_true", help="only the CPU-safe parts")
    ap.add_argument("--n-samples", type=int, default=500, help="LEG samples per channel (step 4)")
    args = ap.parse_args(argv)
    self_check()
    if args.self_check:
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device: the GPU checks were skipped")
        return 0
    dev = "cuda"
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    py = sys.executable
    summary: List[Tuple[str, str, float]] = []

    def step(name: str, fn: Callable[[], str]) -> None:
        print(f"\n=== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # keep going: one prepared run should report everything
            result = f"FAILED: {type(exc).__name__}: {exc}"
        print(result, flush=True)
        summary.append((name, result, time.perf_counter() - t0))

    def cuda_tests() -> str:
        rc = subprocess.call([py, "-m", "pytest", "-q", "-k", "cuda", "tests/test_solvers.py"], cwd=ROOT)
        return "ok" if rc == 0 else f"FAILED (pytest exit {rc})"

    def batch64(dtype: torch.dtype) -> Callable[[], str]:
        def run() -> str:
            s, info = time_solver(dev, 28, 64, dtype)
            return f"{s:.3f} s for 64 maps ({s / 64 * 1e3:.1f} ms/map; target <= 1 s), {info}"
        return run

    def one224() -> str:
        s, info = time_solver(dev, 224, 1, repeats=1)
        return f"{s:.2f} s (target <= 10 s), {info}"

    def leg_tv() -> str:
        t_leg, t_tv, what = leg_tv_vs_leg(dev, n_samples=args.n_samples)
        return (f"{what}: LEG {t_leg:.2f} s, LEG-TV (2 lambdas) {t_tv:.2f} s, "
                f"ratio {t_tv / t_leg:.2f} (target <= 1.5)")

    step("CUDA tests", cuda_tests)
    step("64 maps, grid 28, float64", batch64(torch.float64))
    step("64 maps, grid 28, float32", batch64(torch.float32))
    step("1 map, grid 224, float64", one224)
    step("LEG-TV 16 images x 2 lambdas vs LEG", leg_tv)
    if args.full:
        def full() -> str:
            rc = subprocess.call([py, "benchmarks/solvers.py", "--device", "cuda", "--grids", "28",
                                  "56", "112", "224", "--backends", "torch", "--reference", "none"],
                                 cwd=ROOT)
            return "ok" if rc == 0 else f"FAILED ({rc})"
        step("benchmarks/solvers.py on CUDA", full)
    print("\n=== summary")
    for name, result, seconds in summary:
        print(f"{name:<38} {seconds:7.1f} s  {result}")
    return int(any(r.startswith("FAILED") for _, r, _ in summary))


if __name__ == "__main__":
    sys.exit(main())
