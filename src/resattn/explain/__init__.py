"""Explanations of a classifier's decisions: Grad-CAM / Grad-CAM++ maps and their plots."""

from .gradcam import grad_cam, overlay_image, plot_waveform_cam

__all__ = ["grad_cam", "overlay_image", "plot_waveform_cam"]
