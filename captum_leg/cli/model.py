"""The model a ``captum-leg`` command explains: the built-in EfficientNet-Lite0 or the
user's ``--model MODULE:CALLABLE`` (the contract is in :data:`captum_leg.cli.options.MODEL_HELP`)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator, Optional, cast

import torch
from torch import Tensor, nn

from captum_leg.cli.checks import UsageError

Model = Callable[..., Tensor]


def load_model(spec: Optional[str], device: torch.device) -> Model:
    """The built-in EfficientNet-Lite0 (``spec=None``) or ``MODULE:CALLABLE``'s result.

    An ``nn.Module`` is put in eval mode on ``device``; a forward function is used as it is.

    Raises:
        UsageError: ``spec`` is not ``MODULE:CALLABLE``, cannot be imported, or does not
            return a model.
    """
    if spec is None:
        from captum_leg.models import load_efficientnet_lite0

        return load_efficientnet_lite0(device)
    if ":" not in spec:
        raise UsageError("--model", f"expected MODULE:CALLABLE, got {spec!r}")
    mod_name, attr = spec.rsplit(":", 1)
    with _working_directory_importable():
        try:
            factory = getattr(_import(mod_name), attr)
        except (ImportError, AttributeError, FileNotFoundError) as err:
            raise UsageError("--model", f"cannot load {spec!r}: {err}")
        model = factory()  # may import more of the user's modules
    if isinstance(model, nn.Module):
        return model.eval().to(device)
    if not callable(model):
        raise UsageError("--model", f"{spec!r} returned {type(model).__name__}, not a model")
    return cast(Model, model)  # the user's forward function


def _import(mod_name: str) -> ModuleType:
    """The module named (``pkg.mod``) or the file (``path/to/mod.py``)."""
    if not (mod_name.endswith(".py") or os.sep in mod_name):
        return importlib.import_module(mod_name)
    spec = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {mod_name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
