"""``captum-leg evaluate``: maps of several methods at one forward-pass budget, their key
sizes per mask and their sensitivity curves.

Maps are cached per method and settings (:class:`captum_leg.cli.outputs.MapCache`), so
a rerun reuses them; an image that cannot be read, or that the model or a method fails
on, is skipped and reported (:mod:`captum_leg.cli.failures`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from captum_leg.cli.checks import UsageError, is_usage_error
from captum_leg.cli.console import batched, log, progress
from captum_leg.cli.failures import FileFailures
from captum_leg.cli.images import collect_images, model_inputs, output_names, read_images
from captum_leg.cli.model import Model, load_model
from captum_leg.cli.options import noise_level
from captum_leg.cli.outputs import FigureSaver, MapCache, atomic_save, atomic_write, save_figure, write_table
from captum_leg.cli.sharding import device_and_shard

if TYPE_CHECKING:
    from captum_leg.evaluation import MethodSpec

_GRADIENT_METHODS = ("ig", "saliency", "smoothgrad", "gradcam")

#: An image being evaluated: its file, model input and predicted class.
Image = Tuple[Path, Tensor, int]


def run(args: argparse.Namespace, save_figure: FigureSaver = save_figure) -> int:
    """The ``evaluate`` command; returns its exit status (1 when any file failed)."""
    device, _ = device_and_shard(args.device)
    files = collect_images(args.images)
    files = files[: args.limit] if args.limit else files
    model = load_model(args.model, device)
    if not isinstance(model, nn.Module) and any(m in _GRADIENT_METHODS for m in args.methods):
        raise UsageError("--methods", "gradient methods (ig, saliency, smoothgrad, gradcam) need an nn.Module model")
    failures = FileFailures(is_fatal=lambda err: is_usage_error(err, args))
    name_of = dict(zip(files, output_names(files)))
    images = _predicted(model, read_images(files, args.image_size, args.normalize, failures), args, device, failures)
    maps, costs, timings, images = _all_maps(model, images, name_of, args, device, failures)
    names = [name_of[f] for f, _, _ in images]
    x, target = model_inputs(images, device), _classes(images, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # only now: a run that stops early leaves no empty folder
    _key_size_tables(out, model, x, target, maps, names, costs, args)
    _sensitivity(out, model, x, target, maps, args, save_figure)
    timing_csv = "method,seconds\n" + "".join(f"{m},{t:.1f}\n" for m, t in timings.items())
    atomic_write(out / "timings.csv", timing_csv.encode())
    log(f"evaluated {len(images)} image(s){failures.summary()}; wrote {out / 'key_size.md'}, {out / 'key_size.csv'}, {out / 'sensitivity.png'}")
    return failures.exit_status


def budget(args: argparse.Namespace) -> int:
    """Forward-equivalents per image of every method: LEG's own cost per RGB image."""
    return int(3 * args.n_samples + (args.sampling == "gaussian"))


def _classes(images: Sequence[Image], device: torch.device) -> Tensor:
    return torch.tensor([c for _, _, c in images], device=device)


def _predicted(model: Model, loaded: Sequence[Tuple[Path, Tensor]], args: argparse.Namespace,
               device: torch.device, failures: FileFailures) -> List[Image]:
    """``(file, input, predicted class)`` of every image the model runs on."""
    def predict(items: Sequence[Tuple[Path, Tensor]]) -> List[int]:
        with torch.no_grad():
            return list(model(model_inputs(items, device)).argmax(-1).tolist())

    done = []
    for batch in batched(loaded, args.batch_size):
        done += [(f, x, c) for (f, x), c in failures.each_alone(batch, predict)]
    failures.stop_if_broken(len(done), remaining=0)
    if not done:
        raise SystemExit(f"captum-leg: error: none of the {len(failures)} file(s) could be read as an image")
    return done


def _all_maps(model: Model, images: List[Image], name_of: Dict[Path, str], args: argparse.Namespace,
              device: torch.device, failures: FileFailures
              ) -> Tuple[Dict[str, Tensor], Dict[str, int], Dict[str, float], List[Image]]:
    """Every method's ``(N, C, S, S)`` maps of the images no method failed on, with each
    method's cost and time, and those images."""
    from captum_leg.evaluation import build_method

    cache_root = Path(args.cache) if args.cache else Path(args.out) / "maps"
    per_method: Dict[str, Dict[Path, Tensor]] = {}
    costs: Dict[str, int] = {}
    timings: Dict[str, float] = {}
    for m in args.methods:
        spec = build_method(
            m, model, budget(args), noise_level=noise_level(args), grid_size=args.grid_size, lam=args.lam[0],
            perturbations_per_eval=args.perturbations_per_eval, leg_kwargs=_leg_method_options(m, args),
        )
        costs[m] = spec.cost
        t0 = time.perf_counter()
        cache = MapCache(cache_root, m, _cache_key(m, spec.settings, args))
        per_method[m] = _method_maps(m, spec, cache, images, name_of, args, device, failures)
        images = [im for im in images if im[0] in per_method[m]]  # an image a method fails on is dropped
        timings[m] = time.perf_counter() - t0
        log(f"maps {m}: cost {spec.cost} forward-equivalents/image, {timings[m]:.1f} s ({spec.settings})")
    maps = {m: torch.stack([per_method[m][f] for f, _, _ in images]) for m in args.methods}
    return maps, costs, timings, images


def _leg_method_options(m: str, args: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """``LEG.attribute``'s options of method ``m`` beyond :func:`build_method`'s own."""
    if not m.startswith("leg"):
        return None
    options: Dict[str, Any] = dict(estimator=args.estimator, sampling=args.sampling)
    if m == "leg-tv":
        options["solver"] = args.solver
    return options


def _cache_key(m: str, method_settings: Dict[str, Any], args: argparse.Namespace) -> str:
    """Method ``m`` and every setting that changes its maps (names its cache folder)."""
    return repr((m, args.model, args.image_size, args.normalize, budget(args), noise_level(args), args.grid_size,
                 args.lam[0], args.solver, args.seed, sorted(method_settings.items(), key=str)))


def _method_maps(m: str, spec: MethodSpec, cache: MapCache, images: Sequence[Image], name_of: Dict[Path, str],
                 args: argparse.Namespace, device: torch.device, failures: FileFailures) -> Dict[Path, Tensor]:
    """Method ``m``'s map of each image it does not fail on, read from or added to the cache."""
    def explain(items: Sequence[Image]) -> List[Tensor]:
        return list(spec(model_inputs(items, device), _classes(items, device), args.seed).detach().float())

    maps: Dict[Path, Tensor] = {}
    chunks = batched(images, args.batch_size)
    for chunk in progress(chunks, f"maps {m}", not args.no_progress):
        cached = cache.load([name_of[f] for f, _, _ in chunk], device)
        if cached is not None:  # from an earlier run
            maps.update((f, a) for (f, _, _), a in zip(chunk, cached))
            continue
        for (f, _, _), a in failures.each_alone(chunk, explain, what=f"method {m}"):
            cache.store(name_of[f], a)
            maps[f] = a
    failures.stop_if_broken(len(maps), remaining=0, what=f"method {m}")
    return maps


def _masking_batch(args: argparse.Namespace) -> int:
    """Masked images per forward pass of the key size and the sensitivity curve."""
    from captum_leg.evaluation.method_spec import DEFAULT_BATCH

    return int(args.perturbations_per_eval or DEFAULT_BATCH)


def _key_size_tables(out: Path, model: Model, x: Tensor, target: Tensor, maps: Dict[str, Tensor],
                     names: List[str], costs: Dict[str, int], args: argparse.Namespace) -> None:
    """Key size of every method and mask: per image, mean and median, and methods x masks."""
    from captum_leg.evaluation import COARSE_KEY_FRACTIONS, DEFAULT_KEY_FRACTIONS, key_size

    fractions = COARSE_KEY_FRACTIONS if args.key_grid == "coarse" else DEFAULT_KEY_FRACTIONS
    per_image, summary = [], []
    for mask in args.masks:
        for m in args.methods:
            t0 = time.perf_counter()
            ks = key_size(model, x, maps[m], target, mask, fractions, pixel_space=args.normalize,
                          batch_size=_masking_batch(args), seed=args.seed).cpu()
            per_image += [dict(image=n, method=m, mask=mask, key_size=k) for n, k in zip(names, ks.tolist())]
            summary.append(dict(method=m, mask=mask, mean=float(ks.mean()), median=float(ks.median()), n_images=len(ks), cost=costs[m]))
            log(f"key size {m:10s} {mask:6s} mean {float(ks.mean()):.3f} median {float(ks.median()):.3f} ({time.perf_counter() - t0:.1f} s)")
    write_table(out / "key_size_per_image.csv", out / "key_size_per_image.md", per_image)
    header = (
        f"Key size (smaller is better), {len(names)} images, budget {budget(args)} forward-equivalents "
        f"per image (LEG n={args.n_samples} per channel), {args.key_grid} fraction grid, seed {args.seed}.\n"
    )
    write_table(out / "key_size.csv", out / "key_size.md", summary, header)
    wide = _wide_table(summary, costs, args)
    write_table(out / "key_size_wide.csv", out / "key_size_wide.md", wide, header + "Cells: mean (median).\n")


def _wide_table(summary: Sequence[Dict[str, Any]], costs: Dict[str, int], args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Methods x masks of mean key sizes (medians in parentheses)."""
    wide = []
    for m in args.methods:
        row: Dict[str, Any] = {"method": m, "cost": costs[m]}
        for mask in args.masks:
            r = next(s for s in summary if s["method"] == m and s["mask"] == mask)
            row[mask] = f"{r['mean']:.3f} ({r['median']:.3f})"
        wide.append(row)
    return wide


def _sensitivity(out: Path, model: Model, x: Tensor, target: Tensor, maps: Dict[str, Tensor],
                 args: argparse.Namespace, save_figure: FigureSaver) -> None:
    """Each method's sensitivity curve: ``sensitivity.png`` and ``sensitivity.npz``."""
    from captum_leg.evaluation import plot_sensitivity, sensitivity_curve

    fr = np.linspace(0, args.sensitivity_max, args.sensitivity_steps + 1)
    curves = {
        m: sensitivity_curve(model, x, maps[m], target, args.sensitivity_mask, fr.tolist(), pixel_space=args.normalize,
                             batch_size=_masking_batch(args), seed=args.seed)
        for m in args.methods
    }
    fig = plot_sensitivity(curves, None, title=f"{args.sensitivity_mask} mask, {len(x)} images")
    save_figure(fig, out / "sensitivity.png", dpi=120, tight=False)
    arrays: Dict[str, Any] = {"fractions": fr, **{f"{m}_probability": c.probability for m, c in curves.items()},
              **{f"{m}_log_odds": c.log_odds for m, c in curves.items()}}
    atomic_save(out / "sensitivity.npz", lambda fh: np.savez(fh, **arrays))
