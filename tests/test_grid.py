"""The structured grid operators against dense matrices built from the method's definitions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch

from captum_leg.grid import cell_index, cell_sizes, dst1, get_grid

SHAPES = [(1, 1), (1, 5), (3, 4), (6, 6), (7, 3)]


def dense_d(k1: int, k2: int) -> np.ndarray:
    """D (docs/method.md, "The perturbations"), row by row."""
    rows = []

    def idx(i: int, j: int) -> int:
        return i * k2 + j

    for i in range(k1):  # horizontal, padded: pad[j] - pad[j+1]
        for j in range(k2 + 1):
            r = np.zeros(k1 * k2)
            if j > 0:
                r[idx(i, j - 1)] += 1
            if j < k2:
                r[idx(i, j)] -= 1
            rows.append(r)
    for i in range(k1 + 1):
        for j in range(k2):
            r = np.zeros(k1 * k2)
            if i > 0:
                r[idx(i - 1, j)] += 1
            if i < k1:
                r[idx(i, j)] -= 1
            rows.append(r)
    return np.array(rows)


def test_dst1_matches_scipy() -> None:
    x = torch.randn(4, 9, dtype=torch.float64)
    ref = scipy.fft.dst(x.numpy(), type=1, axis=-1) / 2
    np.testing.assert_allclose(dst1(x, -1).numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("k1,k2", SHAPES)
def test_operators_match_dense(k1: int, k2: int) -> None:
    grid = get_grid((k1, k2))
    d = dense_d(k1, k2)
    p = k1 * k2
    np.testing.assert_array_equal(grid.diff_sparse().toarray(), d)
    lap = d.T @ d
    assert np.all(np.diag(lap) == 4)  # Dirichlet 5-point stencil
    v = torch.randn(3, k1, k2, dtype=torch.float64)
    vf = v.reshape(3, -1).numpy()
    e = torch.randn(3, grid.n_edges, dtype=torch.float64)
    np.testing.assert_allclose(grid.diff(v).numpy(), vf @ d.T, atol=1e-12)
    np.testing.assert_allclose(grid.diff_t(e).reshape(3, -1).numpy(), e.numpy() @ d, atol=1e-12)
    np.testing.assert_allclose(
        grid.laplacian_solve(v).reshape(3, -1).numpy(), np.linalg.solve(lap, vf.T).T, atol=1e-10
    )
    s = 0.07
    sigma = s**2 * (lap + np.ones((p, p)) / p)
    np.testing.assert_allclose(
        grid.covariance(v, s).reshape(3, -1).numpy(), vf @ sigma, atol=1e-12
    )
    np.testing.assert_allclose(
        grid.precision(v, s).reshape(3, -1).numpy(), np.linalg.solve(sigma, vf.T).T, rtol=1e-9
    )
    np.testing.assert_allclose(grid.pinv_t(v).numpy(), vf @ np.linalg.pinv(d), atol=1e-10)
    np.testing.assert_allclose(grid.c.numpy(), np.linalg.pinv(d).T @ np.ones(p), atol=1e-10)


def test_precision_per_map_noise_levels() -> None:
    grid = get_grid((4, 5))
    v = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    s = torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64)
    out = grid.precision(v, s)
    for c in range(3):
        torch.testing.assert_close(out[:, c], grid.precision(v[:, c], float(s[c])))
    torch.testing.assert_close(grid.covariance(out, s), v)


def test_sampling_has_the_method_covariance() -> None:
    k1, k2 = 4, 3
    grid = get_grid((k1, k2))
    draws = grid.sample_standard(200_000, torch.Generator().manual_seed(0)).reshape(-1, k1 * k2)
    emp = (draws.T @ draws / draws.shape[0]).numpy()
    d = dense_d(k1, k2)
    target = d.T @ d + np.ones((k1 * k2, k1 * k2)) / (k1 * k2)
    # Entries of the empirical covariance have std ~ 4 * sqrt(2 / n) ~ 0.013.
    assert np.abs(emp - target).max() < 0.07
    assert abs(emp[0, 1] / np.sqrt(emp[0, 0] * emp[1, 1]) - target[0, 1] / 4) < 0.01


def test_cells_need_not_divide_the_image() -> None:
    idx = cell_index(225, 28)
    assert idx.min() == 0 and idx.max() == 27
    assert torch.all(torch.diff(idx) >= 0)
    sizes = cell_sizes(225, 28)
    assert set(sizes) == {8, 9} and sum(sizes) == 225
    assert cell_sizes(224, 28) == (8,) * 28
    assert cell_sizes(5, 5) == (1,) * 5


def test_large_grid_is_structured_not_dense() -> None:
    # p = 50 176: a dense p x p float64 matrix would take 20 GB; these stay O(p).
    grid = get_grid((224, 224))
    v = torch.randn(224, 224, dtype=torch.float64)
    back = grid.covariance(grid.precision(v, 0.3), 0.3)
    torch.testing.assert_close(back, v, rtol=1e-8, atol=1e-8)
    assert grid.diff_sparse().nnz == 2 * (2 * 224 * 224)


@pytest.mark.parametrize("h,w,k1,k2", [(8, 12, 4, 3), (9, 13, 4, 3), (5, 5, 5, 5)])
def test_cell_map_writes_and_upsamples_consistently(h: int, w: int, k1: int, k2: int) -> None:
    from captum_leg.pixels import CellMap

    cells = CellMap((h, w), (k1, k2), torch.device("cpu"))
    values = torch.randn(3, k1, k2, dtype=torch.float64)
    base = torch.randn(2, h, w, dtype=torch.float64)
    out = torch.empty(3, 2, h, w, dtype=torch.float64)
    cells.add_into(out, base, values)
    expected = base + values[:, None][..., cells.index[0], :][..., cells.index[1]]
    torch.testing.assert_close(out, expected)
    # Per-pixel scale: summing a cell's pixels gives back the cell value.
    up = cells.upsample_per_pixel(values)
    onehot_r = torch.nn.functional.one_hot(cells.index[0], k1).double()
    onehot_c = torch.nn.functional.one_hot(cells.index[1], k2).double()
    torch.testing.assert_close(torch.einsum("khw,ha,wb->kab", up, onehot_r, onehot_c), values)


def dense_d_nd(shape: tuple) -> np.ndarray:
    """D for any number of axes, row by row: last axis first, zero-padded differences."""
    p = int(np.prod(shape))
    index = np.arange(p).reshape(shape)
    rows = []
    for axis in reversed(range(len(shape))):
        padded = tuple(k + (i == axis) for i, k in enumerate(shape))
        for pos in np.ndindex(*padded):
            r = np.zeros(p)
            j = pos[axis]
            if j > 0:  # the cell before the edge
                r[index[pos[:axis] + (j - 1,) + pos[axis + 1 :]]] += 1
            if j < shape[axis]:  # the cell after it
                r[index[pos]] -= 1
            rows.append(r)
    return np.array(rows)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 4), (2, 3, 4), (3, 1, 2), (2, 2, 2, 2)])
def test_nd_operators_match_dense(shape: tuple) -> None:
    grid = get_grid(shape)
    d = dense_d_nd(shape)
    if len(shape) == 2:
        np.testing.assert_array_equal(d, dense_d(*shape))
    p = int(np.prod(shape))
    np.testing.assert_array_equal(grid.diff_sparse().toarray(), d)
    lap = d.T @ d
    assert np.all(np.diag(lap) == 2 * len(shape))
    v = torch.randn(2, *shape, dtype=torch.float64)
    vf = v.reshape(2, -1).numpy()
    e = torch.randn(2, grid.n_edges, dtype=torch.float64)
    np.testing.assert_allclose(grid.diff(v).numpy(), vf @ d.T, atol=1e-12)
    np.testing.assert_allclose(grid.diff_t(e).reshape(2, -1).numpy(), e.numpy() @ d, atol=1e-12)
    sigma = 0.3**2 * (lap + np.ones((p, p)) / p)
    np.testing.assert_allclose(
        grid.precision(v, 0.3).reshape(2, -1).numpy(), np.linalg.solve(sigma, vf.T).T, rtol=1e-9
    )
    np.testing.assert_allclose(grid.c.numpy(), np.linalg.pinv(d).T @ np.ones(p), atol=1e-10)
    draws = grid.sample_standard(100_000, torch.Generator().manual_seed(1)).reshape(-1, p)
    emp = (draws.T @ draws / draws.shape[0]).numpy()
    assert np.abs(emp - (lap + np.ones((p, p)) / p)).max() < 0.12


def test_large_1d_and_3d_grids_stay_structured() -> None:
    # The 1-D Laplacian's condition number grows like k^2 (~4e9 here): rounding sets atol.
    for shape, tol in [((100_000,), 1e-5), ((64, 64, 64), 1e-8)]:
        grid = get_grid(shape)
        v = torch.randn(*shape, dtype=torch.float64)
        back = grid.covariance(grid.precision(v, 0.2), 0.2)
        torch.testing.assert_close(back, v, rtol=tol, atol=tol)
        assert grid.sample_standard(2, torch.Generator().manual_seed(0)).shape == (2, *shape)


@pytest.mark.parametrize("bad", [(), (0, 3), (2, -1)])
def test_grid_shape_errors(bad: tuple) -> None:
    with pytest.raises(ValueError, match="grid shape"):
        get_grid(bad)
