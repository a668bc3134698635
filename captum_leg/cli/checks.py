"""Bad option values of the ``captum-leg`` commands, found before any work is done.

Every error here names the option, and :func:`captum_leg.cli.main` reports it as
argparse reports its own (one line, exit status 2). An error that ``attribute`` raises
about one of its arguments (``"noise_level: ..."``) is the same kind of error when a
command line option set that argument: :func:`option_in_error` finds the option.
"""

from __future__ import annotations

import argparse
import math
from typing import Dict, FrozenSet, Optional

import numpy as np


class UsageError(Exception):
    """A bad option value; :func:`captum_leg.cli.main` reports it as argparse does (exit status 2)."""

    def __init__(self, option: str, message: str):
        super().__init__(f"argument {option}: " + " ".join(message.split()))  # one line
        self.option = option


# attribute()'s argument names that a command's option sets: an error that names one
# (e.g. "noise_level: ...") is a bad option value
_OPTION_OF_ARGUMENT = {
    name: "--" + name.replace("_", "-")
    for name in ("n_samples", "noise_level", "grid_size", "estimator", "sampling", "target_precision", "lam",
                 "solver", "perturbations_per_eval", "target", "seed")
}

_POSITIVE_INTS = ("n_samples", "batch_size", "perturbations_per_eval", "grid_size", "image_size",
                  "n_images", "limit", "epochs", "sensitivity_steps")

# options that only LEG-TV uses, and those that only LEG and LEG-TV use
_TV_OPTIONS = ("lam", "solver")
_LEG_OPTIONS = ("estimator", "noise_level", "grid_size")


def option_in_error(err: Exception, args: argparse.Namespace) -> Optional[str]:
    """The option (``"--noise-level"``) whose value ``err`` is about, if the command has it."""
    text = str(err)
    for name, option in _OPTION_OF_ARGUMENT.items():
        if hasattr(args, name) and (text.startswith(name + ":") or text.startswith(name + " ")):
            return option
    return None


def is_usage_error(err: Exception, args: argparse.Namespace) -> bool:
    """Whether ``err`` is a bad option value (an error of the whole run, not of one file)."""
    if isinstance(err, UsageError):
        return True
    return isinstance(err, (ValueError, TypeError)) and option_in_error(err, args) is not None


def check_args(args: argparse.Namespace) -> None:
    """Reject option values that cannot work, before any model is loaded.

    Raises:
        UsageError: naming the option.
    """
    _check_numbers(args)
    if args.command == "evaluate":
        _check_evaluate_names(args)
    if hasattr(args, "solver"):
        _check_solver(args)
    _refuse_options_without_effect(args)


def check_target(target: Optional[int], n_classes: int) -> None:
    """``--target`` names one of the model's ``n_classes`` classes (or is not given)."""
    if target is not None and not 0 <= target < n_classes:
        raise UsageError("--target", f"{target} is out of range for the model's {n_classes} classes (0 to {n_classes - 1})")


def _check_numbers(args: argparse.Namespace) -> None:
    for name in _POSITIVE_INTS:
        v = getattr(args, name, None)
        if v is not None and v < 1:
            raise UsageError(f"--{name.replace('_', '-')}", f"must be >= 1, got {v}")
    noise = getattr(args, "noise_level", None)
    if noise is not None and not (math.isfinite(noise) and noise > 0):
        raise UsageError("--noise-level", f"must be a finite number > 0, got {noise}")
    if hasattr(args, "lam"):
        bad = [lam for lam in np.atleast_1d(args.lam).tolist() if not 0 < lam < 1]
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


def _check_evaluate_names(args: argparse.Namespace) -> None:
    from captum_leg.evaluation import MASKS, METHOD_NAMES

    for option, values, known in (("--methods", args.methods, METHOD_NAMES), ("--masks", args.masks, MASKS),
                                  ("--sensitivity-mask", [args.sensitivity_mask], MASKS)):
        unknown = [v for v in values if v not in known]
        if unknown:
            raise UsageError(option, f"unknown {unknown[0]!r}; choose from {', '.join(known)}")


def _solver_used(args: argparse.Namespace) -> bool:
    if args.command == "explain":
        return bool(args.penalty == "tv")
    if args.command == "evaluate":
        return "leg-tv" in args.methods
    return bool(args.command == "sanity")


def _check_solver(args: argparse.Namespace) -> None:
    from captum_leg.solvers import get_solver

    try:
        backend = get_solver(args.solver)
    except ValueError as err:
        raise UsageError("--solver", str(err).split("solver: ", 1)[-1])
    reason = backend.unavailable_reason() if _solver_used(args) else None
    if reason is not None:
        raise UsageError("--solver", f"backend {args.solver!r} is unavailable: {reason}")


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
    given: FrozenSet[str] = getattr(args, "given", frozenset())
    for name, needs in unused.items():
        if name in given:
            raise UsageError(f"--{name.replace('_', '-')}", f"has no effect without {needs}")
