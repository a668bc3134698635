"""Tests of captum_leg.evaluation: key size, masks, curves, randomisation, explain_func."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from torch import Tensor, nn

from captum_leg import LEG

from captum_leg.evaluation import (
    MASKS,
    build_method,
    cascading_randomization,
    explain_func,
    key_size,
    make_explain_func,
    mask_fill,
    pixel_ranks,
    plot_cascading,
    plot_sensitivity,
    sensitivity_curve,
    sensitivity_curves,
    spearman,
)
from captum_leg.models import IMAGENET_MEAN, IMAGENET_STD

H = W = 16
REGION = (slice(0, 4), slice(4, 8))  # 16 of 256 pixels decide the class
FRACTIONS = (torch.arange(1, H * W + 1) / (H * W)).tolist()  # every pixel count


class RegionModel(nn.Module):
    """Class 0 iff the region's mean grey value is above (or, inverted, below) a threshold."""

    def __init__(self, threshold: float = 0.7, inverted: bool = False):
        super().__init__()
        self.threshold, self.sign = threshold, (-1.0 if inverted else 1.0)
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += x.shape[0]
        r = x[:, :, REGION[0], REGION[1]].mean((1, 2, 3))
        z = 50 * self.sign * (r - self.threshold)
        return torch.stack([z, torch.zeros_like(z)], 1)


def region_images(n: int, value: float, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    x = 0.15 + 0.1 * torch.rand(n, 3, H, W, generator=g)
    x[:, :, REGION[0], REGION[1]] = value
    return x


def region_map(n: int, sign: float = 1.0) -> Tensor:
    a = torch.zeros(n, 3, H, W)
    a[:, :, REGION[0], REGION[1]] = sign
    return a + 0.01 * torch.rand(n, 3, H, W, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("mask", MASKS)
def test_key_size_marks_the_deciding_region(mask):
    # white can only hide a dark region; the others hide a bright one
    inverted = mask == "white"
    model = RegionModel(threshold=0.3 if inverted else 0.7, inverted=inverted)
    x = region_images(4, 0.0 if inverted else 1.0)
    assert bool((model(x).argmax(1) == 0).all())
    good = region_map(4, sign=1.0)
    rand = torch.rand(4, 3, H, W, generator=torch.Generator().manual_seed(1))
    kw = dict(pixel_space="unit", steps=FRACTIONS, batch_size=50)
    ks_good = key_size(model, x, good, mask=mask, **kw)
    ks_rand = key_size(model, x, rand, mask=mask, **kw)
    assert ks_good.shape == (4,)
    # The good map ranks the 16 region pixels first, so the key size is the smallest
    # count k of them whose masking moves the region's mean past the threshold: black
    # (0) and white (1) pixels need k / 16 > 0.3, i.e. k = 5; shift moves a pixel by
    # 100/255, so k * 100/255 / 16 > 0.3 gives k = 13; the mean colour m needs
    # k (1 - m) / 16 > 0.3; uniform noise u <= 1 needs sum(1 - u) > 4.8, so 5 <= k <= 16.
    if mask == "noise":
        assert bool(((ks_good >= 5 / 256 - 1e-6) & (ks_good <= 16 / 256 + 1e-6)).all()), ks_good
    else:
        if mask == "mean":
            k = torch.floor(16 * 0.3 / (1 - x.mean((1, 2, 3)))) + 1
        else:
            k = torch.full((4,), {"black": 5.0, "white": 5.0, "shift": 13.0}[mask])
        torch.testing.assert_close(ks_good, k / 256)
    assert bool((ks_rand > 2 * ks_good).all()), (ks_good, ks_rand)
    # x is never modified
    assert torch.equal(x, region_images(4, 0.0 if inverted else 1.0))


def test_key_size_exact_value_and_never_changes():
    model = RegionModel(0.7)
    x = region_images(2, 1.0)
    # mean colour of each image: region of 1.0 must drop below 0.7 => k > 16*0.3/(1-mean)
    m = x.mean((1, 2, 3))
    k = torch.floor(16 * 0.3 / (1 - m)) + 1
    ks = key_size(model, x, region_map(2), mask="mean", pixel_space="unit", steps=FRACTIONS)
    assert torch.allclose(ks, k / 256)
    # An int: that many even steps; 256 steps on 16 x 16 images is one pixel per step.
    ks_int = key_size(model, x, region_map(2), mask="mean", pixel_space="unit", steps=256)
    assert torch.allclose(ks_int, k / 256)
    # a map that puts the region last: with the region only masked at the end; fractions
    # that stop before it give 1.0 ("never changes")
    inv = 1.0 - region_map(2)
    ks_never = key_size(model, x, inv, mask="mean", pixel_space="unit", steps=[0.1, 0.5, 0.9])
    assert torch.equal(ks_never, torch.ones(2))


def test_key_size_batches_and_stops_early():
    model = RegionModel(0.7)
    x = region_images(3, 1.0)
    ks = key_size(model, x, region_map(3), mask="black", pixel_space="unit", steps=FRACTIONS, batch_size=30)
    # 3 images, 10 fractions per chunk: the decision comes within the first chunk, so
    # far fewer than 3 * 256 masked images are evaluated
    assert model.calls <= 3 + 3 * 10 + 3
    assert bool((ks < 0.05).all())


def test_masks_in_pixel_space_imagenet():
    g = torch.Generator().manual_seed(0)
    pix = torch.rand(2, 3, 8, 8, generator=g) * 0.6 + 0.2
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (pix - mean) / std
    a = torch.randn(2, 3, 8, 8, generator=g)
    black = mask_fill(x, a, "black")
    white = mask_fill(x, a, "white")
    assert torch.allclose(black * std + mean, torch.zeros_like(x), atol=1e-6)
    assert torch.allclose(white * std + mean, torch.ones_like(x), atol=1e-6)
    shifted = mask_fill(x, a, "shift", shift=0.1) * std + mean
    assert torch.allclose(shifted - pix, -0.1 * torch.sign(a), atol=1e-5)
    noise = mask_fill(x, a, "noise", seed=3) * std + mean
    assert float(noise.min()) >= -1e-6 and float(noise.max()) <= 1 + 1e-6
    assert noise.std() > 0.2  # uniform on [0, 1] has std 0.29
    assert torch.equal(noise, mask_fill(x, a, "noise", seed=3) * std + mean)
    avg = mask_fill(x, a, "mean")
    assert torch.allclose(avg, x.mean((2, 3), keepdim=True).expand_as(x))
    # custom (mean, std) pixel space equals the built-in imagenet one
    assert torch.allclose(mask_fill(x, a, "black", pixel_space=(IMAGENET_MEAN, IMAGENET_STD)), black)
    # shift is clamped to valid pixels
    big = mask_fill(x, a, "shift", shift=5.0) * std + mean
    assert float(big.min()) >= -1e-5 and float(big.max()) <= 1 + 1e-5


def test_pixel_ranks_order_and_tie_break():
    a = torch.zeros(1, 3, 4, 4)
    a[0, :, 0, 0] = 5.0
    a[0, 1, 3, 3] = -3.0  # mean |.| over channels = 1
    r = pixel_ranks(a, seed=0)
    assert r.shape == (1, 16)
    assert int(r[0, 0]) == 0 and int(r[0, 15]) == 1
    assert sorted(r[0].tolist()) == list(range(16))
    # the 14 tied pixels are ordered differently under another seed (not scan order)
    assert not torch.equal(r, pixel_ranks(a, seed=1))


def test_argument_validation():
    model = RegionModel()
    x = region_images(2, 1.0)
    a = region_map(2)
    with pytest.raises(ValueError, match="mask"):
        key_size(model, x, a, mask="blue", pixel_space="unit")
    with pytest.raises(TypeError, match="inputs"):
        key_size(model, x.numpy(), a)
    with pytest.raises(ValueError, match="attributions"):
        key_size(model, x, a[:1])
    with pytest.raises(ValueError, match="steps"):
        key_size(model, x, a, steps=[0.5, 0.2], pixel_space="unit")
    with pytest.raises(ValueError, match="steps"):
        key_size(model, x, a, steps=[1.5], pixel_space="unit")
    with pytest.raises(ValueError, match="steps"):
        key_size(model, x, a, steps=0, pixel_space="unit")
    with pytest.raises(TypeError, match="steps"):
        key_size(model, x, a, steps=True, pixel_space="unit")
    with pytest.raises(ValueError, match="batch_size"):
        key_size(model, x, a, batch_size=0, pixel_space="unit")
    with pytest.raises(ValueError, match="pixel_space"):
        key_size(model, x[:, :1], a[:, :1], pixel_space="imagenet")
    with pytest.raises(ValueError, match="target"):
        key_size(model, x, a, target=[0, 0, 0], pixel_space="unit")
    with pytest.raises(ValueError, match="shift"):
        mask_fill(x, a, "shift", pixel_space="unit", shift=-1.0)


def test_sensitivity_curves_shapes_and_drop(tmp_path):
    model = RegionModel(0.7)
    x = region_images(3, 1.0)
    maps = {"good": region_map(3), "random": torch.rand(3, 3, H, W, generator=torch.Generator().manual_seed(2))}
    fr = np.linspace(0.05, 0.5, 10)
    curves = sensitivity_curves(model, x, maps, mask="mean", steps=fr, pixel_space="unit")
    for c in curves.values():
        assert c.fractions.shape == (11,) and c.fractions[0] == 0.0  # 0 added as reference
        assert np.all(np.diff(c.fractions) > 0)
        assert c.probability.shape == (3, 11) and c.log_odds.shape == (3, 11)
        assert np.allclose(c.log_odds[:, 0], 0.0)
        # at fraction 0 nothing is masked: the model's own probability of its class
        assert np.allclose(c.probability[:, 0], model(x).softmax(1)[:, 0].detach().numpy(), atol=1e-6)
    # the marking map destroys the class by 10 % masked, the random one does not
    good, rand = curves["good"], curves["random"]
    assert good.probability[:, 0].min() > 0.99 and good.probability[:, 2].max() < 0.01
    assert rand.probability[:, 2].min() > 0.5
    fig = plot_sensitivity(curves, str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert [line.get_label() for line in fig.axes[0].get_lines()][:2] == ["good", "random"]
    one = sensitivity_curve(model, x, maps["good"], target=1, pixel_space="unit", steps=[0.0, 0.5])
    assert one.probability.shape == (3, 2) and one.probability[:, 0].max() < 0.01


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv2(torch.tanh(self.conv1(x)))).flatten(1))


def _grad_explain(noise: float = 0.0):
    def explain(model, x, t, seed):
        x = x.clone().requires_grad_(True)
        out = model(x).gather(1, t[:, None]).sum()
        (g,) = torch.autograd.grad(out, x)
        if noise:
            gen = torch.Generator().manual_seed(int(seed))
            g = g + noise * g.abs().mean() * torch.randn(g.shape, generator=gen)
        return g

    return explain


def test_cascading_randomization_falls_and_reports_floor(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 1, 2, 3])
    res = cascading_randomization(model, x, t, _grad_explain(), seed=0, floor_seed=1)
    assert res.layers == ["fc", "conv2", "conv1"]
    assert res.spearman.shape == (3, 4) and res.spearman_abs.shape == (3, 4)
    # deterministic method: floor exactly 1; maps lose their rank order as layers go
    assert torch.allclose(res.noise_floor, torch.ones(4, dtype=torch.float64))
    assert float(res.spearman_abs[-1].mean()) < 0.5
    assert float(res.spearman_abs[-1].mean()) < float(res.spearman_abs[0].mean()) or float(
        res.spearman_abs[0].mean()
    ) < 0.5
    for k, v in model.state_dict().items():  # the user's model is untouched
        assert torch.equal(v, before[k])
    # a noisy method: the floor is reported below 1 and the fully randomised maps
    # correlate less with the original than two seeds of the method do
    noisy = cascading_randomization(model, x, t, _grad_explain(0.5), seed=0, floor_seed=1)
    floor = float(noisy.noise_floor_abs.mean())
    assert 0.3 < floor < 0.999
    assert float(noisy.spearman_abs[-1].mean()) < floor
    rows = noisy.table()
    assert rows[0]["layer"].startswith("(none") and len(rows) == 4
    plot_cascading({"grad": res, "noisy": noisy}, str(tmp_path / "c.png"), image=x[0, 0].numpy())
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_spearman_ties_and_sign():
    a = torch.tensor([[1.0, 2.0, 2.0, 3.0]])
    assert float(spearman(a, a)) == pytest.approx(1.0)
    assert float(spearman(a, -a)) == pytest.approx(-1.0)
    assert float(spearman(a, torch.ones(1, 4))) == 0.0


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def test_explain_func_quantus_convention():
    model = TinyClassifier()
    x = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    y = np.array([1, 3])
    x_copy = x.copy()
    a = explain_func(model=model, inputs=x, targets=y, n_samples=8, grid_size=4, noise_level=0.05)
    assert isinstance(a, np.ndarray) and a.shape == x.shape and a.dtype == np.float32
    # LEG's own map of those targets, with the default seed 0
    leg = LEG(model).attribute(torch.from_numpy(x), target=[1, 3], n_samples=8, grid_size=4, noise_level=0.05, seed=0)
    np.testing.assert_allclose(a, leg.numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(x, x_copy)
    # bound defaults, quantus-style keyword call, channel reduction, another method
    f = make_explain_func(n_samples=8, grid_size=4, noise_level=0.05, reduce_channels=True)
    r = f(model=model, inputs=x, targets=y, device="cpu")
    np.testing.assert_allclose(r, np.abs(a).mean(1, keepdims=True), rtol=1e-6, atol=1e-8)
    s = explain_func(model=model, inputs=x, targets=y, method="saliency", budget=3)
    expected = Saliency(model).attribute(torch.from_numpy(x), target=torch.tensor([1, 3]), abs=True)
    np.testing.assert_allclose(s, expected.detach().numpy(), rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="budget"):
        explain_func(model=model, inputs=x, targets=y, method="lime")
    with pytest.raises(ValueError, match="targets"):
        explain_func(model=model, inputs=x, targets=np.array([1, 2, 3]), n_samples=4, grid_size=4)


@pytest.mark.parametrize("name", ["leg", "lime", "kernelshap"])
def test_registry_spends_the_reported_budget(name):
    model = TinyClassifier()
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    spec = build_method(name, model, 31, grid_size=4, feature_grid=4, noise_level=0.05, perturbations_per_eval=16)
    model.rows = 0
    a = spec(x, torch.tensor([2]), 0)
    assert a.shape == x.shape
    assert spec.cost <= 31
    # forward rows actually evaluated: the reported cost, give or take the reference pass
    assert spec.cost - 1 <= model.rows <= spec.cost + 1, (model.rows, spec.cost)
    if name == "leg":
        assert spec.cost == 3 * 10  # symmetric pairs (the default) need no f(x0)


def test_registry_gradient_methods_and_errors():
    model = TinyClassifier()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 4])
    for name, cost in [("ig", 30), ("saliency", 3), ("smoothgrad", 30), ("gradcam", 3)]:
        spec = build_method(name, model, 31)
        assert spec.cost == cost
        assert spec(x, t, 0).shape == x.shape
    sg = build_method("smoothgrad", model, 31)
    assert torch.equal(sg(x, t, 7), sg(x, t, 7))  # seeded
    with pytest.raises(ValueError, match="name"):
        build_method("gradient-x", model, 31)
    with pytest.raises(TypeError, match="budget"):
        build_method("leg", model, 31.0)
