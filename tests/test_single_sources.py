"""One check per kind of argument and one home per default: every entry point that takes
a grid shape rejects and accepts the same values through ``grid.check_grid_shape``, the
evaluation reads targets through ``targets.py``, and what ``attribute``'s docstring says
about its defaults is what ``captum_leg.settings`` holds."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch

from captum_leg import LEG
from captum_leg.estimators import GradientEstimator
from captum_leg.evaluation import key_size
from captum_leg.grid import check_grid_shape, get_grid
from captum_leg.settings import (
    ACCELERATOR_PERTURBATIONS_PER_EVAL,
    CPU_CALL_BYTES,
    DEFAULT_GRID_CELLS,
    DEFAULT_LAM,
    DEFAULT_SOLVER,
    DEFAULTS,
)
from captum_leg.solvers import make_problem, solve_tv, solve_tv_batch
from captum_leg.targets import parse_class_target


def _linear(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1, keepdim=True)


def _entry_points(value: object) -> dict:
    """Each public way of passing a grid shape, for a 4 x 4 grid, as name -> call."""
    x = torch.rand(1, 1, 4, 4)
    return {
        "shape": lambda: get_grid(value),
        "grid_shape": lambda: make_problem(np.ones(16), value, 0.1, 0.2),
        "grid_size": lambda: LEG(_linear).attribute(x, n_samples=4, grid_size=value, seed=0),
    }


@pytest.mark.parametrize(
    "bad,error",
    [((2.5, 2), TypeError), ("4x4", TypeError), ((4, True), TypeError), (4.0, TypeError),
     ((4, 0), ValueError), ((-1, 4), ValueError), (0, ValueError)],
)
def test_every_grid_shape_argument_fails_the_same_way_and_names_itself(bad: object, error: type) -> None:
    for name, call in _entry_points(bad).items():
        with pytest.raises(error, match=rf"^{name}: "):
            call()


def test_numpy_and_torch_integers_are_grid_shapes_everywhere() -> None:
    for shape in [(np.int64(4), np.int32(4)), np.array([4, 4]), torch.Size([4, 4])]:
        for name, call in _entry_points(shape).items():
            call()  # no error
    assert check_grid_shape("g", np.int64(3)) == (3,)  # an int alone is a 1-D grid
    assert check_grid_shape("g", 3, spatial=(5, 7)) == (3, 3)  # or one per spatial axis
    with pytest.raises(TypeError, match=r"g: expected an int or 2 ints \(one per spatial axis of \(5, 7\)\)"):
        check_grid_shape("g", (3, 3, 3), spatial=(5, 7))
    with pytest.raises(ValueError, match=r"g: \(6, 3\) cells exceed the spatial size \(5, 7\)"):
        check_grid_shape("g", (6, 3), spatial=(5, 7))
    with pytest.raises(ValueError, match="grid shape"):  # no axis at all
        check_grid_shape("g", ())


def test_class_targets_in_every_form_give_the_same_classes() -> None:
    expected = torch.tensor([2, 2, 2])
    for form in [2, (2,), [2, 2, 2], torch.tensor(2), torch.tensor([2, 2, 2]), np.int64(2),
                 np.array([2, 2, 2]), np.array([2.0, 2.0, 2.0])]:
        got = parse_class_target(form, 3)
        assert got is not None and got.dtype == torch.long and torch.equal(got, expected), form
    assert parse_class_target(None, 3) is None
    assert torch.equal(parse_class_target([0, 1, 2], 3), torch.tensor([0, 1, 2]))


@pytest.mark.parametrize(
    "bad,error,words",
    [([1, 2], ValueError, "one entry per example"), (torch.tensor([0.5, 1.0, 2.0]), TypeError, "integers"),
     ((1, 2), ValueError, "one class index per example"), (np.array([0.5, 1, 2]), TypeError, "whole-number"),
     ("cat", TypeError, "expected None, an int"), (True, TypeError, "bool")],
)
def test_bad_class_targets_are_named(bad: object, error: type, words: str) -> None:
    with pytest.raises(error, match=f"^labels: .*{words}"):
        parse_class_target(bad, 3, "labels")


def test_evaluation_reads_targets_like_attribute() -> None:
    # A model whose class 1 is the sum of the pixels: every target form of class 1 gives
    # the same key size, and a Captum form attribute refuses is refused here too.
    def model(x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1).sum(1, keepdim=True)
        return torch.cat([-s, s], 1)

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 6, 6, generator=gen)
    a = x.clone()
    kw = dict(mask="black", pixel_space="unit", steps=[0.25, 0.5, 1.0])
    sizes = [key_size(model, x, a, target=t, **kw) for t in (1, [1, 1], torch.tensor([1, 1]), np.array([1, 1]))]
    for s in sizes[1:]:
        assert torch.equal(s, sizes[0])
    for bad in ([1, 1, 1], torch.tensor([1.0, 1.0])):
        with pytest.raises((TypeError, ValueError)) as from_eval:
            key_size(model, x, a, target=bad, **kw)
        with pytest.raises(type(from_eval.value)) as from_attribute:
            LEG(model).attribute(x, target=bad, n_samples=4, grid_size=2, seed=0)
        assert str(from_eval.value) == str(from_attribute.value)


def test_attribute_docstring_states_the_settings_defaults() -> None:
    doc = " ".join(LEG.attribute.__doc__.split())
    image = 3 * 224 * 224 * 4  # one float32 RGB image
    for statement in [
        f"the estimator's own: {DEFAULTS.samples} for the black-box estimators",
        f"{GradientEstimator.default_samples} for \"gradient\"",
        f"Default: {DEFAULTS.noise_level} (",
        f"Default: None ({DEFAULT_GRID_CELLS} cells per axis",
        f'Default: "{DEFAULTS.estimator}"',
        f'Default: "{DEFAULTS.sampling}"',
        f'Default: "{DEFAULTS.perturb}"',
        f'Default: None ({DEFAULT_LAM} with ``penalty="tv"``)',
        f'Default: None ("{DEFAULT_SOLVER}" with ``penalty="tv"``)',
        f"Default: None ({ACCELERATOR_PERTURBATIONS_PER_EVAL} on accelerators",
        f"under {CPU_CALL_BYTES / 2**20:g} MiB, e.g. {CPU_CALL_BYTES // image} for one 224 x 224 RGB image",
    ]:
        assert statement in doc, statement
    signature = inspect.signature(LEG.attribute)
    for name in ("n_samples", "noise_level", "grid_size", "estimator", "sampling", "perturb", "lam", "solver"):
        assert signature.parameters[name].default == getattr(DEFAULTS, name), name
    for solve in (solve_tv, solve_tv_batch):
        assert inspect.signature(solve).parameters["solver"].default == DEFAULT_SOLVER
    assert re.search(rf"\b{DEFAULT_GRID_CELLS}\b", doc)
