"""captum-leg: LEG and LEG-TV saliency as a Captum attribution method.

>>> from captum_leg import LEG
>>> attr = LEG(model).attribute(images, target=labels)
"""

from captum_leg.attribution import LEG, LinearlyEstimatedGradient

__version__ = "0.1.0"

__all__ = ["LEG", "LinearlyEstimatedGradient", "__version__"]
