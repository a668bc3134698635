"""Evaluating saliency maps: key size, sensitivity curves, cascading randomisation.

Measures of the LEG paper (Luo, Barut, Jin, ICCV 2021), batched on the model's device and seedable,
plus a registry of Captum methods at a common forward-pass budget and a
Quantus-compatible ``explain_func``.

>>> from captum_leg.evaluation import key_size
>>> ks = key_size(model, x, attributions, mask="black")   # (N,) fractions in (0, 1]
"""

from captum_leg.evaluation.masking import (
    COARSE_KEY_FRACTIONS,
    DEFAULT_KEY_FRACTIONS,
    MASKS,
    SensitivityCurve,
    key_size,
    mask_fill,
    pixel_affine,
    pixel_ranks,
    plot_sensitivity,
    sensitivity_curve,
    sensitivity_curves,
)
from captum_leg.evaluation.methods import (
    GRAD_COST,
    METHOD_NAMES,
    MethodSpec,
    build_method,
    explain_func,
    grid_feature_mask,
    make_explain_func,
)
from captum_leg.evaluation.randomization import (
    CascadingResult,
    cascading_randomization,
    default_layers,
    plot_cascading,
    reinitialize,
    spearman,
)

__all__ = [
    "COARSE_KEY_FRACTIONS",
    "DEFAULT_KEY_FRACTIONS",
    "MASKS",
    "SensitivityCurve",
    "key_size",
    "mask_fill",
    "pixel_affine",
    "pixel_ranks",
    "plot_sensitivity",
    "sensitivity_curve",
    "sensitivity_curves",
    "GRAD_COST",
    "METHOD_NAMES",
    "MethodSpec",
    "build_method",
    "explain_func",
    "grid_feature_mask",
    "make_explain_func",
    "CascadingResult",
    "cascading_randomization",
    "default_layers",
    "plot_cascading",
    "reinitialize",
    "spearman",
]
