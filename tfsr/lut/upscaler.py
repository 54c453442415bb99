"""LUT files as :class:`tfsr.inference.Upscaler`: ``load_upscaler("model.npz")``."""

from __future__ import annotations

import numpy as np

from tfsr.inference import Upscaler, _resolve_scale
from tfsr.lut.lut_model import LutModel


class LutUpscaler(Upscaler):
    """Runs a LUT file (Y only; RGB through :class:`tfsr.inference.Upscaler`'s colour handling).

    Args:
        path: a tfsr LUT ``.npz`` (:mod:`tfsr.lut.lut_file`).
        scale: must be the file's scale; None uses it.
        name: for reports (default: the path).

    Example:
        >>> up = LutUpscaler("rclut_x4.npz")  # doctest: +SKIP
        >>> up.upscale_y(np.zeros((8, 8), np.float32)).shape  # doctest: +SKIP
        (32, 32, 1)
    """

    channels = 1

    def __init__(self, path: str, scale=None, name: str | None = None):
        self.model = LutModel.from_file(path)
        super().__init__(_resolve_scale(path, scale, self.model.scale), name or path)

    def _predict(self, image):
        # An image (or a last tile) thinner than the tables' reach is edge-padded up to it and
        # its output cropped: a 1-pixel-wide image upscales like any other.
        h, w = image.shape[:2]
        side = self.model.min_side
        padded = np.pad(image, ((0, max(side - h, 0)), (0, max(side - w, 0)), (0, 0)), mode="edge")
        scale = self.model.scale
        return self.model.upscale(padded[None])[0].numpy()[: h * scale, : w * scale]


def load_lut_upscaler(path: str, scale=None, name: str | None = None) -> LutUpscaler:
    """The upscaler of a LUT ``.npz`` file (what ``load_upscaler("model.npz")`` returns)."""
    return LutUpscaler(path, scale, name)
