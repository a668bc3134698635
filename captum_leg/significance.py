"""Which cells of a LEG map are non-zero, at a chosen false-discovery rate.

Each cell's estimate is divided by its standard error; the two-sided p-value of that
z-score (normal approximation) tests "this cell's smoothed gradient is zero", and the
Benjamini-Hochberg or Benjamini-Yekutieli procedure (``scipy.stats.false_discovery_control``)
controls the expected share of false discoveries among the cells declared non-zero.

A test is a cell, not an element. ``LEG.attribute`` upsamples each cell's value and
standard error to all the elements of the cell, so an image map holds each test many
times over; counting elements would change the number of tests (and, with unequal cells
or with Benjamini-Yekutieli, the answer). The cells are read off the map: the coarsest
axis-aligned grid on which the map and its standard errors are constant, or the
``grid_size`` the map was computed with when it is passed (and then verified).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy.stats import false_discovery_control, norm
from torch import Tensor

from captum_leg import _checks as checks
from captum_leg.grid import cell_index

__all__ = [
    "CHANNEL_ERRORS",
    "COMBINATIONS",
    "DEFAULT_FDR",
    "FDR_METHODS",
    "CellSignificance",
    "significant_cells",
]

#: Multiple-testing procedures: Benjamini-Hochberg (independent or positively dependent
#: tests) and Benjamini-Yekutieli (any dependence; more conservative).
FDR_METHODS = ("bh", "by")
#: Channel combinations: None tests every channel's map, "sum" the channels' sum.
COMBINATIONS = (None, "sum")
#: How the standard error of the channels' sum is formed from the channels' errors.
CHANNEL_ERRORS = ("independent", "worst_case")
#: The false-discovery rate used when none is given.
DEFAULT_FDR = 0.05

ArrayOrTensor = Union[Tensor, np.ndarray]


@dataclass(frozen=True)
class CellSignificance:
    """The cells of a map found non-zero, with the statistics behind the decision.

    Every tensor is shaped like the tested map: the attributions ``(N, C, *spatial)``,
    or ``(N, 1, *spatial)`` for the channels' sum; each element carries its cell's
    value. They are on the attributions' device (the CPU for numpy input).

    Attributes:
        mask: bool, True on the cells declared non-zero (``q_values <= fdr``).
        q_values: adjusted p-values: the smallest false-discovery rate at which the
            cell would be declared non-zero.
        p_values: two-sided p-values of the cells' z-scores.
        z_scores: estimate / standard error (``±inf`` where the error is 0 and the
            estimate is not; 0 where both are).
        cells: cells per spatial axis (the grid that was tested).
        n_significant: ``(N, C)`` (or ``(N, 1)``) number of cells declared non-zero
            in each tested map; each map has ``n_cells`` cells.
        fdr: the false-discovery rate controlled.
        method: ``"bh"`` or ``"by"``.
    """

    mask: Tensor
    q_values: Tensor
    p_values: Tensor
    z_scores: Tensor
    cells: Tuple[int, ...]
    n_significant: Tensor
    fdr: float
    method: str

    @property
    def n_cells(self) -> int:
        """Cells (tests) per map."""
        return math.prod(self.cells)


def significant_cells(
    attributions: ArrayOrTensor,
    standard_errors: ArrayOrTensor,
    fdr: float = DEFAULT_FDR,
    method: str = "bh",
    combine: Optional[str] = None,
    *,
    grid_size: Union[None, int, Sequence[int]] = None,
    channel_errors: str = "independent",
) -> CellSignificance:
    r"""
    Finds the cells of LEG maps that are non-zero while controlling the false-discovery
    rate (the expected share of zero cells among those declared non-zero).

    Each map is one family of tests: every example and channel with ``combine=None``,
    every example with ``combine="sum"``. Within a family each cell is one test,
    whatever the number of elements it covers.

    Args:

        attributions (Tensor or numpy.ndarray): LEG maps ``(N, C, *spatial)``, as
                    returned by ``LEG(model).attribute(..., return_standard_error=True)``
                    (a 1-tuple holding one is unwrapped; for several input tensors call
                    this once per input).
        standard_errors (Tensor or numpy.ndarray): Their standard errors, same shape,
                    finite and non-negative.
        fdr (float, optional): The false-discovery rate to control, in (0, 1).
                    Default: 0.05
        method (str, optional): ``"bh"`` (Benjamini-Hochberg: valid for independent
                    or positively dependent tests; LEG's cell estimates are mildly
                    correlated, and BH is the usual choice there) or ``"by"``
                    (Benjamini-Yekutieli: valid under any dependence, fewer
                    discoveries).
                    Default: ``"bh"``
        combine (str or None, optional): None tests each channel's map; ``"sum"`` tests
                    the channels' sum (Captum's channel combination) with the standard
                    error given by ``channel_errors``.
                    Default: None
        grid_size (int or tuple[int, ...], optional): The ``grid_size`` the maps were
                    computed with (an int for every spatial axis, or one per axis);
                    the maps must be constant on its cells. None reads the cells off
                    the maps: the coarsest axis-aligned grid on which both the maps and
                    the errors are constant, shared by all examples and channels (LEG's
                    own grid, since two neighbouring cells of real estimates are never
                    equal along a whole row); a map that is not piecewise constant is
                    tested element by element.
                    Default: None
        channel_errors (str, optional): With ``combine="sum"``, how the channels'
                    errors combine. ``"independent"``: the square root of the sum of
                    squared errors, right for LEG's default ``perturb="channel"``, where
                    each channel is estimated from its own perturbations and forward
                    passes. ``"worst_case"``: the sum of the errors, an upper bound
                    under any correlation (use it with ``perturb="joint"``, where the
                    channels share forward passes). Ignored without ``combine``.
                    Default: ``"independent"``

    Returns:
        CellSignificance: ``mask`` (bool, shaped like the tested maps) with the q-values,
        p-values and z-scores behind it, the tested grid ``cells`` and the count of
        non-zero cells per map.

    Examples::

        >>> attr, se = LEG(model).attribute(x, target=281, return_standard_error=True)
        >>> sig = significant_cells(attr, se, fdr=0.05, combine="sum")
        >>> sig.n_significant[0, 0].item(), sig.n_cells      # e.g. (37, 196)
        >>> fig, ax = visualize_saliency(attr[0], unnormalize(x), significance_mask=sig.mask[0])
    """
    a, se = _checked_maps(attributions, standard_errors)
    _check_options(fdr, method, combine, channel_errors)
    if grid_size is None:
        runs = _detected_cells(a, se)
    else:
        runs = _given_cells(a, se, checks.check_grid_size("grid_size", grid_size, tuple(a.shape[2:])))
    a_cells, se_cells = _cell_values(a, runs), _cell_values(se, runs)
    if combine == "sum":
        a_cells, se_cells = _channel_sum(a_cells, se_cells, channel_errors)
    z, p = _two_sided(a_cells, se_cells)
    families = p.reshape(p.shape[0], p.shape[1], -1)
    q = false_discovery_control(families, axis=-1, method=method).reshape(p.shape)
    significant = q <= fdr

    def per_element(values: np.ndarray, dtype: torch.dtype) -> Tensor:
        return _upsample(torch.as_tensor(values, dtype=dtype).to(a.device), runs)

    return CellSignificance(
        mask=per_element(significant, torch.bool),
        q_values=per_element(q, a.dtype),
        p_values=per_element(p, a.dtype),
        z_scores=per_element(z, a.dtype),
        cells=tuple(int(run[-1]) + 1 for run in runs),
        n_significant=torch.as_tensor(significant.reshape(families.shape).sum(-1)).to(a.device),
        fdr=float(fdr),
        method=method,
    )


def _as_tensor(x: object, name: str) -> Tensor:
    if isinstance(x, tuple) and len(x) == 1:  # Captum's tuple-in, tuple-out convention
        x = x[0]
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        hint = "; for several inputs call this once per input" if isinstance(x, tuple) else ""
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(x).__name__}{hint}")
    x = x.detach()
    return x if x.is_floating_point() else x.to(torch.float64)


def _checked_maps(attributions: object, standard_errors: object) -> Tuple[Tensor, Tensor]:
    a = _as_tensor(attributions, "attributions")
    se = _as_tensor(standard_errors, "standard_errors")
    if a.dim() < 3 or a.numel() == 0:
        raise ValueError(
            "attributions: expected non-empty maps (N, C, *spatial) as returned by "
            f"LEG.attribute, got shape {tuple(a.shape)}"
        )
    if se.shape != a.shape:
        raise ValueError(
            f"standard_errors: shape {tuple(se.shape)} does not match the attributions' {tuple(a.shape)}"
        )
    if se.device != a.device:
        raise ValueError(f"standard_errors: on {se.device}, the attributions on {a.device}")
    if not bool(torch.isfinite(a).all()):
        raise ValueError("attributions: contains NaN or inf")
    if not bool(torch.isfinite(se).all()):
        raise ValueError("standard_errors: contains NaN or inf")
    if bool((se < 0).any()):
        raise ValueError("standard_errors: negative values; standard errors are >= 0")
    return a, se


def _check_options(fdr: float, method: str, combine: Optional[str], channel_errors: str) -> None:
    if isinstance(fdr, bool) or not isinstance(fdr, (int, float, np.floating)):
        raise TypeError(f"fdr: expected a float in (0, 1), got {type(fdr).__name__}")
    if not 0.0 < float(fdr) < 1.0:
        raise ValueError(f"fdr: expected a false-discovery rate in (0, 1), got {fdr}")
    checks.check_choice("method", method, FDR_METHODS)
    checks.check_choice("combine", combine, COMBINATIONS)
    checks.check_choice("channel_errors", channel_errors, CHANNEL_ERRORS)


def _changes(a: Tensor, se: Tensor, dim: int) -> Tensor:
    """``(size - 1,)`` bool: where the maps or errors change between neighbours along ``dim``
    anywhere in the batch."""
    n = a.shape[dim]
    step = (a.narrow(dim, 1, n - 1) != a.narrow(dim, 0, n - 1)) | (
        se.narrow(dim, 1, n - 1) != se.narrow(dim, 0, n - 1)
    )
    return step.movedim(dim, 0).reshape(n - 1, -1).any(1)


def _runs_from_changes(changes: Tensor) -> Tensor:
    return torch.cat([changes.new_zeros(1, dtype=torch.long), changes.long().cumsum(0)])


def _detected_cells(a: Tensor, se: Tensor) -> List[Tensor]:
    """The cell of every position along each spatial axis: constant runs shared by all maps."""
    return [_runs_from_changes(_changes(a, se, dim)) for dim in range(2, a.dim())]


def _given_cells(a: Tensor, se: Tensor, grid: Tuple[int, ...]) -> List[Tensor]:
    """LEG's cells of ``grid`` along each spatial axis, after checking the maps are constant on them."""
    runs = []
    for axis, k in enumerate(grid):
        dim = axis + 2
        run = cell_index(a.shape[dim], k, a.device)
        inside = run[1:] == run[:-1]
        if bool((_changes(a, se, dim) & inside).any()):
            raise ValueError(
                f"grid_size: the maps or their errors vary inside the cells of a {grid} grid "
                f"(along spatial axis {axis}); pass the grid_size they were computed with, or "
                "None to read the cells off the maps"
            )
        runs.append(run)
    return runs


def _cell_values(t: Tensor, runs: List[Tensor]) -> Tensor:
    """One value per cell ``(N, C, *cells)``, taken at each cell's first element."""
    for axis, run in enumerate(runs):
        first = torch.ones_like(run, dtype=torch.bool)
        first[1:] = run[1:] != run[:-1]
        t = t.index_select(axis + 2, first.nonzero().squeeze(1))
    return t


def _upsample(cells: Tensor, runs: List[Tensor]) -> Tensor:
    for axis, run in enumerate(runs):
        cells = cells.index_select(axis + 2, run)
    return cells


def _channel_sum(a: Tensor, se: Tensor, channel_errors: str) -> Tuple[Tensor, Tensor]:
    total = a.sum(1, keepdim=True)
    if channel_errors == "independent":
        return total, se.square().sum(1, keepdim=True).sqrt()
    return total, se.sum(1, keepdim=True)  # sd(sum) <= sum of sd's, whatever the correlation


def _two_sided(a: Tensor, se: Tensor) -> Tuple[np.ndarray, np.ndarray]:
    """z-scores and two-sided normal p-values, in float64 on the CPU (one per cell)."""
    est = a.to("cpu", torch.float64).numpy()
    err = se.to("cpu", torch.float64).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(err > 0, est / err, np.where(est == 0, 0.0, np.copysign(np.inf, est)))
    return z, 2.0 * norm.sf(np.abs(z))
