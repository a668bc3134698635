"""Cost of LEG beyond the model's own forward passes, on images, signals and volumes.

Times ``LEG.attribute`` against the same number of bare batched forward passes on a
pre-built batch, and prints a table per input kind. Target: ratio <= 1.10.

* ``image``: 224 x 224 RGB, grid 28 (``--grid``), a small 2-D CNN;
* ``signal``: ``(1, 2, 4000)``, grid 1000 (``--signal-grid``), a small 1-D CNN;
* ``volume``: ``(1, 1, 32, 32, 32)``, grid 16^3 (``--volume-grid``), a small 3-D CNN.

Each kind runs every estimator of ``--estimators`` (a grid too fine for the dense
regression estimators is reported as such, not run).

    python benchmarks/overhead.py [--cases image,signal,volume] [--n-samples 256]
        [--grid 28] [--signal-grid 1000] [--volume-grid 16] [--estimators ridge,moment]
        [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List, Tuple

import torch

from captum_leg import LEG
from captum_leg.attribution import default_perturbations_per_eval


def small_cnn(dims: int = 2, channels: int = 3, widths: Tuple[int, int] = (16, 32), kernel: int = 3) -> torch.nn.Module:
    """Two strided convolutions, global pooling and a linear layer, over ``dims`` axes."""
    conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[dims]
    pool = {1: torch.nn.AdaptiveAvgPool1d, 2: torch.nn.AdaptiveAvgPool2d, 3: torch.nn.AdaptiveAvgPool3d}[dims]
    torch.manual_seed(0)
    return torch.nn.Sequential(
        conv(channels, widths[0], kernel, stride=2, padding=kernel // 2),
        torch.nn.ReLU(),
        conv(widths[0], widths[1], kernel, stride=2, padding=kernel // 2),
        torch.nn.ReLU(),
        pool(1),
        torch.nn.Flatten(),
        torch.nn.Linear(widths[1], 10),
    ).eval()


def timed(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def run_case(
    name: str,
    model: torch.nn.Module,
    shape: Tuple[int, ...],
    grid: int,
    estimators: List[str],
    args: argparse.Namespace,
    device: torch.device,
) -> None:
    model = model.to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen).to(device)
    leg = LEG(model)
    ppe = args.ppe or default_perturbations_per_eval([x])
    channels = shape[1]
    n_forward = channels * args.n_samples  # antithetic pairs, the default (Gaussian: one more)
    noise = 0.1 * torch.randn(ppe, *shape[1:], generator=gen).to(device)
    batch = x.repeat(ppe, *([1] * (len(shape) - 1))) + noise

    def bare() -> None:
        with torch.no_grad():
            done = 0
            while done < n_forward:
                k = min(ppe, n_forward - done)
                model(batch[:k])
                done += k

    def attribute(**kw) -> None:
        leg.attribute(x, target=3, n_samples=args.n_samples, grid_size=grid,
                      perturbations_per_eval=ppe, seed=0, **kw)

    bare()  # warm-up
    t_bare = timed(bare, args.repeats, device)
    rows: List[Tuple[str, str]] = [("bare forward passes", f"{t_bare:>10.3f}{1.0:>8.3f}")]
    for est in estimators:
        try:
            attribute(estimator=est)  # warm-up (and the grid-size check)
        except ValueError as err:
            rows.append((f"LEG {est}", f"  n/a: {str(err).split(';')[0]}"))
            continue
        variants: Dict[str, Dict[str, object]] = {
            f"LEG {est}": {},
            f"LEG {est} + SE": {"return_standard_error": True},
            f"LEG {est} gaussian": {"sampling": "gaussian"},
        }
        for label, kw in variants.items():
            t = timed(lambda kw=kw: attribute(estimator=est, **kw), args.repeats, device)
            rows.append((label, f"{t:>10.3f}{t / t_bare:>8.3f}"))
    cells = "x".join([str(grid)] * (len(shape) - 2))
    print(f"\n{name}: input {tuple(shape)} grid {cells} n={args.n_samples}/channel "
          f"forward passes={n_forward} ppe={ppe}")
    print(f"{'what':<28}{'time [s]':>10}{'ratio':>8}")
    for label, text in rows:
        print(f"{label:<28}{text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="image,signal,volume")
    ap.add_argument("--n-samples", type=int, default=256)
    ap.add_argument("--grid", type=int, default=28, help="image grid (cells per axis)")
    ap.add_argument("--signal-grid", type=int, default=1000)
    ap.add_argument("--volume-grid", type=int, default=16)
    ap.add_argument("--estimators", default="ridge,moment")
    ap.add_argument("--ppe", type=int, default=None, help="perturbations_per_eval (default: LEG's for the input)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    estimators = [e for e in args.estimators.split(",") if e]
    cases = {
        "image": (lambda: small_cnn(2, 3), (1, 3, 224, 224), args.grid),
        "signal": (lambda: small_cnn(1, 2, kernel=7), (1, 2, 4000), args.signal_grid),
        "volume": (lambda: small_cnn(3, 1, widths=(8, 16)), (1, 1, 32, 32, 32), args.volume_grid),
    }
    print(f"device={device} threads={torch.get_num_threads()}")
    for name in args.cases.split(","):
        if name not in cases:
            raise SystemExit(f"--cases: unknown case {name!r}; choose from {sorted(cases)}")
        make, shape, grid = cases[name]
        run_case(name, make(), shape, grid, estimators, args, device)


if __name__ == "__main__":
    main()
