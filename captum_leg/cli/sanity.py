"""``captum-leg sanity``: the cascading-randomisation check of LEG, LEG-TV and the
gradient on a small CNN trained on scikit-learn's 8x8 digits."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, cast

import torch
from torch import Tensor, nn

from captum_leg.cli.console import log
from captum_leg.cli.outputs import FigureSaver, save_figure, write_table

if TYPE_CHECKING:
    from captum_leg.evaluation import CascadingResult

#: ``explain(model, inputs, target, seed)``, as :func:`cascading_randomization` calls it.
ExplainFn = Callable[[nn.Module, Tensor, Tensor, Optional[int]], Tensor]

_GRID = 8  # LEG cells per side: one per pixel of the 8x8 digits


def run(args: argparse.Namespace, save_figure: FigureSaver = save_figure) -> int:
    """The ``sanity`` command; returns its exit status."""
    from captum_leg.evaluation import cascading_randomization, plot_cascading
    from captum_leg.evaluation.digits import train_digits_cnn

    out = Path(args.out)
    t0 = time.perf_counter()
    model, acc, xte, _ = train_digits_cnn(epochs=args.epochs, seed=args.seed)
    log(f"digits CNN: test accuracy {acc:.3f}, trained in {time.perf_counter() - t0:.1f} s")
    x = xte[: args.n_images]
    with torch.no_grad():
        target = model(x).argmax(-1)
    results = {}
    for name, explain in _explainers(args).items():
        t1 = time.perf_counter()
        results[name] = cascading_randomization(model, x, target, explain, seed=args.seed, floor_seed=args.seed + 1)
        log(f"{name}: {time.perf_counter() - t1:.1f} s")
    header = (f"Cascading randomisation, digits CNN (test acc {acc:.3f}), {len(x)} test digits, "
              f"LEG n={args.n_samples}, grid {_GRID}x{_GRID}, noise {args.noise_level}, LEG-TV lam {args.lam}. "
              "rho: Spearman of signed maps; |rho|: of absolute maps; means over images.\n")
    out.mkdir(parents=True, exist_ok=True)  # only now: a failed run leaves no empty folder
    write_table(out / "sanity.csv", out / "sanity.md", _table_rows(results), header)
    fig = plot_cascading(results, None, image=x[0, 0].numpy(), title="cascading randomisation (digits CNN)")
    save_figure(fig, out / "sanity.png", dpi=120, tight=False)
    log(f"wrote {out / 'sanity.md'}, {out / 'sanity.csv'}, {out / 'sanity.png'}")
    return 0


def _explainers(args: argparse.Namespace) -> Dict[str, ExplainFn]:
    """The methods compared: LEG, LEG-TV and the plain gradient."""
    from captum.attr import Saliency

    from captum_leg import LEG

    def leg(tv: bool) -> ExplainFn:
        options: Dict[str, Any] = dict(penalty="tv", lam=args.lam, solver=args.solver) if tv else {}

        def explain(m: nn.Module, x: Tensor, t: Tensor, seed: Optional[int]) -> Tensor:
            return cast(Tensor, LEG(m).attribute(x, target=t, n_samples=args.n_samples, noise_level=args.noise_level,
                                                 grid_size=_GRID, seed=seed, **options))
        return explain

    def gradient(m: nn.Module, x: Tensor, t: Tensor, seed: Optional[int]) -> Tensor:
        return cast(Tensor, Saliency(m).attribute(x, target=t, abs=False))

    return {"LEG": leg(False), "LEG-TV": leg(True), "gradient": gradient}


def _table_rows(results: Dict[str, CascadingResult]) -> List[Dict[str, Any]]:
    """One row for the seed-to-seed noise floor, then one per randomised layer: mean
    Spearman correlations of signed (rho) and absolute (|rho|) maps per method."""
    first = next(iter(results.values()))
    rows = []
    for i, layer in enumerate(["(seed-to-seed noise floor)"] + first.layers):
        row: Dict[str, Any] = {"randomised up to": layer}
        for name, r in results.items():
            if i == 0:
                row[f"{name} rho"], row[f"{name} |rho|"] = float(r.noise_floor.mean()), float(r.noise_floor_abs.mean())
            else:
                row[f"{name} rho"], row[f"{name} |rho|"] = float(r.spearman[i - 1].mean()), float(r.spearman_abs[i - 1].mean())
        rows.append(row)
    return rows
