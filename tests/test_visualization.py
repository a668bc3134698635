"""Tests for captum_leg.visualization (synthetic maps only; no model needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from captum_leg.visualization import (
    CHANNEL_REDUCTIONS,
    SIGNS,
    STYLES,
    attr_to_hwc,
    image_to_hwc,
    normalize_attr,
    visualize_saliency,
    visualize_saliency_multiple,
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
