"""What half-precision inputs do to a LEG map: error against the known gradient vs the
standard error the call reports, for float32, float16 and bfloat16.

A linear model ``<w, x>`` run in the input's dtype (its exact gradient is ``w`` averaged
over cells) and inputs around 0 (ImageNet-normalised scale) or around 20. LEG's noise
and differences are computed in float32 or better; the model sees ``x0 + X`` rounded to
its dtype, and its output is rounded too: that rounding is the only error source here.

    python benchmarks/half_precision.py [--seeds 10] [--n-samples 1000] [--grid 8]
"""

from __future__ import annotations

import argparse
import warnings

import torch

from captum_leg import LEG


def measure(dtype: torch.dtype, offset: float, seed: int, args: argparse.Namespace) -> tuple:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 32, 32, generator=g) / 32
    x = (offset + torch.randn(1, 3, 32, 32, generator=g)).to(dtype)
    model = lambda t: (t * w.to(t.dtype)).flatten(1).sum(1, keepdim=True)  # noqa: E731
    leg = LEG(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        attr, se = leg.attribute(x, target=0, n_samples=args.n_samples, grid_size=args.grid, seed=seed,
                                 return_standard_error=True)
    k = args.grid
    truth = w.double().reshape(3, k, 32 // k, k, 32 // k).mean((2, 4)).repeat_interleave(32 // k, 1).repeat_interleave(32 // k, 2)
    err = attr[0].double() - truth
    z = err / se[0].double()
    return (float(err.norm() / truth.norm()), float(leg.last_run.relative_standard_error[0]),
            float(z.pow(2).mean().sqrt()), float((z.abs() <= 2).double().mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--grid", type=int, default=8)
    args = ap.parse_args()
    print("| input dtype | inputs around | relative error | reported relative SE | z-rms | 2-SE coverage |")
    print("|---|---|---|---|---|---|")
    for offset in (0.0, 20.0):
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            rows = torch.tensor([measure(dtype, offset, s, args) for s in range(args.seeds)])
            m = rows.mean(0)
            print(f"| {str(dtype).split('.')[-1]} | {offset:g} | {m[0]:.4f} | {m[1]:.4f} | {m[2]:.2f} | {m[3]:.3f} |")


if __name__ == "__main__":
    main()
