"""Images in and out of the ``captum-leg`` commands: finding and reading the input
files, turning them into model inputs and back, and the picture of their maps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from captum_leg.cli.failures import FileFailures

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def collect_images(paths: Sequence[str]) -> List[Path]:
    """Image files named, or found (non-recursively, sorted) in the folders named.

    Raises:
        SystemExit: a path does not exist, or no image was found.
    """
    out: List[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            out.append(path)
        else:
            raise SystemExit(f"captum-leg: error: no such file or folder: {p}")
    seen, unique = set(), []
    for f in out:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    if not unique:
        raise SystemExit("captum-leg: error: no images found (looked for " + ", ".join(IMAGE_SUFFIXES) + ")")
    return unique


def output_names(files: Sequence[Path]) -> List[str]:
    """One output stem per image: the file stem, prefixed by its folder when stems clash."""
    stems = [f.stem for f in files]
    return [f"{f.parent.name}_{f.stem}" if stems.count(f.stem) > 1 else f.stem for f in files]


def load_image(path: Path) -> np.ndarray:
    """The image file as an ``(H, W, 3)`` uint8 RGB array."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def to_model_input(image: np.ndarray, size: int, normalize: str) -> Tensor:
    """``(1, 3, size, size)`` model input: shorter side resized, centre crop, then
    ImageNet-normalised (``normalize="imagenet"``) or left in ``[0, 1]`` (``"unit"``)."""
    from captum_leg.models import preprocess, resize_center_crop, to_unit_tensor

    if normalize == "imagenet":
        return preprocess(image, size)
    return resize_center_crop(to_unit_tensor(image), size)


def read_images(files: Sequence[Path], size: int, normalize: str,
                failures: FileFailures) -> List[Tuple[Path, Tensor]]:
    """``(file, model input)`` of every file that reads as an image; the others are reported."""
    loaded = []
    for f in files:
        try:
            loaded.append((f, to_model_input(load_image(f), size, normalize)))
        except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
            failures.cannot_read(f, err)
    return loaded


def model_inputs(items: Sequence[Tuple[Any, ...]], device: torch.device) -> Tensor:
    """The ``(N, 3, S, S)`` batch of ``(file, input, ...)`` items on ``device``."""
    return torch.cat([item[1] for item in items]).to(device)


def unit_image(x: Tensor, normalize: str) -> np.ndarray:
    """The first model input of ``x`` as an ``(S, S, 3)`` image in ``[0, 1]``."""
    from captum_leg.models import unnormalize

    u = unnormalize(x) if normalize == "imagenet" else x.clamp(0, 1)
    return u[0].permute(1, 2, 0).cpu().numpy()


def saliency_picture(image01: np.ndarray, maps: Dict[str, np.ndarray]) -> Figure:
    """Photo + one panel per map (mean |.| over channels, the reference's RGB combination)."""
    from captum_leg.visualization import visualize_saliency_multiple

    fig, _ = visualize_saliency_multiple(
        dict(maps), image=image01, style="heatmap_only", channel_reduction="mean_abs"
    )
    return fig
