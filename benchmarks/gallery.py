"""Write the README / docs gallery: photo | LEG | LEG-TV | IntegratedGradients.

EfficientNet-Lite0 (``captum_leg.models``, offline weights) on ``skimage.data.chelsea()``,
explaining the top class. Each map is shown as the mean over channels of its absolute
value (the LEG reference's RGB picture) in the "overlay" style.

LEG runs at the library's defaults (6000 forward passes), LEG-TV on the same samples.
Run from the repository root (about 5-10 minutes on 2 CPU cores)::

    python benchmarks/gallery.py                          # writes docs/_static/gallery.png
    python benchmarks/gallery.py --n-samples 200 --out /tmp/gallery.png   # quick look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import List, Optional

import torch
from captum.attr import IntegratedGradients

from captum_leg import LEG
from captum_leg.models import load_efficientnet_lite0, preprocess, unnormalize
from captum_leg.visualization import visualize_saliency_multiple

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "_static" / "gallery.png"


def main(argv: Optional[List[str]] = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=None, help="LEG samples per channel (default: LEG's)")
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
    # The defaults; lam 0 is the estimate itself, so both maps share one set of samples.
    kw = {} if args.n_samples is None else {"n_samples": args.n_samples}
    path = leg.attribute_tv_path(x, target=target, lams=[0.0, args.lam], seed=args.seed, **kw)
    run = leg.last_run
    maps[f"LEG (n={run.samples_per_channel})"] = path[0]
    maps[f"LEG-TV (λ={args.lam})"] = path[1]
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
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s; LEG: {run.forward_passes} forward "
          f"passes, {run.seconds:.0f} s")
    return args.out


if __name__ == "__main__":
    main()
