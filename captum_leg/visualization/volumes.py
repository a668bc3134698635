"""Saliency maps of volumes and videos, drawn as rows of 2-D slices on one scale."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from captum_leg.visualization.arrays import ArrayLike, one_example, reduce_channels
from captum_leg.visualization.colors import normalize_attr
from captum_leg.visualization.figures import (
    add_colorbar,
    finish,
    hide_unused,
    new_figure,
    panel_grid,
    setup_axis,
)
from captum_leg.visualization.images import draw_normalized_map
from captum_leg.visualization.options import STYLES, check_plot_options

_LAYOUTS = "a volume (D, H, W), (C, D, H, W) or (1, C, D, H, W)"


def visualize_volume_saliency(
    attr: ArrayLike,
    volume: Optional[ArrayLike] = None,
    style: str = "overlay",
    sign: str = "absolute_value",
    channel_reduction: str = "sum",
    *,
    axis: int = 0,
    slices: Union[int, Sequence[int]] = 6,
    show_volume: bool = False,
    ncols: Optional[int] = None,
    cmap: Optional[Union[str, Colormap]] = None,
    alpha_overlay: float = 0.6,
    outlier_perc: float = 2,
    show_colorbar: bool = False,
    title: Optional[str] = None,
    panel_size: float = 2.5,
    save_path: Optional[Union[str, Path]] = None,
    dpi: int = 100,
    show: bool = False,
) -> Tuple[Figure, np.ndarray]:
    r"""
    Draws the saliency map of a volume (or a video, ``(D, H, W)`` = frames x height x
    width) as a row of 2-D slices along one axis.

    The map is normalised once for the whole volume (Captum's rule, see
    :func:`normalize_attr`), so slices compare; the volume's intensities are scaled to
    [0, 1] by its own minimum and maximum.

    Args:

        attr (Tensor or numpy.ndarray): One map, channels first: ``(D, H, W)``,
                    ``(C, D, H, W)`` or ``(1, C, D, H, W)``. Channels are combined with
                    ``channel_reduction``, which must give a single map.
        volume (Tensor or numpy.ndarray, optional): The volume, same layouts and spatial
                    size (channels are averaged for display). Needed by the ``"gray"``
                    and ``"overlay"`` styles and by ``show_volume``.
                    Default: None
        style (str, optional): ``"heatmap_only"``, ``"gray"`` or ``"overlay"``, as in
                    :func:`visualize_saliency`.
                    Default: ``"overlay"``
        sign (str, optional): Captum's sign option.
                    Default: ``"absolute_value"``
        channel_reduction (str, optional): See :func:`attr_to_hwc`.
                    Default: ``"sum"``
        axis (int, optional): The spatial axis sliced across: 0, 1 or 2 (or -3 to -1).
                    Default: 0
        slices (int or sequence of int, optional): How many evenly spaced slices (at
                    most the axis length), or their indices along ``axis``.
                    Default: 6
        show_volume (bool, optional): Adds a row with the volume's slices above the
                    maps (side by side, e.g. with ``style="heatmap_only"``).
                    Default: False
        ncols (int, optional): Slices per row; all in one row if None.
                    Default: None
        cmap, alpha_overlay, outlier_perc, show_colorbar, save_path, dpi, show:
                    As in :func:`visualize_saliency` (one colour bar for all slices).
        title (str, optional): Figure title.
                    Default: None
        panel_size (float, optional): Width and height of each panel, in inches.
                    Default: 2.5

    Returns:
        2-element tuple of **figure**, **axes**: the ``Figure`` and a 2-D numpy array of
        its ``Axes`` (rows x columns; with ``show_volume`` the volume's rows come first,
        each followed by the maps of the same slices; unused cells are hidden).

    Examples::

        >>> attr = LEG(model).attribute(x, target=1, grid_size=8)   # x: (1, 1, D, H, W)
        >>> fig, axes = visualize_volume_saliency(attr, x, "overlay", axis=0, slices=5)
    """

    check_plot_options(style, STYLES, sign, channel_reduction, alpha_overlay)
    a, vol = _map_and_volume(attr, volume, style, channel_reduction, show_volume)
    axis = _spatial_axis(axis)
    index = _slice_indices(slices, a.shape[axis], axis)
    # One normalisation for the whole volume: slices are drawn on one scale.
    norm = normalize_attr(a.reshape(a.shape[0], -1), sign, outlier_perc).reshape(a.shape)
    norm = np.moveaxis(norm, axis, 0)
    vol_slices = np.moveaxis(vol, axis, 0) if vol is not None else None
    ncols, map_rows = panel_grid(len(index), ncols)
    rows_per_block = 2 if show_volume else 1
    nrows = map_rows * rows_per_block
    fig = new_figure((panel_size * ncols, panel_size * nrows + 0.4 * bool(title) + 0.4 * show_colorbar), show)
    fig.set_layout_engine("constrained")
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    # Each block of rows_per_block rows: the volume's slices (if shown), then the maps.
    blocks = axes.reshape(map_rows, rows_per_block, ncols).transpose(0, 2, 1).reshape(-1, rows_per_block)
    im: Optional[AxesImage] = None
    for k, idx in enumerate(index):
        label = f"axis {axis} = {idx}"
        if show_volume:
            setup_axis(blocks[k, 0])
            blocks[k, 0].imshow(vol_slices[idx], cmap="gray", vmin=0.0, vmax=1.0)  # type: ignore[index]
            blocks[k, 0].set_title(label, fontsize=9)
        image = vol_slices[idx][..., None] if vol_slices is not None else None
        im = draw_normalized_map(
            blocks[k, -1], norm[idx], image, style, sign, cmap, alpha_overlay, False,
            None if show_volume else label, label_blank=not np.any(norm),
        )
    hide_unused(blocks[len(index):].ravel())
    if show_colorbar and im is not None:
        add_colorbar(fig, im, list(axes.ravel()), "horizontal", fraction=0.05, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=11)
    finish(fig, save_path, dpi, show)
    return fig, axes


def _map_and_volume(
    attr: ArrayLike,
    volume: Optional[ArrayLike],
    style: str,
    channel_reduction: str,
    show_volume: bool,
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    # The single map (D, H, W) and the volume scaled to [0, 1] (None if not given).
    a = reduce_channels(one_example(attr, "attr", 3, _LAYOUTS), channel_reduction, channel_axis=0)
    if a.shape[0] != 1:
        raise ValueError(
            f"attr: channel_reduction={channel_reduction!r} leaves {a.shape[0]} maps; pass "
            "one channel (attr[:, c]) or reduce the channels"
        )
    a = a[0]
    if volume is None:
        if style != "heatmap_only" or show_volume:
            what = "show_volume=True" if show_volume else f"style={style!r}"
            raise ValueError(f"volume: {what} needs the volume; pass volume=...")
        return a, None
    vol = one_example(volume, "volume", 3, _LAYOUTS).mean(axis=0)
    if vol.shape != a.shape:
        raise ValueError(f"volume: spatial size {vol.shape} does not match the attribution's {a.shape}")
    lo, hi = float(vol.min()), float(vol.max())
    return a, ((vol - lo) / (hi - lo) if hi > lo else np.zeros_like(vol))


def _spatial_axis(axis: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -3 <= axis <= 2:
        raise ValueError(f"axis: expected a spatial axis 0, 1 or 2 (or -3 to -1), got {axis!r}")
    return int(axis) % 3


def _slice_indices(slices: Union[int, Sequence[int]], size: int, axis: int) -> np.ndarray:
    # A count of evenly spaced slices, or the caller's indices, checked against the axis.
    if isinstance(slices, (int, np.integer)) and not isinstance(slices, bool):
        if slices < 1:
            raise ValueError(f"slices: expected a positive count or a sequence of indices, got {slices}")
        return np.unique(np.round(np.linspace(0, size - 1, min(int(slices), size))).astype(int))
    if not (isinstance(slices, (Sequence, np.ndarray)) and not isinstance(slices, str) and len(slices) > 0):
        raise TypeError(
            f"slices: expected a positive count or a non-empty sequence of indices, got {slices!r}"
        )
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in slices):
        raise TypeError(f"slices: expected ints, got {list(slices)!r}")
    if not all(0 <= int(i) < size for i in slices):
        raise ValueError(f"slices: indices must lie in [0, {size}) along axis {axis}, got {list(slices)}")
    return np.asarray([int(i) for i in slices])
