"""From responses to cell gradients: ridge, least squares, the paper's moment estimator,
the autograd gradient path, and LEG-TV.

``attribute(estimator=...)`` takes a registered name (:func:`estimator_names`) or an
instance with its hyperparameters, e.g. ``RidgeEstimator(envelope=False)``.
"""

from captum_leg.estimators.base import (
    Accumulator,
    Estimate,
    Estimator,
    GroupContext,
    estimator_names,
    get_estimator,
    register_estimator,
    resolve_estimator,
)
from captum_leg.estimators.design import Block, DesignGroup
from captum_leg.estimators.evidence import penalty_posterior
from captum_leg.estimators.gradient import GradientEstimator
from captum_leg.estimators.moment import MomentEstimator
from captum_leg.estimators.regression import (
    MAX_DENSE_FEATURES,
    LeastSquaresEstimator,
    RidgeEstimator,
)

__all__ = [
    "MAX_DENSE_FEATURES",
    "Accumulator",
    "Block",
    "DesignGroup",
    "Estimate",
    "Estimator",
    "GradientEstimator",
    "GroupContext",
    "LeastSquaresEstimator",
    "MomentEstimator",
    "RidgeEstimator",
    "estimator_names",
    "get_estimator",
    "penalty_posterior",
    "register_estimator",
    "resolve_estimator",
]
