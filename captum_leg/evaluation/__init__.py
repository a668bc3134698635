"""Evaluating saliency maps: key size, sensitivity, deletion/insertion, cascading randomisation.

Measures of the LEG paper (Luo, Barut, Jin, ICCV 2021) and RISE's deletion and insertion
curves (Petsiuk, Das, Saenko, BMVC 2018), batched on the model's device and seedable; a
registry of attribution methods at a common forward-pass budget; a Quantus-compatible
``explain_func``; summaries over images with bootstrap intervals and a resumable
photo-by-photo runner.

Modules: ``masking`` (pixel order, masks, the masking setup every metric shares),
``metrics``, ``plotting``, ``randomization``, ``methods`` (the registry) with
``builders`` (one per method) and ``method_spec``, ``quantus``, ``statistics``, ``tables``,
``runner``.

>>> from captum_leg.evaluation import key_size
>>> ks = key_size(model, x, attributions, mask="black")   # (N,) fractions in (0, 1]
"""

from captum_leg.evaluation.masking import FILLS, MASKS, mask_fill, pixel_affine, pixel_ranks
from captum_leg.evaluation.method_spec import GRAD_COST, MethodOptions, MethodSpec, grid_feature_mask
from captum_leg.evaluation.methods import (
    METHOD_NAMES,
    MethodEntry,
    build_method,
    method_entry,
    method_names,
    register_method,
)
from captum_leg.evaluation.metrics import (
    COARSE_KEY_FRACTIONS,
    DEFAULT_KEY_FRACTIONS,
    CausalCurve,
    SensitivityCurve,
    curve_auc,
    deletion_curve,
    insertion_curve,
    key_size,
    sensitivity_curve,
    sensitivity_curves,
)
from captum_leg.evaluation.plotting import plot_cascading, plot_causal_curves, plot_sensitivity
from captum_leg.evaluation.quantus import explain_func, make_explain_func
from captum_leg.evaluation.randomization import (
    CascadingResult,
    block_layers,
    cascading_randomization,
    default_layers,
    reinitialize,
    spearman,
)
from captum_leg.evaluation.statistics import bootstrap_interval, summarize

__all__ = [
    "COARSE_KEY_FRACTIONS",
    "DEFAULT_KEY_FRACTIONS",
    "FILLS",
    "MASKS",
    "CausalCurve",
    "SensitivityCurve",
    "curve_auc",
    "deletion_curve",
    "insertion_curve",
    "key_size",
    "mask_fill",
    "pixel_affine",
    "pixel_ranks",
    "plot_causal_curves",
    "plot_sensitivity",
    "sensitivity_curve",
    "sensitivity_curves",
    "GRAD_COST",
    "METHOD_NAMES",
    "MethodEntry",
    "MethodOptions",
    "MethodSpec",
    "build_method",
    "explain_func",
    "grid_feature_mask",
    "make_explain_func",
    "method_entry",
    "method_names",
    "register_method",
    "CascadingResult",
    "block_layers",
    "cascading_randomization",
    "default_layers",
    "plot_cascading",
    "reinitialize",
    "spearman",
    "bootstrap_interval",
    "summarize",
]
