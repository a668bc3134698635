"""Tests for captum_leg.visualization (synthetic maps only; no model needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from captum_leg.visualization import (
    CHANNEL_REDUCTIONS,
    SIGNAL_STYLES,
    SIGNS,
    STYLES,
    attr_to_hwc,
    draw_mask_outline,
    image_to_hwc,
    normalize_attr,
    visualize_saliency,
    visualize_saliency_multiple,
    visualize_signal_saliency,
    visualize_volume_saliency,
)

H, W = 20, 24


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def rgb_attr() -> torch.Tensor:
    return torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def rgb_image() -> torch.Tensor:
    return torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- conversion


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((H, W), (H, W, 1)),
        ((3, H, W), (H, W, 1)),
        ((2, 3, H, W), (2, H, W, 1)),
        ((4, 2, 3, H, W), (4, 2, H, W, 1)),
    ],
)
def test_attr_to_hwc_shapes(shape, expected):
    assert attr_to_hwc(torch.randn(shape), "sum").shape == expected
    keep = attr_to_hwc(np.random.randn(*shape), "none")
    assert keep.shape == expected[:-1] + ((shape[-3] if len(shape) > 2 else 1),)


def test_attr_to_hwc_unwraps_captum_tuple():
    a = torch.randn(1, 3, H, W)
    np.testing.assert_array_equal(attr_to_hwc((a,), "mean_abs"), attr_to_hwc(a, "mean_abs"))


def test_attr_to_hwc_channel_values():
    a = torch.randn(3, H, W, dtype=torch.float64)
    an = a.numpy()
    np.testing.assert_allclose(attr_to_hwc(a, "sum")[..., 0], an.sum(0))
    np.testing.assert_allclose(attr_to_hwc(a, "mean")[..., 0], an.mean(0))
    np.testing.assert_allclose(attr_to_hwc(a, "mean_abs")[..., 0], np.abs(an).mean(0))
    np.testing.assert_allclose(attr_to_hwc(a, "sum_abs")[..., 0], np.abs(an).sum(0))
    np.testing.assert_allclose(attr_to_hwc(a, "max_abs")[..., 0], np.abs(an).max(0))
    np.testing.assert_allclose(attr_to_hwc(a, "none"), an.transpose(1, 2, 0))


def test_attr_to_hwc_lambda_stack_order():
    stack = torch.randn(2, 3, 3, H, W)  # (L, N, C, H, W)
    out = attr_to_hwc(stack, "mean_abs")
    np.testing.assert_allclose(out[1, 2, ..., 0], stack[1, 2].abs().mean(0).numpy(), rtol=1e-6)


def test_attr_to_hwc_feeds_captum():
    from captum.attr import visualization as viz

    a = torch.randn(1, 3, H, W)
    fig, _ = viz.visualize_image_attr(
        attr_to_hwc(a[0]), image_to_hwc(torch.rand(1, 3, H, W)), "blended_heat_map",
        sign="all", use_pyplot=False,
    )
    assert isinstance(fig, Figure)


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (torch.randn(W), ValueError, "attr"),
        (torch.randn(1, 1, 1, 3, H, W), ValueError, "attr"),
        (torch.zeros(0, 3, H, W), ValueError, "attr"),
        ([[1.0, 2.0]], TypeError, "attr"),
    ],
)
def test_attr_to_hwc_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        attr_to_hwc(bad)


def test_bad_channel_reduction_is_named():
    with pytest.raises(ValueError, match="channel_reduction"):
        attr_to_hwc(torch.randn(3, H, W), "median")


def test_image_to_hwc_layouts():
    t = torch.rand(1, 3, H, W)
    expected = t[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(image_to_hwc(t), expected, rtol=1e-6)
    np.testing.assert_allclose(image_to_hwc(t[0]), expected, rtol=1e-6)
    u8 = (expected * 255).astype(np.uint8)
    np.testing.assert_allclose(image_to_hwc(u8), u8 / 255.0)
    np.testing.assert_allclose(image_to_hwc(u8.astype(float)), u8 / 255.0)
    assert image_to_hwc(np.zeros((H, W))).shape == (H, W, 1)
    assert image_to_hwc(np.zeros((H, W, 4), np.uint8)).shape == (H, W, 3)
    with pytest.raises(ValueError, match="unnormalize"):
        image_to_hwc(torch.randn(1, 3, H, W) - 3)
    with pytest.raises(ValueError, match="image"):
        image_to_hwc(np.zeros((H, W, 2)))
    with pytest.raises(TypeError, match="image"):
        image_to_hwc("cat.png")


# -------------------------------------------------------------------------- normalisation


def test_normalize_attr_signs():
    a = np.linspace(-2, 1, H * W).reshape(H, W)
    pos = normalize_attr(a, "positive", outlier_perc=0)
    neg = normalize_attr(a, "negative", outlier_perc=0)
    assert pos.min() == 0 and pos.max() == pytest.approx(1)
    assert np.all(pos[a <= 0] == 0)
    assert neg.max() == pytest.approx(1) and np.all(neg[a >= 0] == 0)
    allv = normalize_attr(a, "all", outlier_perc=0)
    assert allv.min() == pytest.approx(-1) and allv.max() == pytest.approx(0.5)


@pytest.mark.parametrize("sign", SIGNS)
def test_normalize_attr_zero_map(sign):
    out = normalize_attr(np.zeros((H, W)), sign)
    assert out.shape == (H, W) and not out.any()


def test_normalize_attr_errors():
    with pytest.raises(ValueError, match="sign"):
        normalize_attr(np.ones((H, W)), "both")
    with pytest.raises(ValueError, match="outlier_perc"):
        normalize_attr(np.ones((H, W)), outlier_perc=100)
    with pytest.raises(ValueError, match="attr"):
        normalize_attr(np.ones((3, H, W)))


# ---------------------------------------------------------------------------- plotting


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("sign", SIGNS)
@pytest.mark.parametrize("channels", [1, 3])
def test_every_style_and_sign(style, sign, channels):
    g = torch.Generator().manual_seed(2)
    attr = torch.randn(1, channels, H, W, generator=g)
    image = torch.rand(1, channels, H, W, generator=g)
    fig, ax = visualize_saliency(attr, image, style, sign, title=f"{style}/{sign}")
    assert isinstance(fig, Figure)
    assert ax.get_title() == f"{style}/{sign}"
    assert len(ax.get_images()) == (1 if style == "heatmap_only" else 2)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("sign", SIGNS)
def test_zero_map_does_not_crash(style, sign, rgb_image, tmp_path):
    path = tmp_path / "zero.png"
    fig, ax = visualize_saliency(torch.zeros(1, 3, H, W), rgb_image, style, sign, save_path=path)
    assert path.exists()
    assert any("zero" in t.get_text() or "no " in t.get_text() for t in ax.texts)


def test_sign_without_values(rgb_image):
    positive_only = torch.rand(1, 3, H, W)
    _, ax = visualize_saliency(positive_only, rgb_image, "gray", "negative")
    assert ax.texts and "no negative values" in ax.texts[0].get_text()


def test_captum_fails_where_we_do_not():
    # The reason for our own normalisation: Captum asserts on an all-zero map.
    from captum.attr import visualization as viz

    with pytest.raises(AssertionError):
        viz.visualize_image_attr(np.zeros((H, W, 1)), None, "heat_map", "all", use_pyplot=False)


def test_save_png_size(rgb_attr, rgb_image, tmp_path):
    path = tmp_path / "one.png"
    visualize_saliency(
        rgb_attr, rgb_image, "overlay", "all", fig_size=(4, 3), dpi=50, save_path=path,
        show_colorbar=True,
    )
    w, h = _png_size(path)
    # bbox_inches="tight" crops the margins: smaller than 200 x 150, but not much.
    assert 60 <= w <= 200 and 60 <= h <= 150


def test_multiple_maps_titles_and_save(rgb_attr, rgb_image, tmp_path):
    path = tmp_path / "many.png"
    maps = {"LEG": rgb_attr, "LEG-TV": rgb_attr * 2, "IG": torch.zeros_like(rgb_attr)}
    fig, axes = visualize_saliency_multiple(
        maps, rgb_image, "gray", ["all", "absolute_value", "positive"],
        channel_reduction="mean", panel_size=2, dpi=50, save_path=path,
    )
    assert axes.shape == (1, 4)
    assert [a.get_title() for a in axes.ravel()] == ["image", "LEG", "LEG-TV", "IG"]
    w, h = _png_size(path)
    assert 250 <= w <= 400 and 60 <= h <= 100


def test_multiple_lambda_stack_grid(rgb_image):
    stack = torch.randn(2, 1, 3, H, W)  # two lambdas, one image
    fig, axes = visualize_saliency_multiple(
        stack, rgb_image, "heatmap_only", channel_reduction="mean_abs",
        titles=["lam=0.1", "lam=0.3"], ncols=2,
    )
    assert axes.shape == (2, 2)
    assert axes[1, 1].axison is False  # the unused cell is hidden
    assert axes[0, 1].get_title() == "lam=0.1"


def test_multiple_keep_channels_and_no_image():
    fig, axes = visualize_saliency_multiple(
        [torch.randn(3, H, W)], None, "heatmap_only", channel_reduction="none",
        show_image=False, titles=["R", "G", "B"],
    )
    assert axes.shape == (1, 3)


def test_plt_fig_axis_is_used(rgb_attr, rgb_image):
    fig = Figure()
    ax = fig.subplots()
    out_fig, out_ax = visualize_saliency(rgb_attr, rgb_image, plt_fig_axis=(fig, ax))
    assert out_fig is fig and out_ax is ax


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"style": "blended"}, ValueError, "style"),
        ({"sign": "pos"}, ValueError, "sign"),
        ({"channel_reduction": "l1"}, ValueError, "channel_reduction"),
        ({"alpha_overlay": 1.5}, ValueError, "alpha_overlay"),
        ({"image": None}, ValueError, "image"),
        ({"image": torch.rand(1, 3, H + 1, W)}, ValueError, "image"),
        ({"channel_reduction": "none"}, ValueError, "single map"),
    ],
)
def test_visualize_saliency_errors(rgb_attr, rgb_image, kwargs, exc, match):
    args = {"image": rgb_image, **kwargs}
    with pytest.raises(exc, match=match):
        visualize_saliency(rgb_attr, **args)


def test_visualize_saliency_rejects_batch(rgb_image):
    with pytest.raises(ValueError, match="visualize_saliency_multiple"):
        visualize_saliency(torch.randn(2, 3, H, W), rgb_image)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda a, i: visualize_saliency_multiple(a, i, titles=["x", "y"]), ValueError, "titles"),
        (lambda a, i: visualize_saliency_multiple([a, a], i, sign=["all"]), ValueError, "sign"),
        (lambda a, i: visualize_saliency_multiple({"x": a}, i, titles=["x"]), ValueError, "titles"),
        (lambda a, i: visualize_saliency_multiple(42, i), TypeError, "attrs"),
        (lambda a, i: visualize_saliency_multiple([], i), ValueError, "attrs"),
        (lambda a, i: visualize_saliency_multiple([a, a[..., :5]], i), ValueError, "attrs"),
        (lambda a, i: visualize_saliency_multiple([a, "x"], i), TypeError, r"attrs\[1\]"),
        (lambda a, i: visualize_saliency_multiple(a, None), ValueError, "image"),
        (lambda a, i: visualize_saliency_multiple(a, i, ncols=0), ValueError, "ncols"),
    ],
)
def test_visualize_saliency_multiple_errors(rgb_attr, rgb_image, call, exc, match):
    with pytest.raises(exc, match=match):
        call(rgb_attr, rgb_image)


def test_reduction_constants_are_exposed():
    assert "mean_abs" in CHANNEL_REDUCTIONS and "none" in CHANNEL_REDUCTIONS
    assert set(SIGNS) == {"all", "positive", "negative", "absolute_value"}


# ------------------------------------------------------------------- 1-D signals, 3-D volumes

L = 60


@pytest.fixture
def signal_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 2-channel signal and a map whose channel 1 is half of channel 0's peak."""
    g = torch.Generator().manual_seed(3)
    sig = torch.randn(1, 2, L, generator=g)
    attr = torch.zeros(1, 2, L)
    attr[0, 0, 10:20] = 2.0
    attr[0, 1, 30:40] = -1.0
    return attr, sig


@pytest.mark.parametrize("style", SIGNAL_STYLES)
@pytest.mark.parametrize("reduction, panels", [("none", 2), ("sum", 1)])
def test_signal_styles_build_one_panel_per_map(signal_pair, style, reduction, panels):
    attr, sig = signal_pair
    fig, axes = visualize_signal_saliency(attr, sig, style, channel_reduction=reduction)
    assert isinstance(fig, Figure) and isinstance(axes, np.ndarray) and axes.shape == (panels,)
    signal_lines = 2 if reduction == "sum" else 1  # every signal channel on a combined map
    for ax in axes:
        if style == "overlay":
            assert len(ax.collections) == 1 and len(ax.lines) == signal_lines
        elif style == "colored_graph":
            assert len(ax.collections) == signal_lines
        else:  # the map's step curve (and the zero line); the signal sits on a twin axis
            assert len(ax.lines) == 2
    if style == "line":
        assert len(fig.axes) == 2 * panels


def test_signal_overlay_normalises_channels_together(signal_pair):
    attr, sig = signal_pair
    _, axes = visualize_signal_saliency(attr, sig, "overlay", "all", outlier_perc=0)
    band0 = np.asarray(axes[0].collections[0].get_array()).ravel()
    band1 = np.asarray(axes[1].collections[0].get_array()).ravel()
    # One scale for both channels: channel 1's peak (half of channel 0's) reads -0.5.
    assert band0.max() == pytest.approx(1.0) and band1.min() == pytest.approx(-0.5)
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), sig[0, 0].numpy())


def test_signal_line_style_plots_unscaled_values_at_x_values(signal_pair):
    attr, sig = signal_pair
    x = np.linspace(0.0, 3.0, L)
    _, axes = visualize_signal_saliency(attr, sig, "line", "all", x_values=x)
    curve = axes[1].lines[1]
    np.testing.assert_allclose(curve.get_ydata(), attr[0, 1].numpy())
    np.testing.assert_allclose(curve.get_xdata(), x)
    lo, hi = axes[0].get_xlim()
    assert lo < 0.0 and hi > 3.0  # half a sample beyond each end
    _, axes = visualize_signal_saliency(attr, None, "line", "negative")
    np.testing.assert_allclose(axes[1].lines[1].get_ydata(), np.clip(-attr[0, 1].numpy(), 0, None))


def test_signal_labels_zero_map_and_saved_file(signal_pair, tmp_path):
    attr, sig = signal_pair
    path = tmp_path / "signal.png"
    fig, axes = visualize_signal_saliency(
        torch.zeros(2, L), sig[0], "overlay", channel_labels=["ecg", "resp"], title="t",
        show_colorbar=True, fig_size=(6, 3), dpi=50, save_path=path,
    )
    assert [ax.get_title() for ax in axes] == ["ecg", "resp"]
    assert all(any("all zero" in t.get_text() for t in ax.texts) for ax in axes)
    assert fig._suptitle.get_text() == "t"
    w, h = _png_size(path)
    assert 150 <= w <= 320 and 60 <= h <= 160  # 6 x 3 in at 50 dpi, give or take the tight box
    _, axes = visualize_signal_saliency(attr[0, 0], sig[0, 0], "colored_graph", channel_labels=["one"])
    assert axes.shape == (1,) and axes[0].get_title() == "one"


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda a, s: visualize_signal_saliency(a, None, "overlay"), ValueError, "signal: style='overlay'"),
        (lambda a, s: visualize_signal_saliency(a.expand(2, 2, L), s), ValueError, r"attr: one example at a time"),
        (lambda a, s: visualize_signal_saliency(torch.zeros(1, 3, 8, 8), s), ValueError,
         r"attr: expected a 1-D signal"),
        (lambda a, s: visualize_signal_saliency(a, s[..., :-1]), ValueError, "signal: length"),
        (lambda a, s: visualize_signal_saliency(a, s[:, :1]), ValueError, "signal: 1 channels"),
        (lambda a, s: visualize_signal_saliency(a, s, x_values=np.arange(3)), ValueError, "x_values"),
        (lambda a, s: visualize_signal_saliency(a, s, channel_labels=["x"]), ValueError, "channel_labels"),
        (lambda a, s: visualize_signal_saliency(a, s, "heatmap_only"), ValueError, "style"),
        (lambda a, s: visualize_signal_saliency(a, s, sign="pos"), ValueError, "sign"),
        (lambda a, s: visualize_signal_saliency(a, s, alpha_overlay=2), ValueError, "alpha_overlay"),
        (lambda a, s: visualize_signal_saliency([1.0, 2.0], s), TypeError, "attr"),
    ],
)
def test_signal_errors(signal_pair, call, exc, match):
    with pytest.raises(exc, match=match):
        call(*signal_pair)


@pytest.fixture
def volume_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A (1, 1, 8, 10, 12) volume and a map with a block in slices 2-3, twice as strong in 2."""
    vol = torch.rand(1, 1, 8, 10, 12, generator=torch.Generator().manual_seed(4)) * 100 - 20
    attr = torch.zeros(1, 1, 8, 10, 12)
    attr[..., 2, 3:6, 4:9] = 2.0
    attr[..., 3, 3:6, 4:9] = 1.0
    return attr, vol


@pytest.mark.parametrize("style", STYLES)
def test_volume_slices_default_row(volume_pair, style):
    attr, vol = volume_pair
    fig, axes = visualize_volume_saliency(attr, vol, style)
    assert isinstance(fig, Figure) and axes.shape == (1, 6)
    # Six evenly spaced slices along axis 0 of 8.
    assert [ax.get_title() for ax in axes[0]] == [f"axis 0 = {i}" for i in (0, 1, 3, 4, 6, 7)]
    assert all(len(ax.get_images()) == (1 if style == "heatmap_only" else 2) for ax in axes[0])
    # A blank slice of a map that is non-zero elsewhere is not labelled as blank.
    assert not axes[0, 0].texts


def test_volume_slices_share_one_scale_and_follow_the_axis(volume_pair):
    attr, vol = volume_pair
    _, axes = visualize_volume_saliency(attr, None, "heatmap_only", "all", slices=[2, 3, 5], outlier_perc=0)
    peaks = [float(np.max(ax.get_images()[0].get_array())) for ax in axes[0]]
    assert peaks == pytest.approx([1.0, 0.5, 0.0])
    _, axes = visualize_volume_saliency(attr, vol, "gray", axis=-1, slices=2)
    assert [ax.get_title() for ax in axes[0]] == ["axis 2 = 0", "axis 2 = 11"]
    assert axes[0, 0].get_images()[0].get_array().shape == (8, 10)  # (D, H) slices across W


def test_volume_side_by_side_grid_saved(volume_pair, tmp_path):
    attr, vol = volume_pair
    path = tmp_path / "volume.png"
    fig, axes = visualize_volume_saliency(
        attr[0], vol[0], "heatmap_only", slices=[1, 2, 3], show_volume=True, ncols=2,
        show_colorbar=True, title="v", panel_size=1.5, dpi=50, save_path=path,
    )
    assert axes.shape == (4, 2)  # (volume row, map row) x 2 rows of slices
    assert axes[0, 0].get_title() == "axis 0 = 1" and axes[2, 0].get_title() == "axis 0 = 3"
    volume_image = axes[0, 1].get_images()[0].get_array()
    assert volume_image.min() >= 0.0 and volume_image.max() <= 1.0  # rescaled for display
    assert axes[3, 1].axison is False and axes[2, 1].axison is False  # unused cell hidden
    w, h = _png_size(path)
    assert 80 <= w <= 200 and 150 <= h <= 350


def test_volume_all_zero_map_is_labelled(volume_pair):
    _, vol = volume_pair
    _, axes = visualize_volume_saliency(torch.zeros(8, 10, 12), vol, "overlay", slices=2)
    assert all(ax.texts for ax in axes[0])


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(attr=torch.zeros(10, 12)), ValueError, r"attr: expected a volume"),
        (dict(attr=torch.zeros(2, 1, 8, 10, 12)), ValueError, "attr: one example at a time"),
        (dict(attr=torch.zeros(2, 8, 10, 12), channel_reduction="none"), ValueError, "leaves 2 maps"),
        (dict(volume=None), ValueError, r"volume: style='overlay' needs the volume"),
        (dict(volume=None, style="heatmap_only", show_volume=True), ValueError, "show_volume"),
        (dict(volume=torch.zeros(8, 10, 11)), ValueError, "volume: spatial size"),
        (dict(axis=3), ValueError, "axis"),
        (dict(slices=0), ValueError, "slices"),
        (dict(slices=[0, 8]), ValueError, r"slices: indices must lie in \[0, 8\)"),
        (dict(slices="all"), TypeError, "slices"),
        (dict(slices=[1.5]), TypeError, "slices"),
        (dict(ncols=0), ValueError, "ncols"),
        (dict(style="line"), ValueError, "style"),
    ],
)
def test_volume_errors(volume_pair, kwargs, exc, match):
    attr, vol = volume_pair
    args = {"attr": attr, "volume": vol, **kwargs}
    with pytest.raises(exc, match=match):
        visualize_volume_saliency(args.pop("attr"), **args)


def test_new_views_never_touch_pyplot(signal_pair, volume_pair):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    visualize_signal_saliency(*signal_pair)
    visualize_volume_saliency(*volume_pair)
    assert plt.get_fignums() == before


def test_signal_draws_on_given_axes(signal_pair):
    attr, sig = signal_pair
    fig = Figure()
    grid = fig.subplots(3, 1)
    out_fig, axes = visualize_signal_saliency(attr, sig, "line", channel_reduction="mean_abs",
                                              plt_fig_axis=(fig, grid[1]))
    assert out_fig is fig and list(axes) == [grid[1]]
    assert len(grid[1].lines) == 2 and not grid[0].lines and not grid[2].lines
    with pytest.raises(ValueError, match=r"plt_fig_axis: expected 2 axes"):
        visualize_signal_saliency(attr, sig, plt_fig_axis=(fig, grid[:1]))


# ------------------------------------------------------------------ significance outlines


def _outline_length(segments: np.ndarray) -> float:
    return float(np.abs(segments[:, 1] - segments[:, 0]).sum())


def _perimeter(mask: np.ndarray) -> int:
    # Pixel edges between the mask and its complement (the image border counts as outside).
    padded = np.pad(mask, 1)
    return int((padded[1:] != padded[:-1]).sum() + (padded[:, 1:] != padded[:, :-1]).sum())


def test_mask_outline_of_a_rectangle():
    mask = np.zeros((H, W), dtype=bool)
    mask[2:6, 3:9] = True
    fig = Figure()
    ax = fig.subplots()
    outline = draw_mask_outline(ax, mask)
    segments = {tuple(map(tuple, s)) for s in np.asarray(outline.get_segments()).tolist()}
    assert segments == {
        ((2.5, 1.5), (8.5, 1.5)), ((2.5, 5.5), (8.5, 5.5)),  # top and bottom edges
        ((2.5, 1.5), (2.5, 5.5)), ((8.5, 1.5), (8.5, 5.5)),  # left and right edges
    }
    assert outline in ax.collections


def test_mask_outline_follows_pixel_edges_of_any_mask():
    rng = np.random.default_rng(0)
    mask = rng.random((H, W)) < 0.4
    fig = Figure()
    segments = np.asarray(draw_mask_outline(fig.subplots(), torch.from_numpy(mask)).get_segments())
    assert np.all(np.mod(segments, 1.0) == 0.5)  # on pixel edges, never through a pixel
    assert _outline_length(segments) == _perimeter(mask)
    empty = draw_mask_outline(fig.subplots(), np.zeros((H, W), dtype=bool))
    assert len(empty.get_segments()) == 0


def test_visualize_saliency_outlines_significant_cells(rgb_image):
    from captum_leg.pixels import CellMap
    from captum_leg.significance import significant_cells

    # A LEG-like map: 4 x 6 cells of 5 x 4 pixels, two cells far from zero.
    cells = CellMap((H, W), (4, 6), torch.device("cpu"))
    values = torch.zeros(1, 3, 4, 6, dtype=torch.float64)
    values[0, :, 1, 2] = 8.0
    values[0, :, 2, 4] = -8.0
    noise = torch.randn(1, 3, 4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    attr = cells.upsample_per_pixel(values + noise)
    se = cells.upsample_per_pixel(torch.ones_like(values))
    sig = significant_cells(attr, se, fdr=0.05, combine="sum")
    assert sig.n_significant.item() == 2 and sig.cells == (4, 6)
    fig, ax = visualize_saliency(attr, rgb_image, "overlay", "all", significance_mask=sig.mask[0])
    assert isinstance(fig, Figure)
    (outline,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = np.asarray(outline.get_segments())
    # Two separate 5 x 4 cells: 2 * (5 + 4) * 2 pixel edges, all on cell boundaries.
    assert _outline_length(segments) == 36
    assert set(np.unique(segments[..., 0])) <= {4 * c - 0.5 for c in range(7)}
    assert set(np.unique(segments[..., 1])) <= {5 * r - 0.5 for r in range(5)}


@pytest.mark.parametrize(
    "mask, match",
    [
        (np.ones((H, W + 1), dtype=bool), r"significance_mask: expected one \(H, W\) mask of the map's size"),
        (np.ones((3, H, W), dtype=bool), "significance_mask: .*pick a channel"),
        (np.full((H, W), 0.5), "significance_mask: expected booleans"),
    ],
)
def test_significance_mask_errors(rgb_attr, rgb_image, mask, match):
    with pytest.raises(ValueError, match=match):
        visualize_saliency(rgb_attr, rgb_image, significance_mask=mask)
    with pytest.raises(TypeError, match="mask"):
        draw_mask_outline(Figure().subplots(), [[True]])


def test_outline_on_captum_figure_and_no_pyplot(rgb_attr, rgb_image):
    import matplotlib.pyplot as plt
    from captum.attr import visualization as viz

    before = plt.get_fignums()
    fig, ax = viz.visualize_image_attr(
        attr_to_hwc(rgb_attr[0]), image_to_hwc(rgb_image), "blended_heat_map", sign="all", use_pyplot=False
    )
    mask = np.zeros((1, 1, H, W), dtype=bool)
    mask[..., :5, :4] = True
    outline = draw_mask_outline(ax, mask, color="yellow", linewidth=2.0)
    assert _outline_length(np.asarray(outline.get_segments())) == 2 * (5 + 4)
    visualize_saliency(rgb_attr, rgb_image, significance_mask=mask[0])
    assert plt.get_fignums() == before
