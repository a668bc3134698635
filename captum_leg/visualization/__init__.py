"""Plot saliency maps in Captum's conventions and the LEG reference's styles.

Two layers:

* :func:`attr_to_hwc` / :func:`image_to_hwc` turn attributions and images into the
  ``(H, W, C)`` numpy arrays that Captum's
  :func:`~captum.attr.visualization.visualize_image_attr` and
  :func:`~captum.attr.visualization.visualize_image_attr_multiple` expect, with the
  channel combination chosen explicitly.
* :func:`visualize_saliency` (one map) and :func:`visualize_saliency_multiple` (several
  maps, e.g. several lambdas or several methods, in one figure) draw the reference's three
  styles ``"heatmap_only"``, ``"gray"`` and ``"overlay"`` with Captum's sign options.
  :func:`visualize_signal_saliency` draws the map of a 1-D signal on the signal, and
  :func:`visualize_volume_saliency` a volume's map as a row of slices.
  :func:`draw_mask_outline` outlines a boolean mask, e.g. the significant cells found by
  :func:`captum_leg.significance.significant_cells`, on any image panel.
  Unlike Captum's plotting functions they never fail on an all-zero map or on a sign with
  no values (Captum asserts ``scale_factor != 0`` there), and they only touch pyplot when
  asked to, so they work headless.

The package is split by kind of input (``images``, ``signals``, ``volumes``) over shared
modules: ``options`` (accepted values and their checks), ``arrays`` (Captum-format
conversion), ``colors`` (sign selection and colour scaling), ``figures`` (figure
plumbing) and ``masks`` (mask outlines). Import from ``captum_leg.visualization``.
"""

from captum_leg.visualization import options as _options
from captum_leg.visualization.arrays import attr_to_hwc, image_to_hwc
from captum_leg.visualization.colors import normalize_attr
from captum_leg.visualization.images import visualize_saliency, visualize_saliency_multiple
from captum_leg.visualization.masks import draw_mask_outline
from captum_leg.visualization.signals import visualize_signal_saliency
from captum_leg.visualization.volumes import visualize_volume_saliency

# Bound here (not imported by name) so that the API reference shows their descriptions.
#: Channel combinations accepted by ``channel_reduction``.
CHANNEL_REDUCTIONS = _options.CHANNEL_REDUCTIONS
#: Sign options, as in Captum.
SIGNS = _options.SIGNS
#: The reference implementation's plotting styles (images and volume slices).
STYLES = _options.STYLES
#: Styles of :func:`visualize_signal_saliency`.
SIGNAL_STYLES = _options.SIGNAL_STYLES

__all__ = [
    "CHANNEL_REDUCTIONS",
    "SIGNAL_STYLES",
    "SIGNS",
    "STYLES",
    "attr_to_hwc",
    "draw_mask_outline",
    "image_to_hwc",
    "normalize_attr",
    "visualize_saliency",
    "visualize_saliency_multiple",
    "visualize_signal_saliency",
    "visualize_volume_saliency",
]
