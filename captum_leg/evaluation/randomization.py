"""Cascading model-parameter randomisation (Adebayo et al., "Sanity checks for saliency maps").

Layers are re-initialised cumulatively from the top (output) down, on a deep copy of
the model; after each step the maps are recomputed and compared with the original maps by
Spearman rank correlation, both signed and of absolute values. A randomised method such
as LEG never reproduces its own map exactly, so the comparison is only meaningful next
to the *noise floor*: the correlation between two runs of the method with different
seeds on the unchanged model (same settings, same n).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from captum_leg.evaluation.seeding import seeded_global_rng
from captum_leg.targets import parse_class_target

#: ``explain(model, inputs, target, seed) -> attributions`` shaped like ``inputs``.
ExplainWithModel = Callable[[nn.Module, Tensor, Tensor, Optional[int]], Tensor]


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Per-row Spearman rank correlation of two ``(N, ...)`` tensors (average ranks for ties).

    Returns:
        ``(N,)`` float64 CPU tensor; 0 where a row is constant.
    """
    x = a.detach().double().cpu().reshape(a.shape[0], -1).numpy()
    y = b.detach().double().cpu().reshape(b.shape[0], -1).numpy()
    rx = rankdata(x, axis=1)
    ry = rankdata(y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    den = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    num = (rx * ry).sum(1)
    out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return torch.from_numpy(out)


def default_layers(model: nn.Module) -> List[str]:
    """Names of the modules owning parameters, top (last registered) first.

    For models written in forward order (``nn.Sequential``, torchvision, EfficientNet)
    registration order is the forward order, so this is top-down.
    """
    names = [n for n, m in model.named_modules() if _owns_parameters(m)]
    if not names:
        raise ValueError("model: no module with parameters to randomise")
    return names[::-1]


def block_layers(model: nn.Module) -> List[str]:
    """The model's top-level parameterised children, top (last registered) first.

    A ``nn.ModuleList`` or ``nn.Sequential`` child is expanded into its elements (e.g. one
    entry per block of a network's block list), so that cascading randomisation
    (:func:`cascading_randomization`) can re-initialise a network block by block.
    """
    names: List[str] = []
    for name, child in reversed(list(model.named_children())):
        if isinstance(child, (nn.ModuleList, nn.Sequential)):
            names += [f"{name}.{n}" for n, c in reversed(list(child.named_children())) if _has_parameters(c)]
        elif _has_parameters(child):
            names.append(name)
    if not names:
        raise ValueError("model: no module with parameters to randomise")
    return names


def _has_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


@torch.no_grad()
def reinitialize(module: nn.Module, seed: int) -> None:
    """Re-initialise one module's own parameters in place, reproducibly.

    Uses ``reset_parameters()`` where the module has one (PyTorch's default init), else
    draws every own parameter from ``N(0, 0.02^2)``. A container without parameters of
    its own (a block of layers) has every parameterised submodule re-initialised so.
    """
    owners = [module] if _owns_parameters(module) else [m for m in module.modules() if _owns_parameters(m)]
    with seeded_global_rng(int(seed)):  # reset_parameters draws from the global generators
        for m in owners:
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
            else:
                for p in m.parameters(recurse=False):
                    p.normal_(0.0, 0.02)


def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


@dataclass
class CascadingResult:
    """Result of :func:`cascading_randomization`.

    Attributes:
        layers: randomised layer names, in the order randomised (cumulatively).
        spearman: ``(L, N)`` signed rank correlation with the original maps after
            randomising ``layers[: l + 1]``.
        spearman_abs: ``(L, N)`` the same on absolute values.
        noise_floor: ``(N,)`` seed-to-seed signed correlation on the original model.
        noise_floor_abs: ``(N,)`` the same on absolute values.
        original: the original maps (seed ``seed``).
        maps: ``L`` tensors, the maps after each step.
    """

    layers: List[str]
    spearman: Tensor
    spearman_abs: Tensor
    noise_floor: Tensor
    noise_floor_abs: Tensor
    original: Tensor
    maps: List[Tensor]

    def table(self) -> List[dict]:
        """Rows ``{layer, spearman, spearman_abs}`` (means over images), floor first."""
        rows = [
            dict(
                layer="(none: seed-to-seed noise floor)",
                spearman=float(self.noise_floor.mean()),
                spearman_abs=float(self.noise_floor_abs.mean()),
            )
        ]
        for i, name in enumerate(self.layers):
            rows.append(
                dict(
                    layer=name,
                    spearman=float(self.spearman[i].mean()),
                    spearman_abs=float(self.spearman_abs[i].mean()),
                )
            )
        return rows


def cascading_randomization(
    model: nn.Module,
    inputs: Tensor,
    target: Tensor,
    explain: ExplainWithModel,
    *,
    layers: Optional[Sequence[str]] = None,
    seed: int = 0,
    floor_seed: int = 1,
    init_seed: int = 1234,
) -> CascadingResult:
    """Cascading randomisation sanity check with its noise floor.

    Args:
        model: the trained model; never modified (a deep copy is randomised).
        inputs: ``(N, C, H, W)`` inputs on the model's device.
        target: ``(N,)`` classes explained (held fixed while the model is randomised).
        explain: ``explain(model, inputs, target, seed) -> attributions``.
        layers: module names to randomise, in order (top-down); a container (e.g. one
            block of layers) re-initialises all its parameterised submodules at once;
            default :func:`default_layers`.
        seed: the method's seed for every map compared.
        floor_seed: the second seed of the noise floor.
        init_seed: base seed of the re-initialisations (layer ``l`` uses ``init_seed + l``).

    Returns:
        A :class:`CascadingResult`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(explain):
        raise TypeError("explain must be callable: explain(model, inputs, target, seed)")
    names = list(default_layers(model) if layers is None else layers)
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"layers: unknown module names {unknown}")
    classes = parse_class_target(target, inputs.shape[0])
    if classes is None:
        raise TypeError("target: expected the (N,) classes to explain, got None")
    target = classes.to(inputs.device)
    original = explain(model, inputs, target, seed).detach()
    second = explain(model, inputs, target, floor_seed).detach()
    floor, floor_abs = spearman(original, second), spearman(original.abs(), second.abs())

    work = copy.deepcopy(model)
    work_modules = dict(work.named_modules())
    rho, rho_abs, maps = [], [], []
    for i, name in enumerate(names):
        reinitialize(work_modules[name], init_seed + i)
        a = explain(work, inputs, target, seed).detach()
        maps.append(a)
        rho.append(spearman(original, a))
        rho_abs.append(spearman(original.abs(), a.abs()))
    return CascadingResult(
        names, torch.stack(rho), torch.stack(rho_abs), floor, floor_abs, original, maps
    )
