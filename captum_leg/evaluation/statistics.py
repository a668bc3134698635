"""Summaries over images: mean, median and a bootstrap interval of the mean.

The interval is scipy's percentile bootstrap (``scipy.stats.bootstrap``) of the mean over
images, seeded: resample the images with replacement, take the mean, and report the
``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those means.
"""

from __future__ import annotations

import inspect
import math
from typing import Dict, Sequence, Tuple, Union

import numpy as np
from scipy import stats

#: Bootstrap resamples of :func:`bootstrap_interval` by default.
DEFAULT_RESAMPLES = 10000

Values = Union[Sequence[float], np.ndarray]


def _rng_keyword() -> str:
    # scipy >= 1.15 calls the generator ``rng``; older releases ``random_state``
    return "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def bootstrap_interval(
    values: Values,
    level: float = 0.95,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``.

    Args:
        values: one value per image (finite numbers).
        level: confidence level in (0, 1).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.

    Returns:
        ``(low, high)``; ``(nan, nan)`` with fewer than two values.
    """
    v = np.asarray(values, dtype=float).ravel()
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an int >= 1, got {n_resamples!r}")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite numbers")
    if v.size < 2:
        return math.nan, math.nan
    if np.all(v == v[0]):  # no spread: every resample has the same mean
        return float(v[0]), float(v[0])
    rng = {_rng_keyword(): np.random.default_rng(seed)}
    res = stats.bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=level,
                          method="percentile", **rng)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(values: Values, level: float = 0.95, *, seed: int = 0) -> Dict[str, float]:
    """``{n, mean, median, low, high}`` of ``values`` (``low``/``high``: :func:`bootstrap_interval`)."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        return dict(n=0, mean=math.nan, median=math.nan, low=math.nan, high=math.nan)
    low, high = bootstrap_interval(v, level, seed=seed)
    return dict(n=int(v.size), mean=float(v.mean()), median=float(np.median(v)), low=low, high=high)
