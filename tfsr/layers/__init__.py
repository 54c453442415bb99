"""Keras layers (tf_keras), one public layer per module."""

from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock  # noqa: F401
from tfsr.layers.dysample import DySample  # noqa: F401
from tfsr.layers.fixed_scale_meta_upscale import FixedScaleMetaUpscale  # noqa: F401
from tfsr.layers.meta_upscale import MetaUpscale  # noqa: F401
from tfsr.layers.pixel_shuffle import PixelShuffle  # noqa: F401
from tfsr.layers.pos2weight import Pos2Weight  # noqa: F401
