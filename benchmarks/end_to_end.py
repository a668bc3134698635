"""End to end: one LEG-TV map of ``skimage.data.chelsea()`` by EfficientNet-Lite0.

Prints the time of ``LEG.attribute(..., penalty="tv")`` at n=500 per channel next to the
time of its forward passes alone (3 * 500 + 1 on the same batch size). Reference point:
the original research code, patched to use HiGHS, took 209 s on the 2-core CI machine.
Target: within 15 % of the forward passes.

    python benchmarks/end_to_end.py [--n-samples 500] [--lam 0.1] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import skimage.data
import torch

from captum_leg import LEG
from captum_leg.models import load_efficientnet_lite0, preprocess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--grid", type=int, default=28)
    ap.add_argument("--lam", type=float, nargs="+", default=[0.1])
    ap.add_argument("--ppe", type=int, default=64, help="perturbations_per_eval")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    model = load_efficientnet_lite0(device)
    x = preprocess(skimage.data.chelsea(), device=device)
    with torch.no_grad():
        target = int(model(x).argmax())
    n_forward = 3 * args.n_samples + 1
    batch = x.repeat(args.ppe, 1, 1, 1)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        model(batch)  # warm-up
        sync()
        t0 = time.perf_counter()
        done = 0
        while done < n_forward:
            k = min(args.ppe, n_forward - done)
            model(batch[:k])
            done += k
        sync()
        t_forward = time.perf_counter() - t0

    rows = [("forward passes alone", t_forward, "")]
    for penalty in (None, "tv"):
        sync()
        t0 = time.perf_counter()
        tv = {} if penalty is None else dict(lam=args.lam if len(args.lam) > 1 else args.lam[0])
        attr = LEG(model).attribute(
            x, target=target, n_samples=args.n_samples, grid_size=args.grid, penalty=penalty,
            perturbations_per_eval=args.ppe, seed=0, **tv,
        )
        sync()
        name = "LEG" if penalty is None else f"LEG-TV lam={args.lam}"
        rows.append((name, time.perf_counter() - t0, f"{tuple(attr.shape)}"))
    print(f"device={device} threads={torch.get_num_threads()} target={target} "
          f"n={args.n_samples}/channel forward passes={n_forward} grid={args.grid}")
    print(f"{'what':<28}{'time [s]':>10}{'ratio':>8}  output")
    for name, t, shape in rows:
        print(f"{name:<28}{t:>10.2f}{t / t_forward:>8.3f}  {shape}")


if __name__ == "__main__":
    main()
