"""Plot saliency maps in Captum's conventions and the LEG reference's styles.

Two layers:

* :func:`attr_to_hwc` / :func:`image_to_hwc` turn attributions and images into the
  ``(H, W, C)`` numpy arrays that Captum's
  :func:`~captum.attr.visualization.visualize_image_attr` and
  :func:`~captum.attr.visualization.visualize_image_attr_multiple` expect, with the
  channel combination chosen explicitly.
* :func:`visualize_saliency` (one map) and :func:`visualize_saliency_multiple` (several
  maps, e.g. several lambdas or several methods, in one figure) draw the reference's three
  styles ``"heatmap_only"``, ``"gray"`` and ``"overlay"`` with Captum's sign options.
  Unlike Captum's plotting functions they never fail on an all-zero map or on a sign with
  no values (Captum asserts ``scale_factor != 0`` there), and they only touch pyplot when
  asked to, so they work headless.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum.attr._utils.visualization import _cumulative_sum_threshold
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, LinearSegmentedColormap
from matplotlib.figure import Figure
from torch import Tensor

__all__ = [
    "CHANNEL_REDUCTIONS",
    "SIGNS",
    "STYLES",
    "attr_to_hwc",
    "image_to_hwc",
    "normalize_attr",
    "visualize_saliency",
    "visualize_saliency_multiple",
]

ArrayLike = Union[Tensor, np.ndarray]

#: Channel combinations accepted by ``channel_reduction``.
CHANNEL_REDUCTIONS = ("sum", "mean", "mean_abs", "sum_abs", "max_abs", "none")
#: Sign options, as in Captum.
SIGNS = ("all", "positive", "negative", "absolute_value")
#: The reference implementation's plotting styles.
STYLES = ("heatmap_only", "gray", "overlay")

# Captum's default colour maps per sign, so figures read the same as Captum's.
_DEFAULT_CMAPS: Dict[str, Union[str, Colormap]] = {
    "all": LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"]),
    "positive": "Greens",
    "negative": "Reds",
    "absolute_value": "Blues",
}


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if isinstance(x, tuple) and len(x) == 1:  # Captum's tuple-in, tuple-out convention
        x = x[0]
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def _check_choice(value: str, choices: Sequence[str], name: str) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")


def _reduce_channels(a: np.ndarray, channel_reduction: str) -> np.ndarray:
    # ``a`` has channels on axis -3 (..., C, H, W); the result keeps a channel axis.
    if channel_reduction == "none":
        return a
    if channel_reduction == "sum":
        out = a.sum(axis=-3)
    elif channel_reduction == "mean":
        out = a.mean(axis=-3)
    elif channel_reduction == "mean_abs":
        out = np.abs(a).mean(axis=-3)
    elif channel_reduction == "sum_abs":
        out = np.abs(a).sum(axis=-3)
    else:  # "max_abs"
        out = np.abs(a).max(axis=-3)
    return out[..., None, :, :]


def attr_to_hwc(
    attr: ArrayLike,
    channel_reduction: str = "sum",
) -> np.ndarray:
    r"""
    Converts attributions in PyTorch layout to the channels-last numpy layout that
    Captum's image visualisations expect.

    Args:

        attr (Tensor or numpy.ndarray): Attribution(s) in channels-first layout (a
                    1-tuple holding one is unwrapped):
                    ``(H, W)``, ``(C, H, W)``, ``(N, C, H, W)`` (a batch, as returned by
                    ``attribute``) or ``(L, N, C, H, W)`` (the lambda stack returned by
                    LEG-TV with several ``lam``). Leading dimensions are kept.
        channel_reduction (str, optional): How the channels are combined:

                    - ``"sum"``: signed sum over channels (what Captum's
                      ``visualize_image_attr`` does).
                    - ``"mean"``: signed mean over channels.
                    - ``"mean_abs"``: mean of absolute values (the LEG reference's
                      combination for RGB; the result is non-negative).
                    - ``"sum_abs"`` / ``"max_abs"``: sum / maximum of absolute values.
                    - ``"none"``: keep every channel.

                    Default: ``"sum"``

    Returns:
        numpy.ndarray: float64 array of shape ``(..., H, W, C')`` where the leading
        dimensions are those of ``attr`` before ``(C, H, W)``, and ``C'`` is 1 for a
        reduction and ``C`` for ``"none"``. A ``(C, H, W)`` input gives ``(H, W, C')``,
        ready for ``visualize_image_attr(attr_to_hwc(a[0]), ...)``.

    Examples::

        >>> attr = LEG(model).attribute(x, target=281)       # (1, 3, 224, 224)
        >>> hwc = attr_to_hwc(attr[0], "mean_abs")            # (224, 224, 1)
        >>> visualize_image_attr(hwc, image_to_hwc(unnormalize(x)), "blended_heat_map")
    """
    _check_choice(channel_reduction, CHANNEL_REDUCTIONS, "channel_reduction")
    a = _to_numpy(attr, "attr").astype(np.float64, copy=False)
    if a.ndim == 2:
        a = a[None]
    if not 3 <= a.ndim <= 5:
        raise ValueError(
            "attr: expected a (H, W), (C, H, W), (N, C, H, W) or (L, N, C, H, W) array, "
            f"got shape {tuple(a.shape)}"
        )
    if 0 in a.shape:
        raise ValueError(f"attr: empty array of shape {tuple(a.shape)}")
    return np.moveaxis(_reduce_channels(a, channel_reduction), -3, -1)


def image_to_hwc(image: ArrayLike) -> np.ndarray:
    r"""
    Converts an image to a float ``(H, W, C)`` array with values in [0, 1].

    Args:

        image (Tensor or numpy.ndarray): ``(1, C, H, W)`` or ``(C, H, W)`` tensor with
                    values in [0, 1] (undo an ImageNet normalisation first, e.g. with
                    :func:`captum_leg.models.unnormalize`), or an ``(H, W, C)`` /
                    ``(H, W)`` array, uint8 in [0, 255] or float in [0, 1] (floats with
                    a maximum above 1 are read as [0, 255], as Captum does).
                    ``C`` is 1 or 3 (a 4th, alpha, channel is dropped).

    Returns:
        numpy.ndarray: float64 array of shape ``(H, W, C)``, values in [0, 1].
    """
    is_tensor = isinstance(image, Tensor)
    img = _to_numpy(image, "image")
    if is_tensor:
        if img.ndim == 4 and img.shape[0] == 1:
            img = img[0]
        if img.ndim == 2:
            img = img[None]
        if img.ndim != 3:
            raise ValueError(
                f"image: expected a (1, C, H, W) or (C, H, W) tensor, got shape {tuple(img.shape)}"
            )
        img = np.moveaxis(img, 0, -1)
    elif img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image: expected (H, W, C) with C in (1, 3, 4), got shape {tuple(img.shape)}"
        )
    img = img[..., :3]
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    img = img.astype(np.float64)
    if img.size and img.min() < -1e-3:
        raise ValueError(
            "image: has negative values; pass pixels in [0, 1] or [0, 255] "
            "(for an ImageNet-normalised tensor use captum_leg.models.unnormalize first)"
        )
    if img.size and img.max() > 1.0:
        img = img / 255.0
    return np.clip(img, 0.0, 1.0)


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
    _check_choice(sign, SIGNS, "sign")
    if not 0 <= outlier_perc < 100:
        raise ValueError(f"outlier_perc: expected a value in [0, 100), got {outlier_perc}")
    a = np.asarray(attr, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"attr: expected a 2-D (H, W) map, got shape {a.shape}")
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    if sign == "positive":
        a = np.maximum(a, 0.0)
    elif sign == "negative":
        a = -np.minimum(a, 0.0)
    elif sign == "absolute_value":
        a = np.abs(a)
    if not np.any(a):
        return np.zeros_like(a)
    # Captum's outlier rule; safe here because the map has a non-zero value.
    threshold = float(_cumulative_sum_threshold(np.abs(a), 100.0 - outlier_perc))
    if threshold <= 0.0:  # mass concentrated in very few pixels: fall back to the max
        threshold = float(np.abs(a).max())
    return np.clip(a / threshold, -1.0, 1.0)


def _gray(img: np.ndarray) -> np.ndarray:
    return img.mean(axis=-1)


def _setup_axis(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(visible=False)


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
    vmin = -1.0 if sign == "all" else 0.0
    cmap = cmap if cmap is not None else _DEFAULT_CMAPS[sign]
    _setup_axis(ax)
    if style == "heatmap_only":
        im = ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=1.0)
    elif style == "gray":
        # The map with constant opacity over the grey image (Captum's blended_heat_map).
        ax.imshow(_gray(image), cmap="gray", vmin=0.0, vmax=1.0)
        im = ax.imshow(norm, cmap=cmap, vmin=vmin, vmax=1.0, alpha=alpha_overlay)
    else:  # "overlay"
        # The colour photo stays visible where the map is zero: opacity grows with |map|.
        ax.imshow(image if image.shape[-1] == 3 else image[..., 0], cmap="gray", vmin=0, vmax=1)
        im = ax.imshow(
            norm, cmap=cmap, vmin=vmin, vmax=1.0, alpha=alpha_overlay * np.abs(norm)
        )
    if not np.any(norm):
        ax.text(
            0.5, 0.5, f"no {sign} values" if sign != "all" else "all zero",
            transform=ax.transAxes, ha="center", va="center", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"},
        )
    if show_colorbar:
        cbar = ax.figure.colorbar(im, ax=ax, orientation="horizontal", fraction=0.046, pad=0.04)
        cbar.solids.set_alpha(1.0)  # the bar shows the colour map, not the blended opacity
    if title:
        ax.set_title(title, fontsize=10)


def _maps_2d(attr: ArrayLike, channel_reduction: str) -> List[np.ndarray]:
    # Every map in ``attr`` as a 2-D array; a kept channel axis yields one map per channel.
    hwc = attr_to_hwc(attr, channel_reduction)
    flat = hwc.reshape(-1, *hwc.shape[-3:])
    return [m[..., c] for m in flat for c in range(m.shape[-1])]


def _prepare_image(image: Optional[ArrayLike], style: str, hw: Tuple[int, int]) -> Optional[np.ndarray]:
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


def _finish(fig: Figure, save_path: Optional[Union[str, Path]], dpi: int, show: bool) -> None:
    if save_path is not None:
        fig.savefig(save_path, dpi=dpi, bbox_inches="tight")
    if show:
        import matplotlib.pyplot as plt  # only when asked: keeps headless use pyplot-free

        plt.show()


def _new_figure(fig_size: Tuple[float, float], show: bool) -> Figure:
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=fig_size)
    return Figure(figsize=fig_size)


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
    """
    _check_choice(style, STYLES, "style")
    _check_choice(sign, SIGNS, "sign")
    if not 0.0 <= alpha_overlay <= 1.0:
        raise ValueError(f"alpha_overlay: expected a value in [0, 1], got {alpha_overlay}")
    maps = _maps_2d(attr, channel_reduction)
    if len(maps) != 1:
        raise ValueError(
            f"attr: expected a single map, got {len(maps)} (shape {tuple(attr.shape)} with "
            f"channel_reduction={channel_reduction!r}); use visualize_saliency_multiple"
        )
    img = _prepare_image(image, style, maps[0].shape)
    if plt_fig_axis is None:
        fig = _new_figure(fig_size, show)
        ax = fig.subplots()
    else:
        fig, ax = plt_fig_axis
    _draw(ax, maps[0], img, style, sign, cmap, alpha_overlay, outlier_perc, show_colorbar, title)
    _finish(fig, save_path, dpi, show)
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
    _check_choice(style, STYLES, "style")
    if not 0.0 <= alpha_overlay <= 1.0:
        raise ValueError(f"alpha_overlay: expected a value in [0, 1], got {alpha_overlay}")
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
    signs = [sign] * len(maps) if isinstance(sign, str) else list(sign)
    if len(signs) != len(maps):
        raise ValueError(f"sign: got {len(signs)} signs for {len(maps)} maps")
    for s in signs:
        _check_choice(s, SIGNS, "sign")
    hw = maps[0].shape
    if any(m.shape != hw for m in maps):
        raise ValueError(f"attrs: maps differ in size: {sorted({m.shape for m in maps})}")
    if image is None and show_image:
        raise ValueError("image: show_image=True needs the image; pass image=... or show_image=False")
    img = _prepare_image(image, style, hw)

    n_panels = len(maps) + int(show_image)
    if ncols is None:
        ncols = n_panels
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols: expected a positive int, got {ncols!r}")
    ncols = min(ncols, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = _new_figure((panel_size * ncols, panel_size * nrows + 0.3 * show_colorbar), show)
    axes = np.atleast_2d(np.asarray(fig.subplots(nrows, ncols, squeeze=False)))
    flat = axes.ravel()
    k = 0
    if show_image:
        _setup_axis(flat[0])
        flat[0].imshow(img if img.shape[-1] == 3 else img[..., 0], cmap="gray", vmin=0, vmax=1)
        flat[0].set_title(image_title, fontsize=10)
        k = 1
    for i, m in enumerate(maps):
        _draw(
            flat[k + i], m, img, style, signs[i], cmap, alpha_overlay, outlier_perc,
            show_colorbar, titles[i] if titles is not None else None,
        )
    for ax in flat[n_panels:]:
        ax.set_axis_off()
    fig.tight_layout()
    _finish(fig, save_path, dpi, show)
    return fig, axes
