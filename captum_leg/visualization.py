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
  :func:`visualize_signal_saliency` draws the map of a 1-D signal on the signal, and
  :func:`visualize_volume_saliency` a volume's map as a row of slices.
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
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.image import AxesImage
from matplotlib.colors import Colormap, LinearSegmentedColormap
from matplotlib.figure import Figure
from torch import Tensor

__all__ = [
    "CHANNEL_REDUCTIONS",
    "SIGNAL_STYLES",
    "SIGNS",
    "STYLES",
    "attr_to_hwc",
    "image_to_hwc",
    "normalize_attr",
    "visualize_saliency",
    "visualize_saliency_multiple",
    "visualize_signal_saliency",
    "visualize_volume_saliency",
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


def _reduce_channels(a: np.ndarray, channel_reduction: str, channel_axis: int = -3) -> np.ndarray:
    # Channels on ``channel_axis`` (-3 for (..., C, H, W)); the result keeps a channel axis.
    if channel_reduction == "none":
        return a
    if channel_reduction == "sum":
        out = a.sum(axis=channel_axis)
    elif channel_reduction == "mean":
        out = a.mean(axis=channel_axis)
    elif channel_reduction == "mean_abs":
        out = np.abs(a).mean(axis=channel_axis)
    elif channel_reduction == "sum_abs":
        out = np.abs(a).sum(axis=channel_axis)
    else:  # "max_abs"
        out = np.abs(a).max(axis=channel_axis)
    return np.expand_dims(out, channel_axis)


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


def _select_sign(a: np.ndarray, sign: str) -> np.ndarray:
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
    _check_choice(sign, SIGNS, "sign")
    if not 0 <= outlier_perc < 100:
        raise ValueError(f"outlier_perc: expected a value in [0, 100), got {outlier_perc}")
    a = np.asarray(attr, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"attr: expected a 2-D (H, W) map, got shape {a.shape}")
    a = _select_sign(a, sign)
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


def _label_zero(ax: Axes, norm: np.ndarray, sign: str) -> None:
    if not np.any(norm):
        ax.text(
            0.5, 0.5, f"no {sign} values" if sign != "all" else "all zero",
            transform=ax.transAxes, ha="center", va="center", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"},
        )


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
    _draw_normalized(ax, norm, image, style, sign, cmap, alpha_overlay, show_colorbar, title)


def _draw_normalized(
    ax: Axes,
    norm: np.ndarray,
    image: Optional[np.ndarray],
    style: str,
    sign: str,
    cmap: Optional[Union[str, Colormap]],
    alpha_overlay: float,
    show_colorbar: bool,
    title: Optional[str],
    label_zero: bool = True,
) -> AxesImage:
    # ``norm`` is already normalised (see normalize_attr); returns the map's image.
    # ``label_zero``: write on a blank map that it is blank (off for a zero slice of a
    # volume whose map is elsewhere).
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
    if label_zero:
        _label_zero(ax, norm, sign)
    if show_colorbar:
        cbar = ax.figure.colorbar(im, ax=ax, orientation="horizontal", fraction=0.046, pad=0.04)
        cbar.solids.set_alpha(1.0)  # the bar shows the colour map, not the blended opacity
    if title:
        ax.set_title(title, fontsize=10)
    return im


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


# ------------------------------------------------------------------ 1-D signals, 3-D volumes

#: Styles of :func:`visualize_signal_saliency`.
SIGNAL_STYLES = ("overlay", "colored_graph", "line")

# A line coloured by the map must stay visible where the map is zero: Captum's default
# for "all" is white there, so the graph style uses a diverging map with a dark middle.
_GRAPH_CMAP_ALL = "RdYlGn"
_LINE_STYLES = ("-", "--", ":", "-.")


def _one_example(x: ArrayLike, name: str, spatial: int, layouts: str) -> np.ndarray:
    """``(*S)``, ``(C, *S)`` or ``(1, C, *S)`` with ``spatial`` axes ``S``, as float64 ``(C, *S)``."""
    a = _to_numpy(x, name).astype(np.float64, copy=False)
    if a.ndim == spatial + 2:
        if a.shape[0] != 1:
            raise ValueError(
                f"{name}: one example at a time, got a batch of {a.shape[0]} (shape "
                f"{tuple(a.shape)}); pass {name}[i:i + 1]"
            )
        a = a[0]
    elif a.ndim == spatial:
        a = a[None]
    if a.ndim != spatial + 1:
        raise ValueError(f"{name}: expected {layouts}, got shape {tuple(a.shape)}")
    if 0 in a.shape:
        raise ValueError(f"{name}: empty array of shape {tuple(a.shape)}")
    return a


def _cell_edges(xs: np.ndarray) -> np.ndarray:
    # Edges around each sample (midpoints between neighbours), for a band of coloured cells.
    if xs.size == 1:
        return np.array([xs[0] - 0.5, xs[0] + 0.5])
    mid = (xs[1:] + xs[:-1]) / 2
    return np.concatenate([[2 * xs[0] - mid[0]], mid, [2 * xs[-1] - mid[-1]]])


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
    _check_choice(style, SIGNAL_STYLES, "style")
    _check_choice(sign, SIGNS, "sign")
    _check_choice(channel_reduction, CHANNEL_REDUCTIONS, "channel_reduction")
    if not 0.0 <= alpha_overlay <= 1.0:
        raise ValueError(f"alpha_overlay: expected a value in [0, 1], got {alpha_overlay}")
    layouts = "a 1-D signal (L,), (C, L) or (1, C, L)"
    a = _one_example(attr, "attr", 1, layouts)
    channels, length = a.shape
    sig: Optional[np.ndarray] = None
    if signal is not None:
        sig = _one_example(signal, "signal", 1, layouts)
        if sig.shape[1] != length:
            raise ValueError(f"signal: length {sig.shape[1]} does not match the attribution's {length}")
        if channel_reduction == "none" and sig.shape[0] != channels:
            raise ValueError(
                f"signal: {sig.shape[0]} channels for a map with {channels}; with "
                "channel_reduction='none' each panel pairs a signal channel with its map"
            )
    elif style != "line":
        raise ValueError(f"signal: style={style!r} draws the map on the signal; pass signal=... or use style='line'")
    if x_values is None:
        xs = np.arange(length, dtype=np.float64)
    elif isinstance(x_values, Tensor):
        xs = x_values.detach().to("cpu", torch.float64).numpy().reshape(-1)
    else:
        xs = np.asarray(x_values, dtype=np.float64).reshape(-1)
    if xs.size != length:
        raise ValueError(f"x_values: expected {length} positions, got {xs.size}")
    n_lines = sig.shape[0] if sig is not None else channels
    if channel_labels is not None and len(channel_labels) != n_lines:
        raise ValueError(f"channel_labels: expected {n_lines} labels, got {len(channel_labels)}")

    maps = _reduce_channels(a, channel_reduction, channel_axis=0)  # (panels, L)
    n_panels = maps.shape[0]
    if plt_fig_axis is None:
        fig = _new_figure(fig_size if fig_size is not None else (8.0, 1.8 * n_panels + 0.4), show)
        fig.set_layout_engine("constrained")
        axes = np.asarray(fig.subplots(n_panels, 1, sharex=True, squeeze=False))[:, 0]
    else:
        fig, given = plt_fig_axis
        axes = np.array([given] if isinstance(given, Axes) else list(given), dtype=object)
        if axes.size != n_panels:
            raise ValueError(f"plt_fig_axis: expected {n_panels} axes (one per panel), got {axes.size}")
    vmin = -1.0 if sign == "all" else 0.0
    if cmap is None:
        cmap = _GRAPH_CMAP_ALL if (style == "colored_graph" and sign == "all") else _DEFAULT_CMAPS[sign]
    color_norm = Normalize(vmin=vmin, vmax=1.0)
    # One normalisation for all panels, so that channels are drawn on one scale.
    values = _select_sign(maps, sign) if style == "line" else normalize_attr(maps, sign, outlier_perc)
    mappable = None
    for i, ax in enumerate(axes):
        if sig is None:
            lines = None
        else:
            lines = sig[i : i + 1] if channel_reduction == "none" else sig
        labels = None
        if channel_labels is not None:
            labels = [channel_labels[i]] if channel_reduction == "none" else list(channel_labels)
        if style == "line":
            ax.axhline(0.0, color="0.6", lw=0.8)
            ax.plot(xs, values[i], color="C0", lw=1.2, drawstyle="steps-mid")
            ax.fill_between(xs, 0.0, values[i], step="mid", color="C0", alpha=0.3)
            ax.set_ylabel("attribution")
            if lines is not None:
                twin = ax.twinx()
                for line in lines:
                    twin.plot(xs, line, color="0.45", lw=0.8)
                twin.set_ylabel("signal", color="0.45")
        else:
            lo, hi = float(lines.min()), float(lines.max())  # type: ignore[union-attr]
            pad = 0.05 * (hi - lo) if hi > lo else 1.0
            lo, hi = lo - pad, hi + pad
            if style == "overlay":
                mappable = ax.pcolormesh(
                    _cell_edges(xs), [lo, hi], values[i][None, :], cmap=cmap, norm=color_norm,
                    alpha=alpha_overlay, shading="flat",
                )
                for j, line in enumerate(lines):  # type: ignore[union-attr]
                    # Black over any colour map; several channels differ by their dashes.
                    ax.plot(xs, line, color="black", lw=1.0, ls=_LINE_STYLES[j % len(_LINE_STYLES)],
                            label=labels[j] if labels else None)
            else:  # "colored_graph": segment k joins samples k and k+1, coloured by their mean
                for j, line in enumerate(lines):  # type: ignore[union-attr]
                    points = np.stack([xs, line], axis=1)
                    segments = np.stack([points[:-1], points[1:]], axis=1)
                    coll = LineCollection(segments, cmap=cmap, norm=color_norm, lw=2.0,
                                          label=labels[j] if labels else None)
                    coll.set_array((values[i][:-1] + values[i][1:]) / 2)
                    ax.add_collection(coll)
                    mappable = coll
            ax.set_ylim(lo, hi)
            _label_zero(ax, values[i], sign)
        ax.set_xlim(float(_cell_edges(xs)[0]), float(_cell_edges(xs)[-1]))
        if labels is not None and channel_reduction == "none":
            ax.set_title(labels[0], fontsize=10)
        elif labels is not None and style != "line":
            ax.legend(fontsize=8, loc="upper right")
        elif channel_reduction == "none" and channels > 1:
            ax.set_title(f"channel {i}", fontsize=10)
    if show_colorbar and mappable is not None:
        cbar = fig.colorbar(mappable, ax=list(axes), orientation="vertical", fraction=0.03, pad=0.02)
        if cbar.solids is not None:
            cbar.solids.set_alpha(1.0)
    if title:
        fig.suptitle(title, fontsize=11)
    _finish(fig, save_path, dpi, show)
    return fig, axes


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
    _check_choice(style, STYLES, "style")
    _check_choice(sign, SIGNS, "sign")
    _check_choice(channel_reduction, CHANNEL_REDUCTIONS, "channel_reduction")
    if not 0.0 <= alpha_overlay <= 1.0:
        raise ValueError(f"alpha_overlay: expected a value in [0, 1], got {alpha_overlay}")
    layouts = "a volume (D, H, W), (C, D, H, W) or (1, C, D, H, W)"
    a = _reduce_channels(_one_example(attr, "attr", 3, layouts), channel_reduction, channel_axis=0)
    if a.shape[0] != 1:
        raise ValueError(
            f"attr: channel_reduction={channel_reduction!r} leaves {a.shape[0]} maps; pass "
            "one channel (attr[:, c]) or reduce the channels"
        )
    a = a[0]
    vol: Optional[np.ndarray] = None
    if volume is not None:
        vol = _one_example(volume, "volume", 3, layouts).mean(axis=0)
        if vol.shape != a.shape:
            raise ValueError(f"volume: spatial size {vol.shape} does not match the attribution's {a.shape}")
        lo, hi = float(vol.min()), float(vol.max())
        vol = (vol - lo) / (hi - lo) if hi > lo else np.zeros_like(vol)
    elif style != "heatmap_only" or show_volume:
        what = "show_volume=True" if show_volume else f"style={style!r}"
        raise ValueError(f"volume: {what} needs the volume; pass volume=...")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -3 <= axis <= 2:
        raise ValueError(f"axis: expected a spatial axis 0, 1 or 2 (or -3 to -1), got {axis!r}")
    axis = int(axis) % 3
    size = a.shape[axis]
    if isinstance(slices, (int, np.integer)) and not isinstance(slices, bool):
        if slices < 1:
            raise ValueError(f"slices: expected a positive count or a sequence of indices, got {slices}")
        index = np.unique(np.round(np.linspace(0, size - 1, min(int(slices), size))).astype(int))
    elif isinstance(slices, (Sequence, np.ndarray)) and not isinstance(slices, str) and len(slices) > 0:
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in slices):
            raise TypeError(f"slices: expected ints, got {list(slices)!r}")
        if not all(0 <= int(i) < size for i in slices):
            raise ValueError(f"slices: indices must lie in [0, {size}) along axis {axis}, got {list(slices)}")
        index = np.asarray([int(i) for i in slices])
    else:
        raise TypeError(f"slices: expected a positive count or a non-empty sequence of indices, got {slices!r}")

    # One normalisation for the whole volume: slices are drawn on one scale.
    norm = normalize_attr(a.reshape(a.shape[0], -1), sign, outlier_perc).reshape(a.shape)
    norm = np.moveaxis(norm, axis, 0)
    vol_slices = np.moveaxis(vol, axis, 0) if vol is not None else None
    n = len(index)
    if ncols is None:
        ncols = n
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols: expected a positive int, got {ncols!r}")
    ncols = min(ncols, n)
    map_rows = math.ceil(n / ncols)
    rows_per_block = 2 if show_volume else 1
    nrows = map_rows * rows_per_block
    fig = _new_figure((panel_size * ncols, panel_size * nrows + 0.4 * bool(title) + 0.4 * show_colorbar), show)
    fig.set_layout_engine("constrained")
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    im = None
    for k, idx in enumerate(index):
        r, c = divmod(k, ncols)
        label = f"axis {axis} = {idx}"
        if show_volume:
            vax = axes[r * 2, c]
            _setup_axis(vax)
            vax.imshow(vol_slices[idx], cmap="gray", vmin=0.0, vmax=1.0)  # type: ignore[index]
            vax.set_title(label, fontsize=9)
        image = vol_slices[idx][..., None] if vol_slices is not None else None
        im = _draw_normalized(
            axes[r * rows_per_block + rows_per_block - 1, c], norm[idx], image, style, sign, cmap,
            alpha_overlay, False, None if show_volume else label, label_zero=not np.any(norm),
        )
    for k in range(n, map_rows * ncols):
        r, c = divmod(k, ncols)
        for row in range(rows_per_block):
            axes[r * rows_per_block + row, c].set_axis_off()
    if show_colorbar and im is not None:
        cbar = fig.colorbar(im, ax=list(axes.ravel()), orientation="horizontal", fraction=0.05, pad=0.02)
        if cbar.solids is not None:
            cbar.solids.set_alpha(1.0)
    if title:
        fig.suptitle(title, fontsize=11)
    _finish(fig, save_path, dpi, show)
    return fig, axes
