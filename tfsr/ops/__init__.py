"""Custom TensorFlow ops (compiled C++/CUDA, built by ``make ops``) and their pure-TF twins.

The compiled libraries load lazily on first use; without them (or with ``TFSR_PURE_TF=1``) every
op runs its pure-TF twin, with one warning per process. :func:`custom_ops_available` says which.
"""

from tfsr.ops._loader import custom_ops_available
from tfsr.ops.grid_sample import grid_sample, offset_sample
from tfsr.ops.lut_interp import lut_interp_4d, lut_interp_4d_twin, lut_side  # noqa: F401
from tfsr.ops.meta_upscale import (
    MetaUpscalePhases,
    meta_upscale,
    meta_upscale_output_size,
    meta_upscale_phases,
    meta_upscale_twin,
)

__all__ = [
    "MetaUpscalePhases",
    "custom_ops_available",
    "grid_sample",
    "meta_upscale",
    "meta_upscale_output_size",
    "meta_upscale_phases",
    "meta_upscale_twin",
    "offset_sample",
]
