"""Deletion and insertion curves (RISE), their areas, the blur start image, the masking setup."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from captum_leg.evaluation import (
    CausalCurve,
    SensitivityCurve,
    curve_auc,
    deletion_curve,
    insertion_curve,
    mask_fill,
    plot_causal_curves,
    sensitivity_curve,
)
from captum_leg.evaluation.masking import BLUR_RADIUS, BLUR_SIGMA, blur

SIDE = 4
P = SIDE * SIDE


class PixelSum(nn.Module):
    """Class 0 scores the sum of all pixels, class 1 scores 0."""

    def forward(self, x: Tensor) -> Tensor:
        s = x.sum((1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def values_1_to_p(seed: int = 0) -> Tensor:
    """A 1-channel image holding 1, 2, ..., P in a shuffled order."""
    perm = torch.randperm(P, generator=torch.Generator().manual_seed(seed))
    return (perm + 1).double().view(1, 1, SIDE, SIDE)


def trapezoid_unit(y: np.ndarray) -> float:
    """Area over [0, 1] of ``y`` sampled at P + 1 equally spaced points."""
    return float((y[1:] + y[:-1]).sum() / (2 * (len(y) - 1)))


def test_deletion_area_is_smallest_for_the_perfect_order_and_largest_for_the_reverse():
    x = values_1_to_p()
    total = P * (P + 1) / 2
    k = np.arange(P + 1)
    kw = dict(target=0, mask="black", steps=P + 1, pixel_space="unit", batch_size=7)
    perfect = deletion_curve(PixelSum(), x, x, **kw)  # |map| orders pixels by value
    reverse = deletion_curve(PixelSum(), x, 1.0 / x, **kw)  # smallest value first
    # deleting the k largest of 1..P leaves (P - k)(P - k + 1) / 2; the k smallest, total - k(k + 1)/2
    best, worst = (P - k) * (P - k + 1) / 2, total - k * (k + 1) / 2
    np.testing.assert_allclose(perfect.fractions, k / P)
    np.testing.assert_allclose(perfect.response[0], best)
    np.testing.assert_allclose(reverse.response[0], worst)
    np.testing.assert_allclose(perfect.auc, [trapezoid_unit(best)])
    np.testing.assert_allclose(reverse.auc, [trapezoid_unit(worst)])
    # any other order lies between the two
    other = deletion_curve(PixelSum(), x, torch.rand(1, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(3)), **kw)
    assert perfect.auc[0] < other.auc[0] < reverse.auc[0]
    assert perfect.kind == "deletion"


def test_insertion_over_black_complements_deletion():
    x = values_1_to_p(1)
    kw = dict(target=0, steps=P + 1, pixel_space="unit")
    ins = insertion_curve(PixelSum(), x, x, start="black", **kw)
    dele = deletion_curve(PixelSum(), x, x, mask="black", **kw)
    k = np.arange(P + 1)
    # revealing the k largest of 1..P over zeros shows their sum
    np.testing.assert_allclose(ins.response[0], P * (P + 1) / 2 - (P - k) * (P - k + 1) / 2)
    np.testing.assert_allclose(ins.response + dele.response, P * (P + 1) / 2)
    np.testing.assert_allclose(ins.auc + dele.auc, P * (P + 1) / 2)
    assert ins.kind == "insertion"


def test_insertion_starts_at_the_blurred_image_and_ends_at_the_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    a = torch.rand(2, 3, 16, 16, generator=g)
    model = PixelSum()
    ins = insertion_curve(model, x, a, target=0, steps=[0.25, 0.5], pixel_space="unit")
    np.testing.assert_allclose(ins.fractions, [0.0, 0.25, 0.5, 1.0])  # 0 and 1 added
    np.testing.assert_allclose(ins.response[:, 0], model(blur(x))[:, 0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(ins.response[:, -1], model(x)[:, 0].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="start"):
        insertion_curve(model, x, a, start="shift", pixel_space="unit")
    with pytest.raises(ValueError, match="mask"):
        insertion_curve(model, x, a, start="grey", pixel_space="unit")


def test_blur_is_rises_gaussian():
    delta = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    delta[0, 0, 10, 10] = 1.0
    k = blur(delta)[0, 0]
    # the kernel: 11 taps per axis, sums to one, Gaussian of sigma 5
    assert BLUR_RADIUS == 5 and BLUR_SIGMA == 5.0
    assert bool((k[10, :5] == 0).all()) and bool((k[10, 16:] == 0).all()) and float(k[10, 5]) > 0
    assert float(k.sum()) == pytest.approx(1.0)
    assert float(k[10, 11] / k[10, 10]) == pytest.approx(np.exp(-1 / 50))
    assert float(k[10, 15] / k[10, 10]) == pytest.approx(np.exp(-25 / 50))
    flat = torch.full((2, 3, 9, 12), 0.3)
    torch.testing.assert_close(blur(flat), flat)
    torch.testing.assert_close(mask_fill(flat, flat, "blur", pixel_space="unit"), flat)


def test_deletion_tracks_the_output_or_its_softmax():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    a = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(x)
    t = out.argmax(1)
    logit = deletion_curve(model, x, a, pixel_space="unit")
    prob = deletion_curve(model, x, a, pixel_space="unit", apply_softmax=True)
    assert logit.fractions.shape == (51,) and logit.response.shape == (3, 51)
    np.testing.assert_allclose(logit.response[:, 0], out.gather(1, t[:, None])[:, 0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(prob.response[:, 0], out.softmax(1).gather(1, t[:, None])[:, 0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(prob.auc, curve_auc(prob.fractions, prob.response))


def test_curve_auc_trapezoid():
    f = np.linspace(0, 1, 11)
    assert float(curve_auc(f, 1 - f)) == pytest.approx(0.5)
    np.testing.assert_allclose(curve_auc(f, np.stack([f, f**2])), [0.5, 0.335])


def test_sensitivity_curve_from_probability_matches_the_metric():
    model = PixelSum()
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    c = sensitivity_curve(model, x, x, target=0, steps=[0.1, 0.5], pixel_space="unit")
    again = SensitivityCurve.from_probability(c.fractions, c.probability)
    np.testing.assert_allclose(again.log_odds, c.log_odds)
    assert np.allclose(c.log_odds[:, 0], 0.0)


def test_plot_causal_curves(tmp_path):
    f = np.linspace(0, 1, 5)
    resp = np.stack([1 - f, 1 - f**2])
    auc = curve_auc(f, resp)
    curves = {"a": [CausalCurve("deletion", f, resp, auc), CausalCurve("insertion", f, resp[::-1], auc)]}
    fig = plot_causal_curves(curves, str(tmp_path / "c.png"), ylabel="p")
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert [ax.get_title() for ax in fig.axes] == ["deletion", "insertion"]
    # trapezoids on 5 points: 1 - f gives 0.5, 1 - f^2 gives 0.65625; the legend shows their mean
    assert fig.axes[0].get_lines()[0].get_label() == "a (AUC 0.578)"
    with pytest.raises(ValueError, match="curves"):
        plot_causal_curves({"a": []})
