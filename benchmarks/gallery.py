"""Write the README / docs gallery: photo | LEG | LEG-TV | IntegratedGradients.

EfficientNet-Lite0 (``captum_leg.models``, offline weights) on ``skimage.data.chelsea()``,
explaining the top class. Each map is shown as the mean over channels of its absolute
value (the LEG reference's RGB picture) in the "overlay" style.

Run from the repository root (about 5-8 minutes on 2 CPU cores at the defaults)::

    python benchmarks/gallery.py                          # writes docs/_static/gallery.png
    python benchmarks/gallery.py --n-samples 50 --out /tmp/gallery.png   # quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import List, Optional

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from captum.attr import IntegratedGradients  # noqa: E402

from captum_leg import LEG  # noqa: E402
from captum_leg.models import load_efficientnet_lite0, preprocess, unnormalize  # noqa: E402
from captum_leg.visualization import visualize_saliency_multiple  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "_static" / "gallery.png"


def main(argv: Optional[List[str]] = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=500, help="LEG samples per channel")
    parser.add_argument("--grid-size", type=int, default=14,
                        help="LEG cells per side (14: a 28 x 28 grid is at noise level at n = 500 "
                        "on this model, see docs/method.md)")
    parser.add_argument("--lam", type=float, default=0.3, help="LEG-TV lambda")
    parser.add_argument("--ig-steps", type=int, default=50, help="IntegratedGradients steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)

    from skimage import data

    torch.manual_seed(args.seed)
    model = load_efficientnet_lite0()
    x = preprocess(data.chelsea())
    with torch.no_grad():
        target = int(model(x).argmax())

    maps = {}
    start = time.perf_counter()
    leg = LEG(model)
    maps[f"LEG (n={args.n_samples})"] = leg.attribute(
        x, target=target, n_samples=args.n_samples, seed=args.seed, grid_size=args.grid_size,
        sampling="antithetic",
    )
    maps[f"LEG-TV (λ={args.lam})"] = leg.attribute(
        x, target=target, n_samples=args.n_samples, seed=args.seed, penalty="tv", lam=args.lam,
        grid_size=args.grid_size, sampling="antithetic"
    )
    maps[f"IG ({args.ig_steps} steps)"] = IntegratedGradients(model).attribute(
        x, baselines=0.0, target=target, n_steps=args.ig_steps, internal_batch_size=16
    ).detach()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    visualize_saliency_multiple(
        maps, unnormalize(x), style="overlay", sign="absolute_value",
        channel_reduction="mean_abs", cmap="jet", alpha_overlay=0.7,
        image_title=f"photo (class {target})",
        panel_size=3.0, save_path=args.out, dpi=args.dpi,
    )
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")
    return args.out


if __name__ == "__main__":
    main()
