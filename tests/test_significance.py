"""Tests for captum_leg.significance: BH/BY on known p-values, one test per cell on
upsampled maps, input checks, and false-discovery control on LEG maps of a model with
known zero cells."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import false_discovery_control, norm

from captum_leg import LEG
from captum_leg.grid import cell_index
from captum_leg.pixels import CellMap
from captum_leg.significance import significant_cells


def _map_with_p_values(p: list) -> tuple[torch.Tensor, torch.Tensor]:
    """A (1, 1, m) map whose m elements have the given two-sided p-values (SE 1)."""
    z = norm.isf(np.asarray(p) / 2)
    return torch.tensor(z, dtype=torch.float64)[None, None], torch.ones(1, 1, len(p), dtype=torch.float64)


def _step_up(p: np.ndarray, fdr: float, by: bool) -> np.ndarray:
    """Benjamini-Hochberg / -Yekutieli by their definition: reject the k smallest p-values,
    k the largest rank with p_(k) <= k fdr / (m c(m))."""
    m = len(p)
    c = sum(1.0 / i for i in range(1, m + 1)) if by else 1.0
    order = np.argsort(p)
    k = 0
    for rank in range(1, m + 1):
        if p[order[rank - 1]] <= rank * fdr / (m * c):
            k = rank
    reject = np.zeros(m, dtype=bool)
    reject[order[:k]] = True
    return reject


# ------------------------------------------------------------------------ the procedures


def test_bh_and_by_q_values_by_hand():
    a, se = _map_with_p_values([0.001, 0.04, 0.03, 0.5])
    bh = significant_cells(a, se, fdr=0.05)
    # sorted: 0.001, 0.03, 0.04, 0.5 -> p m / rank = 0.004, 0.06, 0.0533, 0.5, then the
    # running minimum from the top.
    np.testing.assert_allclose(bh.p_values[0, 0].numpy(), [0.001, 0.04, 0.03, 0.5], rtol=1e-9)
    np.testing.assert_allclose(bh.q_values[0, 0].numpy(), [0.004, 0.16 / 3, 0.16 / 3, 0.5], rtol=1e-9)
    assert bh.mask[0, 0].tolist() == [True, False, False, False]
    assert significant_cells(a, se, fdr=0.06).mask[0, 0].tolist() == [True, True, True, False]
    by = significant_cells(a, se, fdr=0.05, method="by")
    c4 = 1 + 1 / 2 + 1 / 3 + 1 / 4
    expected = [0.004 * c4, 0.16 / 3 * c4, 0.16 / 3 * c4, 1.0]  # the last is clipped at 1
    np.testing.assert_allclose(by.q_values[0, 0].numpy(), expected, rtol=1e-9)
    assert by.mask[0, 0].tolist() == [True, False, False, False]


def test_bh_threshold_is_inclusive():
    a, se = _map_with_p_values([0.01, 0.02, 0.03, 0.04, 0.05])  # every p m / rank is 0.05
    assert significant_cells(a, se, fdr=0.05).mask.all()
    assert not significant_cells(a, se, fdr=0.0499).mask.any()
    by = significant_cells(a, se, fdr=0.05, method="by")
    np.testing.assert_allclose(by.q_values.numpy(), 0.05 * (1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5), rtol=1e-9)


@pytest.mark.parametrize("method", ["bh", "by"])
@pytest.mark.parametrize("seed", range(5))
def test_step_up_definition(method, seed):
    rng = np.random.default_rng(seed)
    # A mixture of nulls and signals: 40 tests, some decisions near the threshold.
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, size=10)])
    a, se = _map_with_p_values(list(p))
    got = significant_cells(a, se, fdr=0.1, method=method).mask[0, 0].numpy()
    np.testing.assert_array_equal(got, _step_up(p, 0.1, by=method == "by"))


def test_by_discoveries_are_a_subset_of_bh():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, 30, generator=g) * 2.5
    se = torch.rand(3, 2, 30, generator=g) + 0.5
    bh = significant_cells(a, se, fdr=0.2).mask
    by = significant_cells(a, se, fdr=0.2, method="by").mask
    assert by.sum() < bh.sum() and not (by & ~bh).any()


def test_each_channel_and_example_is_its_own_family():
    a, se = _map_with_p_values([0.001, 0.04, 0.03, 0.5])
    a2 = torch.cat([a, torch.zeros_like(a)], 1)  # channel 1 holds only nulls
    batch = torch.cat([a2, a2.flip(1)])
    res = significant_cells(batch, torch.ones_like(batch), fdr=0.05)
    expected = [True, False, False, False]
    assert res.mask[0, 0].tolist() == expected and res.mask[1, 1].tolist() == expected
    assert not res.mask[0, 1].any() and not res.mask[1, 0].any()
    assert res.n_significant.tolist() == [[1, 0], [0, 1]]


def test_zero_standard_error():
    a = torch.tensor([[[1.5, 0.0, -2.0, 0.1]]], dtype=torch.float64)
    se = torch.tensor([[[0.0, 0.0, 0.0, 10.0]]], dtype=torch.float64)
    res = significant_cells(a, se)
    assert res.z_scores[0, 0].tolist() == [math.inf, 0.0, -math.inf, pytest.approx(0.01)]
    assert res.p_values[0, 0, :3].tolist() == [0.0, 1.0, 0.0]
    assert res.mask[0, 0].tolist() == [True, False, True, False]


# --------------------------------------------------------------- one test per cell


@pytest.fixture
def cell_maps() -> tuple[torch.Tensor, torch.Tensor, CellMap]:
    """Cell values (2, 2, 3, 4) with one strong cell in a small cell, and LEG's upsampling
    to a 10 x 9 map (cells of 4, 3, 3 rows and 3, 2, 2, 2 columns)."""
    g = torch.Generator().manual_seed(5)
    p = torch.rand(2, 2, 3, 4, generator=g, dtype=torch.float64) * 0.5 + 0.45  # nulls
    p[0, 0, 1, 1] = 1.2e-3  # a 3 x 2 cell
    z = torch.from_numpy(norm.isf(p.numpy() / 2))
    se = torch.rand(2, 2, 3, 4, generator=g, dtype=torch.float64) + 0.5
    return z * se, se, CellMap((10, 9), (3, 4), torch.device("cpu"))


def test_upsampled_map_counts_each_cell_once(cell_maps):
    a_cells, se_cells, cells = cell_maps
    a, se = cells.upsample_per_pixel(a_cells), cells.upsample_per_pixel(se_cells)  # as LEG does
    on_cells = significant_cells(a_cells, se_cells, fdr=0.05, method="by")
    for grid_size in (None, (3, 4)):
        res = significant_cells(a, se, fdr=0.05, method="by", grid_size=grid_size)
        assert res.cells == (3, 4) and res.n_cells == 12
        assert res.mask.shape == a.shape
        torch.testing.assert_close(res.q_values, cells.upsample(on_cells.q_values))
        assert torch.equal(res.mask, cells.upsample(on_cells.mask))
        assert torch.equal(res.n_significant, on_cells.n_significant)
    # One cell in 12 at p = 1.2e-3: BY's q = 1.2e-3 * 12 * H(12) = 0.045 for the cells,
    # but 1.2e-3 * 90 * H(90) / 6 = 0.092 if each of its 6 elements were a test.
    assert res.mask[0, 0].sum() == 6 and res.n_significant[0, 0] == 1
    per_element = false_discovery_control(res.p_values[0, 0].flatten().numpy(), method="by")
    assert not (per_element <= 0.05).any()


def test_combined_map_counts_each_cell_once(cell_maps):
    a_cells, se_cells, cells = cell_maps
    a, se = cells.upsample_per_pixel(a_cells), cells.upsample_per_pixel(se_cells)
    res = significant_cells(a, se, combine="sum")
    on_cells = significant_cells(a_cells, se_cells, combine="sum")
    assert res.mask.shape == (2, 1, 10, 9) and res.cells == (3, 4)
    assert torch.equal(res.mask, cells.upsample(on_cells.mask))
    torch.testing.assert_close(res.z_scores, cells.upsample(on_cells.z_scores))


def test_full_resolution_map_is_tested_element_by_element():
    g = torch.Generator().manual_seed(1)
    opts = dict(generator=g, dtype=torch.float64)
    a, se = torch.randn(1, 3, 6, 7, **opts), torch.rand(1, 3, 6, 7, **opts) + 0.1
    res = significant_cells(a, se)
    assert res.cells == (6, 7)
    flat = false_discovery_control(res.p_values.flatten(2).numpy(), axis=-1)
    np.testing.assert_allclose(res.q_values.flatten(2).numpy(), flat, rtol=1e-12)


def test_cells_are_found_in_one_three_and_four_spatial_axes():
    for spatial, grid in [((12,), (4,)), ((6, 4, 5), (3, 2, 5)), ((4, 4, 6, 2), (2, 4, 3, 1))]:
        cells = CellMap(spatial, grid, torch.device("cpu"))
        vals = torch.randn(2, 1, *grid, generator=torch.Generator().manual_seed(2))
        res = significant_cells(cells.upsample(vals), cells.upsample(vals.abs() + 0.3))
        assert res.cells == grid


def test_given_grid_must_fit_the_map(cell_maps):
    a_cells, se_cells, cells = cell_maps
    a, se = cells.upsample_per_pixel(a_cells), cells.upsample_per_pixel(se_cells)
    with pytest.raises(ValueError, match=r"grid_size: the maps or their errors vary inside .* \(2, 4\)"):
        significant_cells(a, se, grid_size=(2, 4))
    se_varies = se.clone()
    se_varies[..., 0, 0] += 1.0  # the map is constant on the cells, its errors are not
    with pytest.raises(ValueError, match="grid_size"):
        significant_cells(a, se_varies, grid_size=(3, 4))
    with pytest.raises(ValueError, match="grid_size"):
        significant_cells(a, se, grid_size=(11, 4))
    with pytest.raises(TypeError, match="grid_size"):
        significant_cells(a, se, grid_size=(3, 4, 1))


# ------------------------------------------------------------------- channel sum


def test_channel_sum_standard_errors():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 3, 5, generator=g, dtype=torch.float64)
    se = torch.rand(2, 3, 5, generator=g, dtype=torch.float64) + 0.2
    ind = significant_cells(a, se, combine="sum")
    worst = significant_cells(a, se, combine="sum", channel_errors="worst_case")
    torch.testing.assert_close(ind.z_scores, a.sum(1, keepdim=True) / se.pow(2).sum(1, keepdim=True).sqrt())
    torch.testing.assert_close(worst.z_scores, a.sum(1, keepdim=True) / se.sum(1, keepdim=True))
    assert not (worst.mask & ~ind.mask).any()  # the bound is conservative
    assert ind.n_significant.shape == (2, 1)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(standard_errors=torch.ones(1, 2, 5)), ValueError, "standard_errors: shape"),
        (dict(standard_errors=-torch.ones(1, 2, 6)), ValueError, "standard_errors: negative"),
        (dict(standard_errors=torch.full((1, 2, 6), math.nan)), ValueError, "standard_errors: contains NaN"),
        (dict(attributions=torch.full((1, 2, 6), math.inf)), ValueError, "attributions: contains NaN"),
        (dict(attributions=torch.ones(2, 6), standard_errors=torch.ones(2, 6)), ValueError,
         "attributions: expected"),
        (dict(attributions=[[1.0]]), TypeError, "attributions"),
        (dict(attributions=(torch.ones(1, 2, 6), torch.ones(1, 2, 6))), TypeError, "once per input"),
        (dict(fdr=0.0), ValueError, "fdr"),
        (dict(fdr=1.0), ValueError, "fdr"),
        (dict(fdr=-0.1), ValueError, "fdr"),
        (dict(fdr=1.5), ValueError, "fdr"),
        (dict(fdr=math.nan), ValueError, "fdr"),
        (dict(fdr="0.05"), TypeError, "fdr"),
        (dict(fdr=True), TypeError, "fdr"),
        (dict(method="bonferroni"), ValueError, "method"),
        (dict(combine="mean"), ValueError, "combine"),
        (dict(combine="sum", channel_errors="correlated"), ValueError, "channel_errors"),
        (dict(grid_size=0), ValueError, "grid_size"),
    ],
)
def test_bad_input_is_named(kwargs, exc, match):
    args = {"attributions": torch.ones(1, 2, 6), "standard_errors": torch.ones(1, 2, 6), **kwargs}
    with pytest.raises(exc, match=match):
        significant_cells(args.pop("attributions"), args.pop("standard_errors"), **args)


def test_inputs_untouched_and_numpy_and_tuples_accepted():
    g = torch.Generator().manual_seed(4)
    a, se = torch.randn(1, 2, 8, generator=g), torch.rand(1, 2, 8, generator=g)
    a0, se0 = a.clone(), se.clone()
    res = significant_cells((a,), (se,), combine="sum")
    assert torch.equal(a, a0) and torch.equal(se, se0)
    from_numpy = significant_cells(a.numpy(), se.numpy(), combine="sum")
    assert from_numpy.mask.device.type == "cpu" and torch.equal(from_numpy.mask, res.mask)
    assert res.q_values.dtype == torch.float32 and res.mask.dtype == torch.bool


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(cell_maps):
    a_cells, se_cells, cells = cell_maps
    a, se = cells.upsample_per_pixel(a_cells), cells.upsample_per_pixel(se_cells)
    cpu = significant_cells(a, se, method="by")
    gpu = significant_cells(a.cuda(), se.cuda(), method="by")
    assert gpu.mask.is_cuda and gpu.n_significant.is_cuda
    assert torch.equal(gpu.mask.cpu(), cpu.mask) and gpu.cells == cpu.cells
    torch.testing.assert_close(gpu.q_values.cpu(), cpu.q_values)


# -------------------------------------------- false-discovery control on LEG maps


class NoisyLinearModel(torch.nn.Module):
    """``f(x) = <w, x> + sigma * e`` with standard normal noise ``e`` from its own generator:
    the gradient is ``w`` everywhere, and the noise gives LEG's estimates a real error."""

    def __init__(self, weight: torch.Tensor, sigma: float, seed: int):
        super().__init__()
        self.weight, self.sigma = weight, sigma
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clean = (x * self.weight).flatten(1).sum(1)
        noise = torch.randn(clean.shape, generator=self.generator, dtype=clean.dtype)
        return (clean + self.sigma * noise)[:, None]


def test_false_discovery_rate_is_controlled_on_leg_maps():
    # Two channels on a 9 x 9 image, a 4 x 4 grid of unequal cells (3, 2, 2, 2 pixels):
    # the weights are zero on the right half of the cells in both channels, so those
    # cells' gradients, and their sum over channels, are exactly zero.
    size, k, fdr, runs = 9, 4, 0.1, 40
    cell_weights = torch.zeros(2, k, k, dtype=torch.float64)
    cell_weights[:, :, :2] = 0.025
    idx = cell_index(size, k)
    weight = cell_weights[:, idx][:, :, idx][None]
    null = (cell_weights == 0)[None]  # (1, 2, k, k)
    first = torch.tensor([0, 3, 5, 7])  # each cell's first pixel
    x = torch.rand(4, 2, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def proportions(mask: torch.Tensor, zero: torch.Tensor) -> tuple[float, float]:
        cells = mask[..., first, :][..., first]
        found = cells.flatten(2).sum(-1).double()
        false = (cells & zero).flatten(2).sum(-1).double()
        fdp = torch.where(found > 0, false / found.clamp_min(1), torch.zeros_like(found))
        power = (cells & ~zero).flatten(2).sum(-1).double() / (~zero).flatten(2).sum(-1)
        return float(fdp.mean()), float(power.mean())

    results = {key: [] for key in ("bh", "by", "bh_sum")}
    for seed in range(runs):
        leg = LEG(NoisyLinearModel(weight, sigma=0.05, seed=seed))
        attr, se = leg.attribute(
            x, target=0, n_samples=200, grid_size=k, seed=seed, return_standard_error=True
        )
        results["bh"].append(proportions(significant_cells(attr, se, fdr).mask, null))
        results["by"].append(proportions(significant_cells(attr, se, fdr, "by").mask, null))
        combined = significant_cells(attr, se, fdr, combine="sum").mask
        results["bh_sum"].append(proportions(combined, null[:, :1]))
    for key, values in results.items():
        fdp, power = np.asarray(values).T
        # One run's FDP averages 8 maps; runs are independent (own seeds), so the mean's
        # Monte-Carlo error is their spread over sqrt(runs): allow three of those.
        tolerance = 3 * fdp.std(ddof=1) / math.sqrt(runs)
        assert fdp.mean() <= fdr + tolerance, (key, fdp.mean(), tolerance)
        # The non-zero cells carry |z| of about 5 to 13 (sigma and n set so): BH and BY
        # find nearly all (|z| > 3.4 suffices even for BY's strictest cut at this size).
        assert power.mean() >= 0.9, (key, power.mean())
