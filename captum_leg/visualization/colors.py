"""Sign handling and colour scaling shared by every plot: Captum's signs, robust scale, colour maps."""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import numpy as np
from captum.attr._utils.visualization import _cumulative_sum_threshold
from matplotlib.colors import Colormap, LinearSegmentedColormap, Normalize

from captum_leg.visualization.options import SIGNS, check_choice

# Captum's default colour maps per sign, so figures read the same as Captum's.
DEFAULT_CMAPS: Dict[str, Union[str, Colormap]] = {
    "all": LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"]),
    "positive": "Greens",
    "negative": "Reds",
    "absolute_value": "Blues",
}


def value_range(sign: str) -> Tuple[float, float]:
    """The range normalised values of ``sign`` take: [-1, 1] for "all", else [0, 1]."""
    return (-1.0 if sign == "all" else 0.0), 1.0


def color_norm(sign: str) -> Normalize:
    """A matplotlib ``Normalize`` over :func:`value_range`."""
    vmin, vmax = value_range(sign)
    return Normalize(vmin=vmin, vmax=vmax)


def resolve_cmap(cmap: Optional[Union[str, Colormap]], sign: str) -> Union[str, Colormap]:
    """The caller's colour map, or Captum's default for ``sign``."""
    return cmap if cmap is not None else DEFAULT_CMAPS[sign]


def select_sign(a: np.ndarray, sign: str) -> np.ndarray:
    # The values of one sign, negatives by magnitude (Captum's convention); NaN/inf -> 0.
    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if sign == "positive":
        return np.maximum(a, 0.0)
    if sign == "negative":
        return -np.minimum(a, 0.0)
    if sign == "absolute_value":
        return np.abs(a)
    return a


def normalize_attr(
    attr: np.ndarray,
    sign: str = "absolute_value",
    outlier_perc: float = 2,
) -> np.ndarray:
    r"""
    Selects the values of one sign and scales them to [-1, 1] as Captum does.

    The values of the chosen sign are divided by a robust maximum (the largest
    ``outlier_perc`` percent of the total mass are clipped to 1). Where Captum fails
    (an all-zero map, or no value of the chosen sign: the scale is 0) this returns zeros.

    Args:

        attr (numpy.ndarray): A 2-D ``(H, W)`` map.
        sign (str, optional): ``"all"``, ``"positive"``, ``"negative"`` or
                    ``"absolute_value"``.
                    Default: ``"absolute_value"``
        outlier_perc (float, optional): Percentage of the total mass treated as
                    outliers, in [0, 100).
                    Default: 2

    Returns:
        numpy.ndarray: The normalised map, in [-1, 1] for ``"all"``, in [0, 1] for the
        other signs (negative values are shown by magnitude, as in Captum).
    """
    check_choice(sign, SIGNS, "sign")
    if not 0 <= outlier_perc < 100:
        raise ValueError(f"outlier_perc: expected a value in [0, 100), got {outlier_perc}")
    a = np.asarray(attr, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"attr: expected a 2-D (H, W) map, got shape {a.shape}")
    a = select_sign(a, sign)
    if not np.any(a):
        return np.zeros_like(a)
    # Captum's outlier rule; safe here because the map has a non-zero value.
    threshold = float(_cumulative_sum_threshold(np.abs(a), 100.0 - outlier_perc))
    if threshold <= 0.0:  # mass concentrated in very few pixels: fall back to the max
        threshold = float(np.abs(a).max())
    return np.clip(a / threshold, -1.0, 1.0)
