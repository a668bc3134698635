"""Argument checks for ``attribute``: every argument is checked, used or not, and each
failure is a ``TypeError``/``ValueError`` that names the argument and what was expected."""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Sequence, Tuple, TypeGuard

import torch
from torch import Tensor

from captum_leg.grid import check_grid_shape


def check_inputs(inputs: object) -> Tuple[bool, Tuple[Tensor, ...]]:
    """Tensor or tuple of tensors ``(N, C, *spatial)`` with 1 or more spatial axes."""
    is_tuple = isinstance(inputs, tuple)
    tensors: Tuple[object, ...] = inputs if isinstance(inputs, tuple) else (inputs,)
    if is_tuple and len(tensors) == 0:
        raise ValueError("inputs: got an empty tuple; pass a tensor or a tuple of tensors")
    out: List[Tensor] = []
    for i, x in enumerate(tensors):
        name = f"inputs[{i}]" if is_tuple else "inputs"
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor (N, C, *spatial), got {type(x).__name__}")
        if x.dim() == 2:
            raise ValueError(
                f"{name}: shape {tuple(x.shape)} has no spatial axis. LEG perturbs a grid of "
                "cells along spatial axes: pass (N, C, L) signals, (N, C, H, W) images or "
                "(N, C, D, H, W) volumes; for tabular features add an axis, e.g. "
                "x.unsqueeze(1) for (N, 1, F), which treats the features as a 1-D signal "
                "with neighbouring features on neighbouring cells, or, for unordered "
                "features, x.unsqueeze(-1) for (N, F, 1) with perturb='joint', which "
                "perturbs every feature at once with independent noise"
            )
        if x.dim() < 2:
            raise ValueError(f"{name}: expected shape (N, C, *spatial), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating point tensor, got {x.dtype}")
        if x.numel() == 0:
            raise ValueError(f"{name}: empty tensor of shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: contains NaN or inf")
        out.append(x.detach())
    if len({x.shape[0] for x in out}) > 1:
        raise ValueError(
            f"inputs: every tensor needs the same batch size N, got {[x.shape[0] for x in out]}"
        )
    if len({x.device for x in out}) > 1:
        raise ValueError(f"inputs: all tensors must be on one device, got {[str(x.device) for x in out]}")
    return is_tuple, tuple(out)


def is_int(value: object) -> TypeGuard[numbers.Integral]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: Optional[int]) -> int:
    if not is_int(value):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return value


def check_choice(name: str, value: object, choices: Sequence[Any]) -> Any:
    if not isinstance(value, (str, type(None))) or value not in choices:
        raise (TypeError if not isinstance(value, (str, type(None))) else ValueError)(
            f"{name}: expected one of {tuple(choices)}, got {value!r}"
        )
    return value


def per_input(name: str, value: object, n_inputs: int, is_tuple: bool) -> Tuple[object, ...]:
    """Spread a setting over the inputs: one value for all, or a tuple with one per input."""
    if n_inputs > 1 and isinstance(value, tuple):
        if len(value) != n_inputs:
            raise ValueError(
                f"{name}: with {n_inputs} input tensors, pass one value for all or a tuple "
                f"with one entry per input, got {len(value)} entries"
            )
        return value
    return (value,) * n_inputs


def check_grid_size(name: str, value: object, spatial: Tuple[int, ...]) -> Tuple[int, ...]:
    """``grid_size`` for an input of spatial size ``spatial``: None for the default cells
    per axis (fewer on shorter axes), else as :func:`captum_leg.grid.check_grid_shape`."""
    if value is None:
        from captum_leg.settings import DEFAULT_GRID_CELLS

        return tuple(min(DEFAULT_GRID_CELLS, n) for n in spatial)
    return check_grid_shape(name, value, spatial)


def check_noise_levels(name: str, value: object, channels: int) -> Tuple[float, ...]:
    """A positive float, or one per channel (sequence or tensor)."""
    if isinstance(value, Tensor):
        values = value.detach().to("cpu", torch.float64).reshape(-1).tolist()
    elif isinstance(value, (list, tuple)):
        values = list(value)
    else:
        values = [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}: expected a positive float or one per channel, got {v!r}")
    if len(values) == 1:
        values = values * channels
    if len(values) != channels:
        raise ValueError(f"{name}: expected one value or {channels} (one per channel), got {len(values)}")
    if not all(math.isfinite(float(v)) and float(v) > 0 for v in values):
        raise ValueError(f"{name}: must be finite and > 0, got {values}")
    return tuple(float(v) for v in values)


def check_lams(name: str, value: object, sequence: bool) -> Tuple[float, ...]:
    """A float in (0, 1), or (``sequence=True``) a non-empty sequence of floats in [0, 1)
    (0 stands for the estimate itself, the limit of LEG-TV as lambda -> 0)."""
    is_seq = isinstance(value, (list, tuple)) or (isinstance(value, Tensor) and value.dim() == 1)
    if is_seq and not sequence:
        raise ValueError(
            f"{name}: attribute() returns one map shaped like the inputs, so it takes one "
            "lambda; for several lambdas from one set of samples use "
            "attribute_tv_path(inputs, ..., lams=[...])"
        )
    span = "[0, 1)" if sequence else "(0, 1)"
    if sequence and not is_seq:
        raise TypeError(f"{name}: expected a sequence of floats in {span}, got {value!r}")
    values: List[object] = [value]
    if isinstance(value, Tensor) and is_seq:
        values = value.tolist()
    elif isinstance(value, (list, tuple)):
        values = list(value)
    if not values:
        raise ValueError(f"{name}: expected at least one lambda in {span}")
    low = 0.0 if sequence else None
    lams = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}: expected {'floats' if sequence else 'a float'} in {span}, got {v!r}")
        if not ((low is not None and float(v) == low) or 0 < float(v) < 1):
            raise ValueError(f"{name}: {'each value' if sequence else 'the value'} must lie in {span}, got {v}")
        lams.append(float(v))
    return tuple(lams)


def check_positive_float(name: str, value: object, optional: bool = True) -> Optional[float]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a positive float{' or None' if optional else ''}, got {value!r}")
    if not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"{name}: expected a finite value > 0, got {value}")
    return float(value)


def check_solver(name: str, value: object, needed: bool) -> str:
    """A registered backend name; its availability only matters when it will run."""
    from captum_leg.solvers import get_solver

    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a solver name (str), got {type(value).__name__}")
    try:
        backend = get_solver(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: {err}") from None
    if needed and not backend.available():
        raise ValueError(f"{name}: {value!r} is not available here: {backend.unavailable_reason()}")
    return value


def check_options(name: str, value: object) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected a dict or None, got {type(value).__name__}")
    return dict(value)
