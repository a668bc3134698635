"""The ``captum-leg`` command line: its commands, their options and help texts, and
what the LEG options mean as ``attribute``'s keyword arguments."""

from __future__ import annotations

import argparse
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from captum_leg.cli.failures import BROKEN_MODEL_FAILURES

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

#: The methods ``evaluate`` compares unless --methods says otherwise.
EVALUATE_METHODS = ("leg", "leg-tv", "lime", "kernelshap", "ig", "saliency", "smoothgrad", "gradcam")

_FORMATTER = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The ``captum-leg`` argument parser."""
    return build_parsers()[0]


def build_parsers() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The parser and its commands' parsers, whose usage a bad option value reports."""
    p = argparse.ArgumentParser(
        prog="captum-leg",
        description="LEG and LEG-TV saliency maps (Linearly Estimated Gradient) for image classifiers, "
        "with evaluation (key size, sensitivity) and sanity checks. Run 'captum-leg COMMAND --help' for details.",
        epilog=EPILOG,
        formatter_class=_FORMATTER,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = {"demo": _demo_parser(sub), "explain": _explain_parser(sub), "evaluate": _evaluate_parser(sub),
                "sanity": _sanity_parser(sub)}
    return p, commands


def _demo_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    from captum_leg.settings import DEFAULT_GRID_CELLS, DEFAULTS

    d = sub.add_parser(
        "demo", help="explain a cat photo with EfficientNet-Lite0 and write a picture", formatter_class=_FORMATTER,
        description="Explain skimage's 'chelsea' cat with EfficientNet-Lite0: LEG with its cells that are non-zero "
        "at a false-discovery rate of 5% outlined, LEG-TV (lam 0.1, 0.3, from the same samples) and Captum's "
        "IntegratedGradients (50 steps), each over the photo; prints what each method cost.",
        epilog="example:\n  captum-leg demo --out chelsea.png")
    d.add_argument("--out", required=True, metavar="FILE.png", help="picture to write")
    d.add_argument("--n-samples", type=int, default=None, metavar="N", help=f"perturbations per channel (default: LEG's, {DEFAULTS.samples})")
    d.add_argument("--grid-size", type=int, default=None, metavar="K", help=f"cells per side (default: LEG's, {DEFAULT_GRID_CELLS})")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--perturbations-per-eval", type=int, default=None, metavar="P", help="perturbed images per forward pass (default: LEG's)")
    d.add_argument("--device", help="torch device (default cuda if available, else cpu)")
    return d


def _explain_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    e = sub.add_parser(
        "explain", help="write a LEG map (.npy) and picture (.png) per image", formatter_class=_FORMATTER,
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
    return e


def _evaluate_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    v = sub.add_parser(
        "evaluate", help="key-size table and sensitivity plot for LEG and Captum methods", formatter_class=_FORMATTER,
        description="Compute maps of several methods at one forward-pass budget (3N per image with pairs, 3N+1 gaussian, N = "
        "--n-samples), then the key size (smallest fraction of most-salient pixels whose masking "
        "changes the prediction) per method and mask, and the sensitivity curve. Writes key_size.csv/.md, "
        "key_size_wide.md, key_size_per_image.csv, sensitivity.png/.npz, timings.csv and caches maps "
        "in --cache (default OUT/maps/); a rerun reuses cached maps.",
        epilog="example:\n  captum-leg evaluate photos/ --out results --n-samples 100\n\n" + MODEL_HELP)
    v.add_argument("images", nargs="+", metavar="IMAGES_OR_FOLDERS")
    v.add_argument("--out", required=True, metavar="DIR")
    v.add_argument("--methods", nargs="+", default=list(EVALUATE_METHODS),
                   help=f"methods (default: all of {' '.join(EVALUATE_METHODS)})")
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
    return v


def _sanity_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    from captum_leg.settings import DEFAULT_LAM, DEFAULT_SOLVER

    s = sub.add_parser(
        "sanity", help="cascading-randomisation sanity check on a small digits CNN", formatter_class=_FORMATTER,
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
    return s


def _add_model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", metavar="MODULE:CALLABLE", help="your model factory (see 'model contract' below); default: built-in EfficientNet-Lite0")
    g.add_argument("--image-size", type=int, default=224, metavar="S", help="side of the square model input (default 224)")
    g.add_argument("--normalize", choices=("imagenet", "unit"), default="imagenet", help="input normalisation the model expects (default imagenet)")
    g.add_argument("--device", help="torch device, e.g. cpu, cuda:0 (default: cuda:LOCAL_RANK if available, else cpu)")


class _Given(argparse.Action):
    """Stores the value as "store" does and notes that the option was given: an option
    that would change nothing is an error (see :func:`captum_leg.cli.checks.check_args`)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Union[str, Sequence[Any], None], option_string: Optional[str] = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.given = frozenset(getattr(namespace, "given", frozenset()) | {self.dest})


def _add_leg_args(p: argparse.ArgumentParser, n_default: Optional[int] = None, evaluate: bool = False) -> None:
    from captum_leg.estimators import estimator_names
    from captum_leg.sampling import SAMPLING_SCHEMES
    from captum_leg.settings import (
        ACCELERATOR_PERTURBATIONS_PER_EVAL,
        CPU_CALL_BYTES,
        DEFAULT_GRID_CELLS,
        DEFAULTS,
        UNIT_NOISE_LEVEL,
    )

    n_text = n_default if n_default is not None else _estimator_samples_text()
    g = p.add_argument_group("LEG")
    g.add_argument("--n-samples", type=int, default=n_default, metavar="N", help=f"perturbations per input channel; cost 3N forwards per RGB image with pairs (orthogonal, antithetic), 3N+1 with gaussian sampling (default {n_text})")
    g.add_argument("--noise-level", type=float, default=None, metavar="S", action=_Given, help=f"noise scale in input units (default {DEFAULTS.noise_level} for imagenet inputs, {UNIT_NOISE_LEVEL} for unit)")
    g.add_argument("--grid-size", type=int, default=None, metavar="K", action=_Given, help=f"perturbation grid K x K cells (default {DEFAULT_GRID_CELLS}, LEG's own)")
    g.add_argument("--estimator", choices=estimator_names(), default=DEFAULTS.estimator, action=_Given, help=f"how cell gradients are estimated (default {DEFAULTS.estimator})")
    g.add_argument("--sampling", choices=SAMPLING_SCHEMES, default=DEFAULTS.sampling, help=f"perturbation scheme (default {DEFAULTS.sampling})")
    if not evaluate:  # evaluate makes one map per method at a fixed budget
        g.add_argument("--target-precision", type=float, default=None, metavar="R", help="sample in rounds until the relative standard error is at most R (N is then the cap)")
        g.add_argument("--penalty", choices=("none", "tv"), default="none", help="'tv' gives LEG-TV (default none: plain LEG)")
    _add_tv_args(g, evaluate)
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--batch-size", type=int, default=4, metavar="B", help="images explained together (default 4)")
    g.add_argument("--perturbations-per-eval", type=int, default=None, metavar="P", help=f"perturbed images per forward pass (default: LEG's, {ACCELERATOR_PERTURBATIONS_PER_EVAL} on a GPU, about {CPU_CALL_BYTES / 2**20:g} MiB of input per call on the CPU)")


def _estimator_samples_text() -> str:
    """``n_samples``' default as the help says it: the default estimator's, then the others'."""
    from captum_leg.estimators import estimator_names, resolve_estimator
    from captum_leg.settings import DEFAULTS

    default = DEFAULTS.samples
    others = {name: resolve_estimator(name).default_samples for name in estimator_names()}
    exceptions = ", ".join(f"{n} for {name}" for name, n in others.items() if n != default)
    return f"the estimator's own: {default}" + (f", {exceptions}" if exceptions else "")


def _add_tv_args(g: argparse._ArgumentGroup, evaluate: bool) -> None:
    from captum_leg.settings import DEFAULT_LAM, DEFAULT_SOLVER

    if evaluate:
        lam_help = f"LEG-TV sparsity level in (0, 1), with leg-tv in --methods (default {DEFAULT_LAM})"
        solver_help = f"LEG-TV solver backend, with leg-tv in --methods (default {DEFAULT_SOLVER})"
    else:
        lam_help = f"LEG-TV sparsity level(s) in (0, 1), with --penalty tv; several reuse the samples (default {DEFAULT_LAM})"
        solver_help = f"LEG-TV solver backend, with --penalty tv (default {DEFAULT_SOLVER})"
    g.add_argument("--lam", type=float, nargs="+", default=[DEFAULT_LAM], metavar="LAM", action=_Given, help=lam_help)
    g.add_argument("--solver", default=DEFAULT_SOLVER, action=_Given, help=solver_help)


# ---------------------------------------------------------------------------------------
# what the options mean to attribute()
# ---------------------------------------------------------------------------------------
def leg_options(args: argparse.Namespace) -> Dict[str, Any]:
    """``attribute``'s keyword arguments set by ``explain``'s LEG options (None: LEG's default)."""
    return dict(
        noise_level=noise_level(args), estimator=args.estimator, sampling=args.sampling,
        target_precision=args.target_precision,
        perturbations_per_eval=args.perturbations_per_eval, seed=args.seed, **size_options(args),
    )


def size_options(args: argparse.Namespace) -> Dict[str, Any]:
    """``n_samples`` and ``grid_size`` where the command line sets them (else LEG's defaults)."""
    return {name: getattr(args, name) for name in ("n_samples", "grid_size") if getattr(args, name) is not None}


def noise_level(args: argparse.Namespace) -> float:
    """``--noise-level``, or LEG's default for the inputs' ``--normalize``."""
    if args.noise_level is not None:
        return float(args.noise_level)
    from captum_leg.settings import DEFAULTS, UNIT_NOISE_LEVEL

    return DEFAULTS.noise_level if args.normalize == "imagenet" else UNIT_NOISE_LEVEL
