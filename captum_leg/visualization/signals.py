"""Saliency maps of 1-D signals (time series, spectra, audio), drawn on the signal."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from torch import Tensor

from captum_leg.visualization.arrays import ArrayLike, one_example, reduce_channels
from captum_leg.visualization.colors import color_norm, normalize_attr, resolve_cmap, select_sign
from captum_leg.visualization.figures import add_colorbar, finish, label_zero, new_figure
from captum_leg.visualization.options import SIGNAL_STYLES, check_plot_options

# A line coloured by the map must stay visible where the map is zero: Captum's default
# for "all" is white there, so the graph style uses a diverging map with a dark middle.
_GRAPH_CMAP_ALL = "RdYlGn"
_LINE_STYLES = ("-", "--", ":", "-.")
_LAYOUTS = "a 1-D signal (L,), (C, L) or (1, C, L)"


def visualize_signal_saliency(
    attr: ArrayLike,
    signal: Optional[ArrayLike] = None,
    style: str = "overlay",
    sign: str = "all",
    channel_reduction: str = "none",
    *,
    x_values: Optional[ArrayLike] = None,
    channel_labels: Optional[Sequence[str]] = None,
    plt_fig_axis: Optional[Tuple[Figure, Union[Axes, Sequence[Axes]]]] = None,
    cmap: Optional[Union[str, Colormap]] = None,
    alpha_overlay: float = 0.7,
    outlier_perc: float = 2,
    show_colorbar: bool = False,
    title: Optional[str] = None,
    fig_size: Optional[Tuple[float, float]] = None,
    save_path: Optional[Union[str, Path]] = None,
    dpi: int = 100,
    show: bool = False,
) -> Tuple[Figure, np.ndarray]:
    r"""
    Draws the saliency map of a 1-D signal (time series, spectrum, audio) on the signal,
    in the spirit of Captum's ``visualize_timeseries_attr`` but channels first, as
    ``LEG(model).attribute`` returns them for ``(N, C, L)`` inputs.

    Args:

        attr (Tensor or numpy.ndarray): One map, channels first: ``(L,)``, ``(C, L)`` or
                    ``(1, C, L)`` (a 1-tuple holding one is unwrapped).
        signal (Tensor or numpy.ndarray, optional): The signal, in the same layouts, of
                    length ``L``; with ``channel_reduction="none"`` it needs the map's
                    ``C`` channels. Required by ``"overlay"`` and ``"colored_graph"``.
                    Default: None
        style (str, optional): ``"overlay"`` (the signal as a line over a band coloured
                    by the map, Captum's ``overlay_individual``), ``"colored_graph"``
                    (the signal's line coloured by the map) or ``"line"`` (the map
                    itself as a step curve in its own units, with the signal, if given,
                    in grey on a second y axis).
                    Default: ``"overlay"``
        sign (str, optional): Captum's sign option. ``"overlay"`` and
                    ``"colored_graph"`` normalise the values of that sign as Captum does
                    (jointly over all panels, so channels compare); ``"line"`` plots
                    them unscaled.
                    Default: ``"all"``
        channel_reduction (str, optional): See :func:`attr_to_hwc`. ``"none"`` gives
                    one panel per channel (signal channel ``c`` with map channel ``c``);
                    a reduction gives one panel with every signal channel over the
                    combined map.
                    Default: ``"none"``
        x_values (array, optional): Positions of the ``L`` samples (e.g. times);
                    ``0 .. L-1`` if None.
                    Default: None
        channel_labels (sequence of str, optional): One label per channel: panel
                    titles with ``channel_reduction="none"``, a legend otherwise.
                    Default: None
        plt_fig_axis (tuple, optional): ``(figure, axes)`` to draw on, one ``Axes`` per
                    panel (e.g. a row of a larger figure comparing methods); a new
                    figure is created if None.
                    Default: None
        cmap (str or Colormap, optional): Colour map; Captum's per-sign default if None
                    (``"RdYlGn"`` for ``"colored_graph"`` with ``sign="all"``, so that
                    the line stays visible where the map is zero).
                    Default: None
        alpha_overlay (float, optional): Opacity of the coloured band, in [0, 1].
                    Default: 0.7
        outlier_perc (float, optional): See :func:`normalize_attr`.
                    Default: 2
        show_colorbar (bool, optional): Adds one colour bar for all panels (not for
                    ``"line"``, whose y axis carries the values).
                    Default: False
        title (str, optional): Figure title.
                    Default: None
        fig_size (tuple, optional): Figure size in inches; ``(8, 1.8 * panels + 0.4)``
                    if None.
                    Default: None
        save_path, dpi, show: As in :func:`visualize_saliency`.

    Returns:
        2-element tuple of **figure**, **axes**: the ``Figure`` and a 1-D numpy array of
        its panels' ``Axes``, top to bottom (for ``"line"``, the axes holding the map;
        the signal is drawn on a twin y axis of each panel).

    Examples::

        >>> attr = LEG(model).attribute(x, target=1)           # x: (1, C, L)
        >>> fig, axes = visualize_signal_saliency(attr, x, "overlay", save_path="sig.png")
    """

    check_plot_options(style, SIGNAL_STYLES, sign, channel_reduction, alpha_overlay)
    a, sig = _map_and_signal(attr, signal, style, channel_reduction)
    channels, length = a.shape
    xs = _positions(x_values, length)
    n_lines = sig.shape[0] if sig is not None else channels
    if channel_labels is not None and len(channel_labels) != n_lines:
        raise ValueError(f"channel_labels: expected {n_lines} labels, got {len(channel_labels)}")

    maps = reduce_channels(a, channel_reduction, channel_axis=0)  # (panels, L)
    fig, axes = _panel_axes(plt_fig_axis, maps.shape[0], fig_size, show)
    if cmap is None and style == "colored_graph" and sign == "all":
        cmap = _GRAPH_CMAP_ALL
    # One normalisation for all panels, so that channels are drawn on one scale.
    values = select_sign(maps, sign) if style == "line" else normalize_attr(maps, sign, outlier_perc)
    per_channel = channel_reduction == "none"
    mappable = None
    for i, ax in enumerate(axes):
        lines = None if sig is None else (sig[i : i + 1] if per_channel else sig)
        labels = None
        if channel_labels is not None:
            labels = [channel_labels[i]] if per_channel else list(channel_labels)
        if style == "line" or lines is None:  # without a signal only "line" gets here
            _draw_line_panel(ax, xs, values[i], lines)
        else:
            drawn = _draw_on_signal(
                ax, style, xs, values[i], lines, labels, resolve_cmap(cmap, sign), color_norm(sign),
                alpha_overlay,
            )
            mappable = drawn if drawn is not None else mappable
            label_zero(ax, values[i], sign)
        edges = _cell_edges(xs)
        ax.set_xlim(float(edges[0]), float(edges[-1]))
        _name_panel(ax, labels, per_channel, style, channels, i)
    if show_colorbar and mappable is not None:
        add_colorbar(fig, mappable, list(axes), "vertical", fraction=0.03, pad=0.02)
    if title:
        fig.suptitle(title, fontsize=11)
    finish(fig, save_path, dpi, show)
    return fig, axes


def _map_and_signal(
    attr: ArrayLike, signal: Optional[ArrayLike], style: str, channel_reduction: str
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    # The map ``(C, L)`` and the signal ``(C', L)`` (None if not given), checked together.
    a = one_example(attr, "attr", 1, _LAYOUTS)
    channels, length = a.shape
    if signal is None:
        if style != "line":
            raise ValueError(
                f"signal: style={style!r} draws the map on the signal; pass signal=... or use style='line'"
            )
        return a, None
    sig = one_example(signal, "signal", 1, _LAYOUTS)
    if sig.shape[1] != length:
        raise ValueError(f"signal: length {sig.shape[1]} does not match the attribution's {length}")
    if channel_reduction == "none" and sig.shape[0] != channels:
        raise ValueError(
            f"signal: {sig.shape[0]} channels for a map with {channels}; with "
            "channel_reduction='none' each panel pairs a signal channel with its map"
        )
    return a, sig


def _positions(x_values: Optional[ArrayLike], length: int) -> np.ndarray:
    # The samples' positions on the x axis, 0 .. L-1 by default.
    if x_values is None:
        xs = np.arange(length, dtype=np.float64)
    elif isinstance(x_values, Tensor):
        xs = x_values.detach().to("cpu", torch.float64).numpy().reshape(-1)
    else:
        xs = np.asarray(x_values, dtype=np.float64).reshape(-1)
    if xs.size != length:
        raise ValueError(f"x_values: expected {length} positions, got {xs.size}")
    return xs


def _cell_edges(xs: np.ndarray) -> np.ndarray:
    # Edges around each sample (midpoints between neighbours), for a band of coloured cells.
    if xs.size == 1:
        return np.array([xs[0] - 0.5, xs[0] + 0.5])
    mid = (xs[1:] + xs[:-1]) / 2
    return np.concatenate([[2 * xs[0] - mid[0]], mid, [2 * xs[-1] - mid[-1]]])


def _panel_axes(
    plt_fig_axis: Optional[Tuple[Figure, Union[Axes, Sequence[Axes]]]],
    n_panels: int,
    fig_size: Optional[Tuple[float, float]],
    show: bool,
) -> Tuple[Figure, np.ndarray]:
    # A column of panels sharing the x axis, or the caller's axes (one per panel).
    if plt_fig_axis is None:
        fig = new_figure(fig_size if fig_size is not None else (8.0, 1.8 * n_panels + 0.4), show)
        fig.set_layout_engine("constrained")
        return fig, np.asarray(fig.subplots(n_panels, 1, sharex=True, squeeze=False))[:, 0]
    fig, given = plt_fig_axis
    axes = np.array([given] if isinstance(given, Axes) else list(given), dtype=object)
    if axes.size != n_panels:
        raise ValueError(f"plt_fig_axis: expected {n_panels} axes (one per panel), got {axes.size}")
    return fig, axes


def _draw_line_panel(ax: Axes, xs: np.ndarray, values: np.ndarray, lines: Optional[np.ndarray]) -> None:
    # The map as a step curve in its own units; the signal in grey on a twin y axis.
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.plot(xs, values, color="C0", lw=1.2, drawstyle="steps-mid")
    ax.fill_between(xs, 0.0, values, step="mid", color="C0", alpha=0.3)
    ax.set_ylabel("attribution")
    if lines is not None:
        twin = ax.twinx()
        for line in lines:
            twin.plot(xs, line, color="0.45", lw=0.8)
        twin.set_ylabel("signal", color="0.45")


def _draw_on_signal(
    ax: Axes,
    style: str,
    xs: np.ndarray,
    values: np.ndarray,
    lines: np.ndarray,
    labels: Optional[List[str]],
    cmap: Union[str, Colormap],
    norm: Normalize,
    alpha_overlay: float,
) -> Optional[ScalarMappable]:
    # "overlay" (a band coloured by the map behind the signal) or "colored_graph" (the
    # signal's line coloured by the map); returns what a colour bar would show.
    lo, hi = float(lines.min()), float(lines.max())
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    lo, hi = lo - pad, hi + pad
    mappable: Optional[ScalarMappable] = None
    if style == "overlay":
        mappable = ax.pcolormesh(
            _cell_edges(xs), [lo, hi], values[None, :], cmap=cmap, norm=norm,
            alpha=alpha_overlay, shading="flat",
        )
        for j, line in enumerate(lines):
            # Black over any colour map; several channels differ by their dashes.
            ax.plot(xs, line, color="black", lw=1.0, ls=_LINE_STYLES[j % len(_LINE_STYLES)],
                    label=labels[j] if labels else None)
    else:  # segment k joins samples k and k+1, coloured by their mean
        for j, line in enumerate(lines):
            points = np.stack([xs, line], axis=1)
            segments = np.stack([points[:-1], points[1:]], axis=1)
            coll = LineCollection(list(segments), cmap=cmap, norm=norm, lw=2.0,
                                  label=labels[j] if labels else None)
            coll.set_array((values[:-1] + values[1:]) / 2)
            ax.add_collection(coll)
            mappable = coll
    ax.set_ylim(lo, hi)
    return mappable


def _name_panel(
    ax: Axes, labels: Optional[List[str]], per_channel: bool, style: str, channels: int, i: int
) -> None:
    # A channel's label as the title, several channels' labels as a legend.
    if labels is not None and per_channel:
        ax.set_title(labels[0], fontsize=10)
    elif labels is not None and style != "line":
        ax.legend(fontsize=8, loc="upper right")
    elif per_channel and channels > 1:
        ax.set_title(f"channel {i}", fontsize=10)
