"""Outlines of boolean masks (e.g. the significant cells of a map) over image panels."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection

from captum_leg.visualization.arrays import ArrayLike, to_numpy


def mask_2d(mask: ArrayLike, name: str, hw: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """``mask`` as a 2-D bool array (leading axes of length 1 dropped), of size ``hw`` if given."""
    m = to_numpy(mask, name)
    while m.ndim > 2 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2 or 0 in m.shape or (hw is not None and m.shape != tuple(hw)):
        size = f" of the map's size {tuple(hw)}" if hw is not None else ""
        raise ValueError(
            f"{name}: expected one (H, W) mask{size} (leading axes of length 1 allowed), "
            f"got shape {tuple(m.shape)}; for per-channel masks pick a channel, or test the "
            "channel-combined map (significant_cells(..., combine='sum'))"
        )
    if m.dtype != np.bool_ and not np.isin(m, (0, 1)).all():
        raise ValueError(f"{name}: expected booleans (or 0 and 1), got other values")
    return m.astype(bool)


def _runs(edges: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Maximal runs of True along each row of a 2-D bool array: (row, start, stop).
    steps = np.diff(np.pad(edges, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(steps == 1)
    _, stops = np.nonzero(steps == -1)  # row-major order pairs each start with its stop
    return rows, starts, stops


def mask_outline_segments(mask: np.ndarray) -> np.ndarray:
    """The boundary of the True region of a 2-D mask as ``(S, 2, 2)`` line segments.

    Coordinates are those of ``imshow`` (pixel ``(i, j)`` centred at ``x = j, y = i``), so
    the segments run along pixel edges; collinear neighbouring edges are merged.
    """
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    # Edges between vertical neighbours, (H + 1, W): row r lies at y = r - 0.5.
    rows, starts, stops = _runs(padded[:-1, 1:-1] != padded[1:, 1:-1])
    horizontal = np.stack(
        [np.stack([starts - 0.5, rows - 0.5], -1), np.stack([stops - 0.5, rows - 0.5], -1)], 1
    )
    # Edges between horizontal neighbours, (H, W + 1), taken by column: x = c - 0.5.
    cols, starts, stops = _runs((padded[1:-1, :-1] != padded[1:-1, 1:]).T)
    vertical = np.stack(
        [np.stack([cols - 0.5, starts - 0.5], -1), np.stack([cols - 0.5, stops - 0.5], -1)], 1
    )
    return np.concatenate([horizontal, vertical]).astype(np.float64)


def draw_mask_outline(
    ax: Axes,
    mask: ArrayLike,
    *,
    color: str = "black",
    linewidth: float = 1.5,
    linestyle: str = "-",
    label: Optional[str] = None,
) -> LineCollection:
    r"""
    Draws the outline of a boolean mask's True region on an image panel, along pixel edges
    (so a mask of significant cells is outlined cell by cell).

    Works on any axes showing an ``(H, W)`` image with ``imshow``'s default extent: the
    panels of :func:`visualize_saliency`, :func:`visualize_saliency_multiple` or Captum's
    ``visualize_image_attr``.

    Args:

        ax (matplotlib.axes.Axes): The panel to draw on.
        mask (Tensor or numpy.ndarray): Boolean ``(H, W)`` mask (leading axes of length 1
                    allowed; 0/1 numbers are accepted), e.g. ``result.mask[i]`` of
                    :func:`captum_leg.significance.significant_cells` with
                    ``combine="sum"``, or ``result.mask[i, c]`` for channel ``c``.
        color (str, optional): Line colour.
                    Default: ``"black"``
        linewidth (float, optional): Line width in points.
                    Default: 1.5
        linestyle (str, optional): Matplotlib line style.
                    Default: ``"-"``
        label (str, optional): Legend label of the outline.
                    Default: None

    Returns:
        matplotlib.collections.LineCollection: the outline's segments (``(x, y)`` in
        pixel coordinates), added to ``ax``. An all-False mask gives an empty collection.

    Examples::

        >>> sig = significant_cells(attr, se, fdr=0.05, combine="sum")
        >>> fig, axes = visualize_saliency_multiple({"LEG": attr, "IG": ig}, unnormalize(x))
        >>> draw_mask_outline(axes[0, 1], sig.mask[0])
    """
    segments = mask_outline_segments(mask_2d(mask, "mask"))
    outline = LineCollection(
        list(segments), colors=color, linewidths=linewidth, linestyles=linestyle, label=label
    )
    ax.add_collection(outline, autolim=False)
    return outline
