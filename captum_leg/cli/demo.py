"""``captum-leg demo``: LEG, LEG-TV and IntegratedGradients of skimage's cat photo with the
built-in EfficientNet-Lite0, in one picture, with LEG's significant cells outlined and
what each method cost."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, NamedTuple, Tuple, cast

import numpy as np
import torch
from torch import Tensor, nn

from captum_leg.cli.console import log
from captum_leg.cli.images import unit_image
from captum_leg.cli.options import size_options
from captum_leg.cli.outputs import FigureSaver, save_figure
from captum_leg.cli.sharding import device_and_shard

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from captum_leg.significance import CellSignificance

#: The lambdas pictured: 0 is the LEG estimate itself, then two LEG-TV maps.
_LAMS = (0.0, 0.1, 0.3)
#: IntegratedGradients' steps: as many forward and backward passes (the README gallery's).
IG_STEPS = 50
#: IntegratedGradients' examples per forward-backward call, small enough for 2 GB of RAM.
_IG_BATCH = 10
#: The false-discovery rate of the outlined cells.
FDR = 0.05


class Cost(NamedTuple):
    """What one attribution spent on one image."""

    forward_passes: int
    backward_passes: int
    seconds: float


def run(args: argparse.Namespace, save_figure: FigureSaver = save_figure) -> int:
    """The ``demo`` command; returns its exit status."""
    from captum_leg.significance import significant_cells

    photo = _cat_photo()
    device, _ = device_and_shard(args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, x, cls, p = _classify(photo, device)
    log(f"predicted class {cls} (p = {p:.3f}); model loaded in {time.perf_counter() - t0:.1f} s")
    path, se, leg_cost, rse = _leg(model, x, cls, args)
    # one test per cell of the channels' sum (the map drawn), Benjamini-Hochberg
    sig = significant_cells(path[0], se, fdr=FDR, combine="sum", grid_size=args.grid_size)
    ig, ig_cost = _integrated_gradients(model, x, cls)
    _report(leg_cost, rse, sig, ig_cost)
    n_sig = int(sig.n_significant[0, 0])
    maps = {
        f"LEG ({leg_cost.forward_passes} forward)\n{n_sig} of {sig.n_cells} cells outlined": path[0, 0],
        **{f"LEG-TV λ={lam}\n(the same samples)": path[k, 0] for k, lam in enumerate(_LAMS) if k},
        f"IntegratedGradients\n({IG_STEPS} forward + backward)": ig[0],
    }
    title = (f"EfficientNet-Lite0, class {cls} (p = {p:.2f}); |sum over channels| on the photo; "
             f"outlined: LEG's cells non-zero at FDR {FDR:.0%}")
    fig = comparison_figure(unit_image(x, "imagenet"), maps, sig.mask[0], title)
    save_figure(fig, out)
    log(f"wrote {out.resolve()} (total {time.perf_counter() - t0:.1f} s)")
    return 0


def _cat_photo() -> np.ndarray:
    """skimage's "chelsea" photo, ``(H, W, 3)`` uint8."""
    try:
        from skimage.data import chelsea
    except ImportError:
        raise SystemExit("captum-leg: error: the demo needs scikit-image and the model packages: pip install 'captum-leg[models]'")
    return chelsea()  # type: ignore[no-any-return, no-untyped-call]  # skimage's loaders are unannotated


def _classify(photo: np.ndarray, device: torch.device) -> Tuple[nn.Module, Tensor, int, float]:
    """EfficientNet-Lite0, the photo as its input, its predicted class and probability."""
    from captum_leg.models import load_efficientnet_lite0, preprocess

    model = load_efficientnet_lite0(device)
    x = preprocess(photo, device=device)
    with torch.no_grad():
        prob = model(x).softmax(-1)
    cls = int(prob.argmax())
    return model, x, cls, float(prob[0, cls])


def _leg(model: nn.Module, x: Tensor, cls: int, args: argparse.Namespace) -> Tuple[Tensor, Tensor, Cost, float]:
    """LEG and both LEG-TV maps ``(3, 1, C, H, W)``, LEG's standard error, the cost and
    the relative standard error reached."""
    from captum_leg import LEG

    leg = LEG(model)
    start = time.perf_counter()
    # LEG at its defaults; lam 0 is the estimate itself, so LEG and both LEG-TV maps come
    # from one set of samples, and the standard error is the estimate's
    path, se = cast(Tuple[Tensor, Tensor], leg.attribute_tv_path(
        x, target=cls, lams=list(_LAMS), return_standard_error=True, seed=args.seed,
        perturbations_per_eval=args.perturbations_per_eval, **size_options(args)))
    seconds = time.perf_counter() - start
    run = leg.last_run
    if run is None or run.relative_standard_error is None:  # recorded by every call asking for SEs
        raise RuntimeError("LEG did not record the run's standard error")
    cost = Cost(run.forward_passes, run.backward_passes, seconds)
    return path, se, cost, float(run.relative_standard_error[0])


def _integrated_gradients(model: nn.Module, x: Tensor, cls: int) -> Tuple[Tensor, Cost]:
    """Captum's IntegratedGradients from the mean image (0 after normalisation)."""
    from captum.attr import IntegratedGradients

    start = time.perf_counter()
    ig = IntegratedGradients(model).attribute(
        x, baselines=0.0, target=cls, n_steps=IG_STEPS, internal_batch_size=_IG_BATCH)
    return ig.detach(), Cost(IG_STEPS, IG_STEPS, time.perf_counter() - start)


def _report(leg: Cost, rse: float, sig: CellSignificance, ig: Cost) -> None:
    """Log what each method spent, and what LEG's standard errors say."""
    tv = ", ".join(map(str, _LAMS[1:]))
    log(f"{'method':34s} {'forward':>8s} {'backward':>9s} {'seconds':>8s}")
    for name, cost in ((f"LEG and LEG-TV (lam {tv})", leg), (f"IntegratedGradients ({IG_STEPS} steps)", ig)):
        log(f"{name:34s} {cost.forward_passes:8d} {cost.backward_passes:9d} {cost.seconds:8.1f}")
    log(
        f"LEG: relative standard error {rse:.2f}; {int(sig.n_significant[0, 0])} of {sig.n_cells} cells "
        f"of the channels' sum are non-zero at a false-discovery rate of {sig.fdr:.0%} "
        "(Benjamini-Hochberg, one test per cell)"
    )


def comparison_figure(
    image01: np.ndarray, maps: Mapping[str, Tensor], mask: Tensor, title: str
) -> Figure:
    """The photo, then each map on it (|sum over channels|, "overlay" style), with ``mask``
    (the first map's significant cells) outlined on the first map's panel."""
    from captum_leg.visualization import draw_mask_outline, visualize_saliency_multiple

    fig, axes = visualize_saliency_multiple(
        {name: m.detach().cpu() for name, m in maps.items()}, image=image01, style="overlay",
        sign="absolute_value", channel_reduction="sum", cmap="jet", alpha_overlay=0.7,
        image_title="photo", panel_size=3.0)
    draw_mask_outline(axes[0, 1], mask.cpu(), color="white", linewidth=1.2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()  # again, now making room for the title
    return fig
