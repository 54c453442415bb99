"""tfsr: efficient super-resolution and learned upsampling for TensorFlow (tf_keras).

Subpackages are imported on first use, so ``import tfsr`` stays cheap::

    import tfsr
    block = tfsr.layers.CollapsibleLinearBlock(16, kernel_size=3, expanded_filters=256)
"""

import importlib
import os

# tfmot sets this as a side effect of its import; set it first so that every part of tfsr,
# and user code that imports tensorflow after us, agrees on Keras 2 (tf_keras).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

# The library's modules. The command lines (``python -m tfsr.evaluate``, ``tfsr.upscale``,
# ``tfsr.lut.transfer``) define absl flags when imported, so they are not among them.
_SUBMODULES = (
    "data",
    "evaluation",
    "inference",
    "layers",
    "lut",
    "metrics",
    "models",
    "ops",
    "quantization",
    "testing",
    "training",
    "upscaling",
)


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tfsr' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
