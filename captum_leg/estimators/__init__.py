"""From responses to cell gradients: the moment, least-squares and ridge estimators, LEG-TV."""

from captum_leg.estimators.base import (
    Estimate,
    Estimator,
    estimator_names,
    get_estimator,
    register_estimator,
)
from captum_leg.estimators.design import Block, DesignGroup
from captum_leg.estimators.moment import MomentEstimator
from captum_leg.estimators.regression import (
    MAX_DENSE_FEATURES,
    LeastSquaresEstimator,
    RidgeEstimator,
    penalty_posterior,
)

__all__ = [
    "MAX_DENSE_FEATURES",
    "Block",
    "DesignGroup",
    "Estimate",
    "Estimator",
    "LeastSquaresEstimator",
    "MomentEstimator",
    "RidgeEstimator",
    "penalty_posterior",
    "estimator_names",
    "get_estimator",
    "register_estimator",
]
