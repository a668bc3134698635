"""Figures of the evaluation: sensitivity, deletion and insertion curves, cascading randomisation.

Every function returns a ``matplotlib.figure.Figure`` that pyplot does not manage: no
backend is selected and nothing needs closing (display it in a notebook, or save it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import numpy as np

from captum_leg.evaluation.metrics import CausalCurve, SensitivityCurve
from captum_leg.evaluation.randomization import CascadingResult

if TYPE_CHECKING:  # matplotlib is imported when a figure is made
    from matplotlib.figure import Figure


def finish_figure(fig: Figure, title: Optional[str], path: Optional[str]) -> Figure:
    """Title, tight layout, and (when ``path`` is given) save at 120 dpi."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def plot_sensitivity(
    curves: Mapping[str, SensitivityCurve],
    path: Optional[str] = None,
    title: Optional[str] = None,
) -> Figure:
    """Plot mean target probability and mean log-odds ratio against the masked fraction.

    Args:
        curves: method name -> :class:`SensitivityCurve`.
        path: where to save the figure (PNG/PDF/...); ``None`` only returns it.
        title: figure title.

    Returns:
        A ``matplotlib.figure.Figure`` that pyplot does not manage: no backend is
        selected and nothing needs closing (display it in a notebook, or save it).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for name, c in curves.items():
        axes[0].plot(c.fractions, c.probability.mean(0), marker=".", label=name)
        axes[1].plot(c.fractions, c.log_odds.mean(0), marker=".", label=name)
    axes[0].set(xlabel="fraction of pixels masked", ylabel="target probability (mean)")
    axes[1].set(xlabel="fraction of pixels masked", ylabel="log-odds ratio (mean)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return finish_figure(fig, title, path)


def plot_causal_curves(
    curves: Mapping[str, Sequence[CausalCurve]],
    path: Optional[str] = None,
    title: Optional[str] = None,
    ylabel: str = "target response",
) -> Figure:
    """Mean deletion and insertion curves of several methods, their mean areas in the legend.

    Args:
        curves: method name -> its curves (e.g. a deletion and an insertion
            :class:`CausalCurve`); one panel per kind of curve, in order of appearance.
        path: where to save the figure; ``None`` only returns it.
        title: figure title.
        ylabel: what the curves track (e.g. ``"target probability"``).

    Returns:
        The figure.
    """
    from matplotlib.figure import Figure

    kinds = list(dict.fromkeys(c.kind for cs in curves.values() for c in cs))
    if not kinds:
        raise ValueError("curves: no curve to plot")
    fig = Figure(figsize=(5 * len(kinds), 4))
    axes = np.atleast_1d(fig.subplots(1, len(kinds)))
    for k, (name, cs) in enumerate(curves.items()):
        for c in cs:
            ax = axes[kinds.index(c.kind)]
            label = f"{name} (AUC {float(np.mean(c.auc)):.3f})"
            ax.plot(c.fractions, c.response.mean(0), color=f"C{k % 10}", label=label)
    for ax, kind in zip(axes, kinds):
        what = "removed" if kind == "deletion" else "revealed"
        ax.set(xlabel=f"fraction of pixels {what}", ylabel=f"{ylabel} (mean)", title=kind)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return finish_figure(fig, title, path)


def plot_cascading(
    results: Mapping[str, CascadingResult],
    path: Optional[str] = None,
    image: Optional[np.ndarray] = None,
    title: Optional[str] = None,
) -> Figure:
    """Plot mean rank correlation against randomised layers for one or more methods.

    Args:
        results: method name -> :class:`CascadingResult` (same layers).
        path: where to save (``None``: only return the figure).
        image: optional ``(H, W)`` or ``(H, W, 3)`` picture of the first input; then a
            second row shows each method's map (first image) after every step.
        title: figure title.

    Returns:
        A ``matplotlib.figure.Figure`` that pyplot does not manage (no backend is
        selected, nothing needs closing).
    """
    from matplotlib.figure import Figure

    first = next(iter(results.values()))
    L = len(first.layers)
    rows = 1 + (len(results) if image is not None else 0)
    fig = Figure(figsize=(max(8, 1.3 * (L + 2)), 3.6 + 1.5 * (rows - 1)))
    gs = fig.add_gridspec(rows, L + 1, height_ratios=[2.5] + [1] * (rows - 1))
    ax = fig.add_subplot(gs[0, :])
    xs = np.arange(L + 1)
    for k, (name, r) in enumerate(results.items()):
        color = f"C{k}"
        ys = [1.0] + r.spearman_abs.mean(1).tolist()
        ax.plot(xs, ys, marker="o", color=color, label=f"{name} |map|")
        ax.plot(xs, [1.0] + r.spearman.mean(1).tolist(), marker="x", ls="--", color=color, label=f"{name} signed")
        ax.axhline(float(r.noise_floor_abs.mean()), color=color, ls=":", lw=1, label=f"{name} seed-to-seed |map|")
    ax.set_xticks(xs)
    ax.set_xticklabels(["original"] + [n if len(n) < 14 else "…" + n[-12:] for n in first.layers], rotation=30, fontsize=7)
    ax.set_ylabel("Spearman rank correlation")
    ax.set_xlabel("layers randomised cumulatively (top down)")
    ax.grid(alpha=0.3)
    # beside the axes: with several methods an inside legend hides the curves
    ax.legend(fontsize=7, ncol=1 + len(results) // 5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if image is not None:
        for k, (name, r) in enumerate(results.items()):
            panels = [r.original] + r.maps
            for j, a in enumerate(panels):
                axm = fig.add_subplot(gs[1 + k, j])
                axm.imshow(a[0].abs().mean(0).cpu().numpy(), cmap="viridis")
                axm.set_xticks([])
                axm.set_yticks([])
                if j == 0:
                    axm.set_ylabel(name, fontsize=7)
            axm = fig.add_subplot(gs[1 + k, L])
            axm.imshow(image, cmap="gray" if np.ndim(image) == 2 else None)
            axm.set_xticks([])
            axm.set_yticks([])
    return finish_figure(fig, title, path)
