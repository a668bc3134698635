"""``captum-leg explain``: a LEG (or LEG-TV) map, its picture and its settings per image.

Resumable (an image whose outputs match the run's settings is skipped), one bad file
costs only itself (:mod:`captum_leg.cli.failures`), and under torchrun each process
explains its share of the images (:mod:`captum_leg.cli.sharding`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from captum_leg.cli.checks import check_target, is_usage_error
from captum_leg.cli.console import batched, log, progress
from captum_leg.cli.failures import FileFailures
from captum_leg.cli.images import collect_images, model_inputs, output_names, read_images, saliency_picture, unit_image
from captum_leg.cli.model import Model, load_model
from captum_leg.cli.options import leg_options, noise_level
from captum_leg.cli.outputs import FigureSaver, file_sha1, save_figure, stale, write_map_set
from captum_leg.cli.sharding import Shard, device_and_shard

#: One explained image: its class, the array stored (``NAME.npy``) and the maps pictured.
Explained = Tuple[int, np.ndarray, Dict[str, np.ndarray]]
Explainer = Callable[[Sequence[Tuple[Path, Tensor]]], List[Explained]]


def explain_settings(args: argparse.Namespace, image: Path) -> Dict[str, Any]:
    """Everything that changes an image's ``explain`` outputs (stored in ``NAME.json``).

    Batch size, perturbations per forward call and device only change how the work is
    split, not the map, so they are not part of it.
    """
    settings: Dict[str, Any] = {
        "image_sha1": file_sha1(image),
        "model": args.model or "efficientnet-lite0 (built-in)",
        "image_size": args.image_size,
        "normalize": args.normalize,
        "target": args.target,
        "n_samples": args.n_samples,
        "noise_level": noise_level(args),
        "grid_size": args.grid_size,
        "estimator": args.estimator,
        "sampling": args.sampling,
        "target_precision": args.target_precision,
        "penalty": args.penalty,
        "seed": args.seed,
    }
    if args.penalty == "tv":
        settings.update(lam=list(args.lam), solver=args.solver)
    return settings


def run(args: argparse.Namespace, save_figure: FigureSaver = save_figure) -> int:
    """The ``explain`` command; returns its exit status (1 when any file failed)."""
    device, shard = device_and_shard(args.device)
    files = collect_images(args.images)
    mine = shard.take(list(zip(files, output_names(files))))
    out = Path(args.out)
    failures = FileFailures(shard.tag, is_fatal=lambda err: is_usage_error(err, args))
    todo, settings = _to_explain(args, mine, out, shard, failures)
    done = len(settings) - len(todo)
    log(f"{shard.tag}{len(mine)} image(s) for this process on {device}; {done} already done, {len(todo)} to explain")
    if not todo:
        log(f"{shard.tag}nothing to do{failures.summary()}; outputs in {out}")
        return failures.exit_status
    model = load_model(args.model, device)
    t_start = time.perf_counter()
    explained = _explain_all(args, todo, _explainer(model, args, device), settings, shard, failures, save_figure)
    where = f"outputs in {out}" if explained else "nothing written"
    log(f"{shard.tag}explained {explained} image(s) in {time.perf_counter() - t_start:.1f} s{failures.summary()}; {where}")
    return failures.exit_status


def _to_explain(args: argparse.Namespace, mine: Sequence[Tuple[Path, str]], out: Path, shard: Shard,
                failures: FileFailures) -> Tuple[List[Tuple[Path, str]], Dict[str, Dict[str, Any]]]:
    """The images whose outputs are missing or stale, and every readable image's settings."""
    settings, todo = {}, []
    for f, n in mine:
        try:
            settings[n] = explain_settings(args, f)
        except OSError as err:
            failures.cannot_read(f, err)
            continue
        why = "" if args.overwrite else stale(out, n, settings[n])
        if why is None:
            continue
        if why:
            log(f"{shard.tag}recomputing {n}: {why}")
        todo.append((f, n))
    return todo, settings


def _explain_all(args: argparse.Namespace, todo: Sequence[Tuple[Path, str]], explain: Explainer,
                 settings: Dict[str, Dict[str, Any]], shard: Shard, failures: FileFailures,
                 save_figure: FigureSaver) -> int:
    """Explain ``todo`` in batches and write each image's outputs; the number explained."""
    out, name_of, explained = Path(args.out), dict(todo), 0
    batches = batched(todo, args.batch_size)
    for k, batch in enumerate(progress(batches, "explain", not args.no_progress)):
        t0 = time.perf_counter()
        loaded = read_images([f for f, _ in batch], args.image_size, args.normalize, failures)
        results = failures.each_alone(loaded, explain)
        dt = (time.perf_counter() - t0) / len(batch)
        for (f, x), (cls, arr, maps) in results:
            n = name_of[f]
            write_map_set(out, n, arr, saliency_picture(unit_image(x, args.normalize), maps), settings[n], save_figure)
            log(f"{shard.tag}{f.name}: class {cls}, {dt:.1f} s/image -> {out / (n + '.npy')}")
        explained += len(results)
        failures.stop_if_broken(explained, remaining=sum(len(b) for b in batches[k + 1 :]))
    return explained


def _explainer(model: Model, args: argparse.Namespace, device: torch.device) -> Explainer:
    """``explain(items)``: the class, the stored array and the pictured maps of each
    ``(file, input)`` item, explained together."""
    from captum_leg import LEG

    leg, common = LEG(model), leg_options(args)
    tv = args.penalty == "tv"
    several = tv and len(args.lam) > 1

    def explain(items: Sequence[Tuple[Path, Tensor]]) -> List[Explained]:
        xs = model_inputs(items, device)
        with torch.no_grad():
            logits = model(xs)
        check_target(args.target, logits.shape[-1])
        target = logits.argmax(-1) if args.target is None else torch.full((len(items),), args.target, device=device)
        if several:  # one set of samples for every lambda: (L, N, C, S, S)
            a = leg.attribute_tv_path(xs, target=target, lams=args.lam, solver=args.solver, **common)
        elif tv:
            a = leg.attribute(xs, target=target, penalty="tv", lam=args.lam[0], solver=args.solver, **common)
        else:
            a = leg.attribute(xs, target=target, **common)
        return [_one_image(a, j, int(target[j]), several, args) for j in range(len(items))]

    return explain


def _one_image(a: Any, j: int, cls: int, several: bool, args: argparse.Namespace) -> Explained:
    """Image ``j``'s stored array and pictured maps from the batch's attributions ``a``."""
    arr = (a[:, j] if several else a[j]).detach().float().cpu().numpy()
    if several:
        maps = {f"LEG-TV lam={lam}": arr[k] for k, lam in enumerate(args.lam)}
    else:
        maps = {"LEG-TV" if args.penalty == "tv" else "LEG": arr}
    return cls, arr, maps
