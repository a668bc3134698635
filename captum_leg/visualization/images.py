"""Image saliency maps in the LEG reference's styles: one map, or several side by side."""

from __future__ import annotations

from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from torch import Tensor

from captum_leg.visualization.arrays import ArrayLike, attr_to_hwc, image_to_hwc
from captum_leg.visualization.colors import normalize_attr, resolve_cmap, value_range
from captum_leg.visualization.figures import (
    add_colorbar,
    draw_image,
    finish,
    hide_unused,
    label_zero,
    new_figure,
    panel_grid,
    setup_axis,
)
from captum_leg.visualization.masks import draw_mask_outline, mask_2d
from captum_leg.visualization.options import (
    SIGNS,
    STYLES,
    check_alpha,
    check_choice,
    check_plot_options,
)


def draw_normalized_map(
    ax: Axes,
    norm: np.ndarray,
    image: Optional[np.ndarray],
    style: str,
    sign: str,
    cmap: Optional[Union[str, Colormap]],
    alpha_overlay: float,
    show_colorbar: bool,
    title: Optional[str],
    label_blank: bool = True,
) -> AxesImage:
    """Draws a map already scaled by :func:`normalize_attr` in one style; returns its image.

    ``label_blank``: write on a blank map that it is blank (off for a zero slice of a
    volume whose map is elsewhere).
    """
    vmin, vmax = value_range(sign)
    cmap = resolve_cmap(cmap, sign)
    setup_axis(ax)
    if style == "heatmap_only":
        im = ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=vmax)
    elif style == "gray":
        # The map with constant opacity over the grey image (Captum's blended_heat_map).
        ax.imshow(image.mean(axis=-1), cmap="gray", vmin=0.0, vmax=1.0)  # type: ignore[union-attr]
        im = ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha_overlay)
    else:  # "overlay"
        # The colour photo stays visible where the map is zero: opacity grows with |map|.
        draw_image(ax, image)  # type: ignore[arg-type]
        im = ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=vmax, alpha=alpha_overlay * np.abs(norm))
    if label_blank:
        label_zero(ax, norm, sign)
    if show_colorbar:
        add_colorbar(ax.figure, im, ax, "horizontal", fraction=0.046, pad=0.04)  # type: ignore[arg-type]
    if title:
        ax.set_title(title, fontsize=10)
    return im


def _draw(
    ax: Axes,
    map2d: np.ndarray,
    image: Optional[np.ndarray],
    style: str,
    sign: str,
    cmap: Optional[Union[str, Colormap]],
    alpha_overlay: float,
    outlier_perc: float,
    show_colorbar: bool,
    title: Optional[str],
) -> None:
    norm = normalize_attr(map2d, sign, outlier_perc)
    draw_normalized_map(ax, norm, image, style, sign, cmap, alpha_overlay, show_colorbar, title)


def _maps_2d(attr: ArrayLike, channel_reduction: str) -> List[np.ndarray]:
    # Every map in ``attr`` as a 2-D array; a kept channel axis yields one map per channel.
    hwc = attr_to_hwc(attr, channel_reduction)
    flat = hwc.reshape(-1, *hwc.shape[-3:])
    return [m[..., c] for m in flat for c in range(m.shape[-1])]


def _prepare_image(image: Optional[ArrayLike], style: str, hw: Tuple[int, ...]) -> Optional[np.ndarray]:
    if image is None:
        if style != "heatmap_only":
            raise ValueError(f"image: style={style!r} needs the image; pass image=...")
        return None
    img = image_to_hwc(image)
    if img.shape[:2] != hw:
        raise ValueError(
            f"image: spatial size {img.shape[:2]} does not match the attribution's {hw}"
        )
    return img


def visualize_saliency(
    attr: ArrayLike,
    image: Optional[ArrayLike] = None,
    style: str = "overlay",
    sign: str = "absolute_value",
    channel_reduction: str = "sum",
    *,
    plt_fig_axis: Optional[Tuple[Figure, Axes]] = None,
    cmap: Optional[Union[str, Colormap]] = None,
    alpha_overlay: float = 0.6,
    outlier_perc: float = 2,
    show_colorbar: bool = False,
    title: Optional[str] = None,
    significance_mask: Optional[ArrayLike] = None,
    fig_size: Tuple[float, float] = (4, 4),
    save_path: Optional[Union[str, Path]] = None,
    dpi: int = 100,
    show: bool = False,
) -> Tuple[Figure, Axes]:
    r"""
    Draws one saliency map in one of the LEG reference's styles.

    Args:

        attr (Tensor or numpy.ndarray): One map, channels first: ``(H, W)``,
                    ``(C, H, W)`` or ``(1, C, H, W)`` (e.g. the output of
                    ``LEG(model).attribute`` for one image). Channels are combined with
                    ``channel_reduction``, which must give a single map.
        image (Tensor or numpy.ndarray, optional): The image, in any layout accepted by
                    :func:`image_to_hwc`; needed by the ``"gray"`` and ``"overlay"``
                    styles. Must have the map's height and width.
                    Default: None
        style (str, optional): ``"heatmap_only"`` (the map alone), ``"gray"`` (the
                    map, with opacity ``alpha_overlay``, over the grey image) or
                    ``"overlay"`` (the colour map blended with the photo, opacity growing
                    with the map's magnitude up to ``alpha_overlay``).
                    Default: ``"overlay"``
        sign (str, optional): Captum's sign option: ``"all"``, ``"positive"``,
                    ``"negative"`` or ``"absolute_value"``. A map with no value of the
                    chosen sign is drawn as zero and labelled, not an error.
                    Default: ``"absolute_value"``
        channel_reduction (str, optional): See :func:`attr_to_hwc`; ``"none"`` is only
                    valid for a one-channel map. Use ``"mean_abs"`` for the reference's
                    RGB maps.
                    Default: ``"sum"``
        plt_fig_axis (tuple, optional): ``(figure, axis)`` to draw on; a new figure is
                    created if None.
                    Default: None
        cmap (str or Colormap, optional): Colour map; Captum's per-sign default if None.
                    Default: None
        alpha_overlay (float, optional): Opacity of the map in the ``"gray"`` and
                    ``"overlay"`` styles, in [0, 1].
                    Default: 0.6
        outlier_perc (float, optional): See :func:`normalize_attr`.
                    Default: 2
        show_colorbar (bool, optional): Adds a horizontal colour bar.
                    Default: False
        title (str, optional): Axis title.
                    Default: None
        significance_mask (Tensor or numpy.ndarray, optional): Boolean ``(H, W)`` mask
                    of the map's size (leading axes of length 1 allowed, e.g. one
                    example's ``(1, H, W)`` mask from
                    :func:`captum_leg.significance.significant_cells` with
                    ``combine="sum"``); its outline is drawn over the map with
                    :func:`draw_mask_outline`.
                    Default: None
        fig_size (tuple, optional): Size of a newly created figure, in inches.
                    Default: (4, 4)
        save_path (str or Path, optional): If given, the figure is saved there (format
                    from the suffix, e.g. ``.png``).
                    Default: None
        dpi (int, optional): Resolution used by ``save_path``.
                    Default: 100
        show (bool, optional): Calls ``matplotlib.pyplot.show()``; otherwise pyplot is
                    not used and the figure is only returned.
                    Default: False

    Returns:
        2-element tuple of **figure**, **axis**: the matplotlib ``Figure`` and ``Axes``
        drawn on (those of ``plt_fig_axis`` if given).

    Examples::

        >>> attr = LEG(model).attribute(x, target=281)
        >>> fig, ax = visualize_saliency(attr, unnormalize(x), "overlay",
        ...                              channel_reduction="mean_abs", save_path="leg.png")
        >>> attr, se = LEG(model).attribute(x, target=281, return_standard_error=True)
        >>> sig = significant_cells(attr, se, fdr=0.05, combine="sum")
        >>> fig, ax = visualize_saliency(attr, unnormalize(x), channel_reduction="sum",
        ...                              significance_mask=sig.mask[0])
    """
    check_plot_options(style, STYLES, sign, None, alpha_overlay)
    maps = _maps_2d(attr, channel_reduction)
    if len(maps) != 1:
        raise ValueError(
            f"attr: expected a single map, got {len(maps)} (shape {tuple(attr.shape)} with "
            f"channel_reduction={channel_reduction!r}); use visualize_saliency_multiple"
        )
    img = _prepare_image(image, style, maps[0].shape)
    mask = None
    if significance_mask is not None:
        mask = mask_2d(significance_mask, "significance_mask", maps[0].shape)
    if plt_fig_axis is None:
        fig = new_figure(fig_size, show)
        ax = fig.subplots()
    else:
        fig, ax = plt_fig_axis
    _draw(ax, maps[0], img, style, sign, cmap, alpha_overlay, outlier_perc, show_colorbar, title)
    if mask is not None:
        draw_mask_outline(ax, mask)
    finish(fig, save_path, dpi, show)
    return fig, ax


def visualize_saliency_multiple(
    attrs: Union[ArrayLike, Sequence[ArrayLike], Mapping[str, ArrayLike]],
    image: Optional[ArrayLike] = None,
    style: str = "overlay",
    sign: Union[str, Sequence[str]] = "absolute_value",
    channel_reduction: str = "sum",
    *,
    titles: Optional[Sequence[str]] = None,
    show_image: bool = True,
    image_title: str = "image",
    ncols: Optional[int] = None,
    cmap: Optional[Union[str, Colormap]] = None,
    alpha_overlay: float = 0.6,
    outlier_perc: float = 2,
    show_colorbar: bool = False,
    panel_size: float = 3.0,
    save_path: Optional[Union[str, Path]] = None,
    dpi: int = 100,
    show: bool = False,
) -> Tuple[Figure, np.ndarray]:
    r"""
    Draws several saliency maps side by side, e.g. one per method or one per lambda.

    Each map is normalised on its own (attribution methods differ in scale), so the
    figure compares where each map puts its mass, not magnitudes.

    Args:

        attrs (Tensor, numpy.ndarray, sequence or mapping): The maps. A mapping
                    ``{title: map}`` gives the titles; a sequence gives one map per item;
                    a single array is split along its leading dimensions, so the
                    ``(L, N, C, H, W)`` LEG-TV lambda stack or an ``(N, C, H, W)`` batch
                    gives one panel per map. Each item is any layout accepted by
                    :func:`attr_to_hwc`; with ``channel_reduction="none"`` every channel
                    becomes a panel.
        image (Tensor or numpy.ndarray, optional): The image, see
                    :func:`visualize_saliency`; required unless ``style`` is
                    ``"heatmap_only"`` and ``show_image`` is False.
                    Default: None
        style (str, optional): See :func:`visualize_saliency`.
                    Default: ``"overlay"``
        sign (str or sequence of str, optional): One sign for all panels or one per map.
                    Default: ``"absolute_value"``
        channel_reduction (str, optional): See :func:`attr_to_hwc`.
                    Default: ``"sum"``
        titles (sequence of str, optional): One title per map (not allowed with a
                    mapping, whose keys are the titles).
                    Default: None
        show_image (bool, optional): Adds the image as the first panel.
                    Default: True
        image_title (str, optional): Title of the image panel.
                    Default: ``"image"``
        ncols (int, optional): Panels per row; all in one row if None.
                    Default: None
        cmap, alpha_overlay, outlier_perc, show_colorbar, save_path, dpi, show:
                    As in :func:`visualize_saliency`.
        panel_size (float, optional): Width and height of each panel, in inches.
                    Default: 3.0

    Returns:
        2-element tuple of **figure**, **axes**: the ``Figure`` and a 2-D numpy array of
        its ``Axes`` (rows x columns; unused cells are hidden).

    Examples::

        >>> lams = [0.1, 0.3]
        >>> stack = LEG(model).attribute(x, target=281, penalty="tv", lam=lams)
        >>> fig, axes = visualize_saliency_multiple(
        ...     stack, unnormalize(x), "gray", channel_reduction="mean_abs",
        ...     titles=[f"LEG-TV lam={l}" for l in lams], save_path="tv.png")
    """
    check_choice(style, STYLES, "style")
    check_alpha(alpha_overlay)
    maps, titles = _collect_maps(attrs, titles, channel_reduction)
    signs = _per_map_signs(sign, len(maps))
    if image is None and show_image:
        raise ValueError("image: show_image=True needs the image; pass image=... or show_image=False")
    img = _prepare_image(image, style, maps[0].shape)

    n_panels = len(maps) + int(show_image)
    ncols, nrows = panel_grid(n_panels, ncols)
    fig = new_figure((panel_size * ncols, panel_size * nrows + 0.3 * show_colorbar), show)
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    flat = axes.ravel()
    if show_image:
        setup_axis(flat[0])
        draw_image(flat[0], img)  # type: ignore[arg-type]
        flat[0].set_title(image_title, fontsize=10)
    for i, m in enumerate(maps):
        _draw(
            flat[int(show_image) + i], m, img, style, signs[i], cmap, alpha_overlay, outlier_perc,
            show_colorbar, titles[i] if titles is not None else None,
        )
    hide_unused(flat[n_panels:])
    fig.tight_layout()
    finish(fig, save_path, dpi, show)
    return fig, axes


def _collect_maps(
    attrs: Union[ArrayLike, Sequence[ArrayLike], Mapping[str, ArrayLike]],
    titles: Optional[Sequence[str]],
    channel_reduction: str,
) -> Tuple[List[np.ndarray], Optional[Sequence[str]]]:
    # The 2-D maps of ``attrs`` (all of one size) and their titles.
    if isinstance(attrs, Mapping):
        if titles is not None:
            raise ValueError("titles: not allowed when attrs is a mapping (its keys are the titles)")
        titles = [str(k) for k in attrs]
        items: List[ArrayLike] = list(attrs.values())
    elif isinstance(attrs, (Tensor, np.ndarray)):
        items = [attrs]
    elif isinstance(attrs, Sequence) and not isinstance(attrs, str):
        items = list(attrs)
    else:
        raise TypeError(
            "attrs: expected a tensor, an array, a sequence or a mapping of them, "
            f"got {type(attrs).__name__}"
        )
    maps: List[np.ndarray] = []
    for i, item in enumerate(items):
        try:
            maps.extend(_maps_2d(item, channel_reduction))
        except (ValueError, TypeError) as err:
            raise type(err)(f"attrs[{i}]: {err}") from err
    if not maps:
        raise ValueError("attrs: no maps given")
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"titles: got {len(titles)} titles for {len(maps)} maps")
    if any(m.shape != maps[0].shape for m in maps):
        raise ValueError(f"attrs: maps differ in size: {sorted({m.shape for m in maps})}")
    return maps, titles


def _per_map_signs(sign: Union[str, Sequence[str]], n_maps: int) -> List[str]:
    signs = [sign] * n_maps if isinstance(sign, str) else list(sign)
    if len(signs) != n_maps:
        raise ValueError(f"sign: got {len(signs)} signs for {n_maps} maps")
    for s in signs:
        check_choice(s, SIGNS, "sign")
    return signs
