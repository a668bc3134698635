"""What a method builder makes and takes: :class:`MethodSpec`, :class:`MethodOptions`.

Budget accounting, per image, in *forward-equivalents*: one forward pass of one image
counts 1, a backward pass counts 2 (:data:`GRAD_COST` for a forward + backward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from captum_leg.settings import DEFAULT_GRID_CELLS, DEFAULT_LAM, DEFAULTS
from captum_leg.evaluation.seeding import seeded_global_rng
from captum_leg.grid import cell_index

GRAD_COST = 3  # forward-equivalents of one forward + backward
#: Inputs per forward call of the non-LEG methods (and the CLI's masking) when unset:
#: small batches are faster per input on the CPU than large ones.
DEFAULT_BATCH = 16
#: Cells per side of the feature mask of Lime, KernelShap and feature ablation (LEG's
#: default grid: 16-pixel cells at 224 x 224).
DEFAULT_FEATURE_GRID = DEFAULT_GRID_CELLS

ExplainFn = Callable[[Tensor, Tensor, Optional[int]], Tensor]
Model = Union[nn.Module, Callable[..., Tensor]]


@dataclass
class MethodSpec:
    """An attribution method configured for a budget.

    Attributes:
        name: registry name.
        cost: forward-equivalents spent per image.
        settings: the settings used (for tables).
        fn: ``fn(inputs, target, seed) -> attributions`` shaped like ``inputs``, or
            ``(len(variants), *inputs.shape)`` when the method makes several maps.
        variants: names of the maps one call makes, when it makes several (e.g. LEG-TV
            at several lambdas from one set of samples); empty for one map.
        needs_gradients: the method differentiates the model (autograd).
    """

    name: str
    cost: int
    settings: Dict[str, Any]
    fn: ExplainFn = field(repr=False)
    variants: Tuple[str, ...] = ()
    needs_gradients: bool = False

    def __call__(self, inputs: Tensor, target: Tensor, seed: Optional[int] = None) -> Tensor:
        return self.fn(inputs, target, seed)

    def explain(self, inputs: Tensor, target: Tensor, seed: Optional[int] = None) -> Dict[str, Tensor]:
        """Map name -> map shaped like ``inputs`` (one entry per variant, or the name's)."""
        maps = self.fn(inputs, target, seed)
        if not self.variants:
            return {self.name: maps}
        return dict(zip(self.variants, maps.unbind(0)))


@dataclass(frozen=True)
class MethodOptions:
    """Options every builder receives (see :func:`captum_leg.evaluation.build_method`).

    Attributes:
        channels: input channels ``C``.
        noise_level, grid_size, lam: LEG / LEG-TV settings.
        feature_grid: cells per side of the grid feature mask.
        layer: GradCAM's layer (None: the last ``nn.Conv2d``).
        perturbations_per_eval: batch size of perturbation methods (None: LEG's own
            choice for LEG, :data:`DEFAULT_BATCH` for the others).
        leg_kwargs: extra keyword arguments of ``LEG.attribute``.
        extra: the method's own options (those its registry entry declares).
    """

    channels: int = 3
    noise_level: Any = DEFAULTS.noise_level
    grid_size: Optional[int] = None
    lam: float = DEFAULT_LAM
    feature_grid: int = DEFAULT_FEATURE_GRID
    layer: Optional[nn.Module] = None
    perturbations_per_eval: Optional[int] = None
    leg_kwargs: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        """Perturbations per forward call of the non-LEG methods."""
        return self.perturbations_per_eval or DEFAULT_BATCH


def grid_feature_mask(height: int, width: int, cells: int, device: Any = "cpu") -> Tensor:
    """``(1, 1, H, W)`` feature mask of ``cells x cells`` (near-)equal rectangles (LEG's cells)."""
    r, c = cell_index(height, cells, device), cell_index(width, cells, device)
    return (r[:, None] * cells + c[None, :])[None, None]


def last_conv(model: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` registered in ``model`` (GradCAM's default layer)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model: no nn.Conv2d found for GradCAM; pass layer=")
    return convs[-1]


def seeded_call(seed: Optional[int], f: Callable[[], Tensor]) -> Tensor:
    """``f()`` with torch's global generators seeded (Captum's sampling methods use them)."""
    with seeded_global_rng(seed):
        return f()


def check_grid_fits(x: Tensor, cells: int, name: str) -> None:
    """Refuse images with fewer pixels per side than the feature grid has cells."""
    if min(x.shape[2:]) < cells:
        raise ValueError(
            f"feature_grid: {cells} cells per side exceed the {tuple(x.shape[2:])} image of {name}; "
            "pass a smaller feature_grid"
        )


def fresh_generator(seed: Optional[int]) -> torch.Generator:
    """A CPU generator from ``seed`` (fresh entropy when None); the global ones are untouched."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen
