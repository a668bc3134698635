"""Every setting of ``LEG.attribute``: its default, its range and its check, in one place.

:class:`LEGSettings` is frozen and validates itself on construction, so an instance is
always a valid call's settings; :data:`DEFAULTS` holds the defaults that ``attribute``'s
signature, the command line and the evaluation helpers read. Settings that depend on
the inputs (a grid per input tensor, a noise level per channel) are checked again
against the inputs when the call is laid out (:mod:`captum_leg.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional, Union

from captum_leg import _checks as checks
from captum_leg.estimators import Estimator, resolve_estimator
from captum_leg.sampling import PAIRED_SCHEMES, SAMPLING_SCHEMES
from captum_leg.solvers import registry as solver_registry

#: ``perturb`` values: one channel at a time (the paper's scheme) or all at once.
PERTURB_MODES = ("channel", "joint")
#: ``penalty`` values: the estimate itself, or LEG-TV.
PENALTIES = (None, "tv")
#: The reference's noise level for inputs scaled to [0, 1]. ImageNet normalisation
#: divides by a standard deviation of about 0.226, so 0.02 / 0.226 ~ 0.09 is the same
#: perturbation on the usual normalised inputs (the default).
UNIT_NOISE_LEVEL = 0.02
#: Cells per spatial axis when ``grid_size`` is left out (fewer on shorter axes).
DEFAULT_GRID_CELLS = 14
#: LEG-TV's relative constraint level and backend when ``penalty="tv"`` leaves them out
#: (the backend is the solver registry's default entry, "auto").
DEFAULT_LAM = 0.1
DEFAULT_SOLVER = solver_registry.DEFAULT_SOLVER
# CPU forward calls above a few MiB of input get slower per input (measured 46 ms per
# 224 x 224 image at 64 per call against 22-25 ms at 4-16, EfficientNet-Lite0, 2 cores):
# their activations exceed the allocator's reuse threshold and are mapped afresh.
CPU_CALL_BYTES = 8 * 2**20
ACCELERATOR_PERTURBATIONS_PER_EVAL = 64


@dataclass(frozen=True)
class LEGSettings:
    """The settings of one ``attribute`` call (see its docstring for each meaning).

    Construction validates every field; a bad value raises ``TypeError``/``ValueError``
    naming the argument. ``estimator`` is kept as given (a name or an instance); use
    :attr:`estimator_instance` for the resolved estimator.
    """

    n_samples: Optional[int] = None
    noise_level: Any = 0.09
    grid_size: Any = None
    estimator: Union[str, Estimator] = "ridge"
    sampling: str = "orthogonal"
    perturb: str = "channel"
    target_precision: Optional[float] = None
    penalty: Optional[str] = None
    lam: Optional[float] = None
    solver: Optional[str] = None
    solver_options: Optional[Dict[str, Any]] = None
    perturbations_per_eval: Optional[int] = None
    seed: Optional[int] = None
    show_progress: bool = False
    return_standard_error: bool = False
    estimator_instance: Estimator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_samples is not None:
            checks.check_int("n_samples", self.n_samples, minimum=1)
        if self.perturbations_per_eval is not None:
            checks.check_int("perturbations_per_eval", self.perturbations_per_eval, minimum=1)
        if self.seed is not None:
            checks.check_int("seed", self.seed, minimum=None)
        checks.check_bool("show_progress", self.show_progress)
        checks.check_bool("return_standard_error", self.return_standard_error)
        checks.check_choice("sampling", self.sampling, SAMPLING_SCHEMES)
        checks.check_choice("perturb", self.perturb, PERTURB_MODES)
        checks.check_choice("penalty", self.penalty, PENALTIES)
        checks.check_positive_float("target_precision", self.target_precision)
        if self.lam is not None:
            checks.check_lams("lam", self.lam, sequence=False)
        checks.check_solver("solver", self.tv_solver, needed=self.penalty == "tv")
        checks.check_options("solver_options", self.solver_options)
        estimator = resolve_estimator(self.estimator)
        estimator.check()
        object.__setattr__(self, "estimator_instance", estimator)
        if self.paired and self.samples % 2:
            raise ValueError(
                f"n_samples: {self.sampling} sampling uses pairs, so n_samples must be even, got {self.samples}"
            )

    @property
    def samples(self) -> int:
        """Perturbations per channel: ``n_samples``, or the estimator's default."""
        return self.estimator_instance.default_samples if self.n_samples is None else int(self.n_samples)

    @property
    def paired(self) -> bool:
        """Units are symmetric pairs ``X, -X``."""
        return self.sampling in PAIRED_SCHEMES

    @property
    def tv_lam(self) -> float:
        """LEG-TV's level, the default filled in."""
        return DEFAULT_LAM if self.lam is None else float(self.lam)

    @property
    def tv_solver(self) -> str:
        """LEG-TV's backend, the default filled in."""
        return DEFAULT_SOLVER if self.solver is None else self.solver

    def replace(self, **changes: Any) -> "LEGSettings":
        """A validated copy with some settings changed."""
        return replace(self, **changes)


#: The defaults of ``attribute``.
DEFAULTS = LEGSettings()
