"""``captum-leg demo``: LEG, its significance and LEG-TV of skimage's cat photo with the
built-in EfficientNet-Lite0, in one picture."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Tuple, cast

import numpy as np
import torch
from torch import Tensor, nn

from captum_leg.cli.console import log
from captum_leg.cli.images import saliency_picture, unit_image
from captum_leg.cli.options import size_options
from captum_leg.cli.outputs import FigureSaver, save_figure
from captum_leg.cli.sharding import device_and_shard

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from captum_leg.run import RunRecord

#: The lambdas pictured: 0 is the LEG estimate itself, then two LEG-TV maps.
_LAMS = (0.0, 0.1, 0.3)


def run(args: argparse.Namespace, save_figure: FigureSaver = save_figure) -> int:
    """The ``demo`` command; returns its exit status."""
    from captum_leg import LEG

    photo = _cat_photo()
    device, _ = device_and_shard(args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, x, cls, p = _classify(photo, device)
    log(f"predicted class {cls} (p = {p:.3f}); model loaded in {time.perf_counter() - t0:.1f} s")
    leg = LEG(model)
    t1 = time.perf_counter()
    # LEG at its defaults; lam 0 is the estimate itself, so LEG and both LEG-TV maps come
    # from one set of samples, and the standard error is the estimate's
    path, se = cast(Tuple[Tensor, Tensor], leg.attribute_tv_path(
        x, target=cls, lams=list(_LAMS), return_standard_error=True, seed=args.seed,
        perturbations_per_eval=args.perturbations_per_eval, **size_options(args)))
    seconds = time.perf_counter() - t1
    z = (path[0] / se)[0]
    caption = _report(leg.last_run, seconds, float((z.abs() > 2).float().mean()))
    maps = {
        "LEG": path[0, 0].cpu().numpy(),
        "|LEG / standard error|": z.abs().amax(0).cpu().numpy(),
        **{f"LEG-TV lam={lam}": path[k, 0].cpu().numpy() for k, lam in enumerate(_LAMS) if k},
    }
    fig = _figure(maps, x, f"EfficientNet-Lite0, class {cls}, {caption}")
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


def _report(run: Optional[RunRecord], seconds: float, significant: float) -> str:
    """Log what the run spent and found; the figure's caption of it."""
    if run is None or run.relative_standard_error is None:  # recorded by every call asking for SEs
        raise RuntimeError("LEG did not record the run's standard error")
    rse = float(run.relative_standard_error[0])
    log(
        f"LEG and LEG-TV (lam {', '.join(map(str, _LAMS[1:]))}): {seconds:.1f} s for {run.forward_passes} forward passes "
        f"({run.samples_per_channel} per channel); relative standard error "
        f"{rse:.2f}; {100 * significant:.1f}% of cells have "
        "|LEG / SE| > 2 (noise alone: 4.6%)"
    )
    return f"n = {run.samples_per_channel} per channel, relative SE {rse:.2f}"


def _figure(maps: Dict[str, np.ndarray], x: Tensor, title: str) -> Figure:
    fig = saliency_picture(unit_image(x, "imagenet"), maps)
    fig.suptitle(title, y=1.06)
    return fig
