"""Figure plumbing shared by every plot: new figures without pyplot, panels, colour bars, saving."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure

from captum_leg.visualization.options import check_ncols


def new_figure(fig_size: Tuple[float, float], show: bool) -> Figure:
    """A bare ``Figure``; a pyplot one only when it is to be shown."""
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=fig_size)
    return Figure(figsize=fig_size)


def finish(fig: Figure, save_path: Optional[Union[str, Path]], dpi: int, show: bool) -> None:
    """Saves the figure if asked (format from the suffix) and shows it if asked."""
    if save_path is not None:
        fig.savefig(save_path, dpi=dpi, bbox_inches="tight")
    if show:
        import matplotlib.pyplot as plt  # only when asked: keeps headless use pyplot-free

        plt.show()


def panel_grid(n_panels: int, ncols: Optional[int]) -> Tuple[int, int]:
    """``(ncols, nrows)`` holding ``n_panels`` panels, ``ncols`` per row (all in one if None)."""
    ncols = check_ncols(ncols, n_panels)
    return ncols, math.ceil(n_panels / ncols)


def setup_axis(ax: Axes) -> None:
    """An image panel: no ticks, no grid."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(visible=False)


def draw_image(ax: Axes, image: np.ndarray) -> None:
    """An ``(H, W, C)`` image in [0, 1]: in colour with 3 channels, in grey with 1."""
    ax.imshow(image if image.shape[-1] == 3 else image[..., 0], cmap="gray", vmin=0, vmax=1)


def label_zero(ax: Axes, norm: np.ndarray, sign: str) -> None:
    """Writes on a panel whose map is blank that it is blank (rather than drawing nothing)."""
    if not np.any(norm):
        ax.text(
            0.5, 0.5, f"no {sign} values" if sign != "all" else "all zero",
            transform=ax.transAxes, ha="center", va="center", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"},
        )


def add_colorbar(
    fig: Figure,
    mappable: ScalarMappable,
    ax: Union[Axes, Sequence[Axes]],
    orientation: str,
    fraction: float,
    pad: float,
) -> Any:
    """A colour bar for ``mappable`` beside ``ax``, opaque whatever the map's opacity."""
    cbar = fig.colorbar(mappable, ax=ax, orientation=orientation, fraction=fraction, pad=pad)
    if cbar.solids is not None:
        cbar.solids.set_alpha(1.0)  # the bar shows the colour map, not the blended opacity
    return cbar


def hide_unused(axes: Iterable[Axes]) -> None:
    """Hides the cells of a panel grid that hold no panel."""
    for ax in axes:
        ax.set_axis_off()
