"""Quantisation of tfsr models: QAT with tfmot on tf_keras and TFLite export (``export.py``).

- :mod:`tfsr.quantization.configs`: tfmot QuantizeConfigs for tfsr's layers.
- :mod:`tfsr.quantization.qat`: ``quantize_model``, ``calibrate_ranges``, ``train_qat``.
- :mod:`tfsr.quantization.convert`: ``convert`` to TFLite (``convert_calibrated`` and
  ``set_input_size`` for families tfmot cannot quantise), op checks, atomic writes.
- :mod:`tfsr.quantization.export`: ``export_model`` (load, quantise, convert, verify) and the
  registry of export handlers per model family (sesr, sesr_dysample, meta_sesr at one scale).
"""

from tfsr.quantization.convert import non_builtin_ops, tflite_ops  # noqa: F401
from tfsr.quantization.export import (  # noqa: F401
    ExportHandler,
    export_model,
    register_export_handler,
)
from tfsr.quantization.qat import calibrate_ranges, quantize_model, train_qat  # noqa: F401
