"""Cost of LEG beyond the model's own forward passes.

Times ``LEG.attribute`` (224 x 224 RGB, grid 28, n=256 per channel, a small CNN) against
the same number of bare batched forward passes on a pre-built batch, and prints a table.
Target: ratio <= 1.10.

    python benchmarks/overhead.py [--n-samples 256] [--grid 28] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from captum_leg import LEG


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()


def timed(fn, repeats: int, device: torch.device) -> float:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-samples", type=int, default=256)
    ap.add_argument("--grid", type=int, default=28)
    ap.add_argument("--ppe", type=int, default=64, help="perturbations_per_eval")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = small_cnn().to(device)
    x = torch.randn(1, 3, 224, 224, device=device)
    leg = LEG(model)
    n_forward = 3 * args.n_samples + 1
    batch = x.repeat(args.ppe, 1, 1, 1) + 0.1 * torch.randn(args.ppe, 3, 224, 224, device=device)

    def bare() -> None:
        with torch.no_grad():
            done = 0
            while done < n_forward:
                k = min(args.ppe, n_forward - done)
                model(batch[:k])
                done += k

    def attribute(**kw) -> None:
        leg.attribute(x, target=3, n_samples=args.n_samples, grid_size=args.grid,
                      perturbations_per_eval=args.ppe, seed=0, **kw)

    bare()  # warm-up
    attribute()
    t_bare = timed(bare, args.repeats, device)
    rows = [("bare forward passes", t_bare)]
    rows.append(("LEG", timed(attribute, args.repeats, device)))
    rows.append(("LEG + standard error", timed(lambda: attribute(return_standard_error=True), args.repeats, device)))
    rows.append(("LEG antithetic", timed(lambda: attribute(sampling="antithetic"), args.repeats, device)))
    print(f"device={device} threads={torch.get_num_threads()} grid={args.grid} "
          f"n={args.n_samples}/channel forward passes={n_forward} ppe={args.ppe}")
    print(f"{'what':<24}{'time [s]':>10}{'ratio':>8}")
    for name, t in rows:
        print(f"{name:<24}{t:>10.3f}{t / t_bare:>8.3f}")


if __name__ == "__main__":
    main()
