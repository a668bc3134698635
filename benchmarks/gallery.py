"""Write the README / docs gallery: photo | LEG (significant cells outlined) | LEG-TV | IntegratedGradients.

EfficientNet-Lite0 (``captum_leg.models``, offline weights) on ``skimage.data.chelsea()``,
explaining the top class. The picture is the demo's (``captum-leg demo``): each map as
the absolute value of its sum over channels, over the photo ("overlay" style), with
LEG's cells that are non-zero at a false-discovery rate of 5% (Benjamini-Hochberg on the
channels' sum, one test per cell) outlined.

LEG runs at the library's defaults (1000 perturbations per channel: 3000 forward
passes), LEG-TV on the same samples, IntegratedGradients with 50 steps from the mean
image. The PNG is written with a 256-colour palette to keep it small. Run from the
repository root (about 2 to 3 minutes on 2 CPU cores)::

    python benchmarks/gallery.py                          # writes docs/_static/gallery.png
    python benchmarks/gallery.py --n-samples 200 --out /tmp/gallery.png   # quick look
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path
from typing import List, Optional

import torch
from captum.attr import IntegratedGradients
from matplotlib.figure import Figure
from PIL import Image

from captum_leg import LEG
from captum_leg.cli.demo import comparison_figure
from captum_leg.models import load_efficientnet_lite0, preprocess, unnormalize
from captum_leg.significance import DEFAULT_FDR, significant_cells

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "_static" / "gallery.png"


def main(argv: Optional[List[str]] = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=None, help="LEG samples per channel (default: LEG's)")
    parser.add_argument("--lam", type=float, default=0.3, help="LEG-TV lambda")
    parser.add_argument("--ig-steps", type=int, default=50, help="IntegratedGradients steps")
    parser.add_argument("--fdr", type=float, default=DEFAULT_FDR, help="false-discovery rate of the outlined cells")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)

    from skimage import data

    model = load_efficientnet_lite0()
    x = preprocess(data.chelsea())
    with torch.no_grad():
        target = int(model(x).argmax())

    start = time.perf_counter()
    leg = LEG(model)
    # The defaults; lam 0 is the estimate itself, so both maps share one set of samples.
    kw = {} if args.n_samples is None else {"n_samples": args.n_samples}
    path, se = leg.attribute_tv_path(
        x, target=target, lams=[0.0, args.lam], return_standard_error=True, seed=args.seed, **kw)
    run = leg.last_run
    sig = significant_cells(path[0], se, fdr=args.fdr, combine="sum")
    ig_start = time.perf_counter()
    ig = IntegratedGradients(model).attribute(
        x, baselines=0.0, target=target, n_steps=args.ig_steps, internal_batch_size=10
    ).detach()
    ig_seconds = time.perf_counter() - ig_start
    maps = {
        f"LEG ({run.forward_passes} forward)\n{int(sig.n_significant[0, 0])} of {sig.n_cells} cells outlined": path[0, 0],
        f"LEG-TV (λ={args.lam})\n(the same samples)": path[1, 0],
        f"IntegratedGradients\n({args.ig_steps} forward + backward)": ig[0],
    }
    title = f"EfficientNet-Lite0, class {target}; outlined: LEG's cells non-zero at FDR {args.fdr:.0%}"
    fig = comparison_figure(unnormalize(x)[0].permute(1, 2, 0).numpy(), maps, sig.mask[0], title)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _save_palette_png(fig, args.out, args.dpi)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - start:.0f} s; "
          f"LEG: {run.forward_passes} forward passes, {run.seconds:.0f} s; "
          f"IG: {args.ig_steps} forward and backward passes, {ig_seconds:.0f} s")
    return args.out


def _save_palette_png(fig: Figure, out: Path, dpi: int) -> None:
    """``fig`` as an 8-bit palette PNG: a third of the size of matplotlib's RGBA file."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    buf.seek(0)
    with Image.open(buf) as im:
        im.convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)


if __name__ == "__main__":
    main()
