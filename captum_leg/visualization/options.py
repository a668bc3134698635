"""The plotting options every function accepts, and their shared checks."""

from __future__ import annotations

from typing import Optional, Sequence

# The accepted values; the package's __init__ re-exports and documents them.
CHANNEL_REDUCTIONS = ("sum", "mean", "mean_abs", "sum_abs", "max_abs", "none")
SIGNS = ("all", "positive", "negative", "absolute_value")
STYLES = ("heatmap_only", "gray", "overlay")
SIGNAL_STYLES = ("overlay", "colored_graph", "line")


def check_choice(value: str, choices: Sequence[str], name: str) -> None:
    """Raises ValueError naming ``name`` unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")


def check_alpha(alpha_overlay: float) -> None:
    """Raises ValueError unless the opacity ``alpha_overlay`` lies in [0, 1]."""
    if not 0.0 <= alpha_overlay <= 1.0:
        raise ValueError(f"alpha_overlay: expected a value in [0, 1], got {alpha_overlay}")


def check_plot_options(
    style: str,
    styles: Sequence[str],
    sign: str,
    channel_reduction: Optional[str],
    alpha_overlay: float,
) -> None:
    """The checks every single-map plot starts with (``channel_reduction`` None: checked later)."""
    check_choice(style, styles, "style")
    check_choice(sign, SIGNS, "sign")
    if channel_reduction is not None:
        check_choice(channel_reduction, CHANNEL_REDUCTIONS, "channel_reduction")
    check_alpha(alpha_overlay)


def check_ncols(ncols: Optional[int], n_panels: int) -> int:
    """Panels per row: all in one row if None, never more than there are panels."""
    if ncols is None:
        return n_panels
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols: expected a positive int, got {ncols!r}")
    return min(ncols, n_panels)
