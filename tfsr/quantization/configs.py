"""tfmot QuantizeConfigs for the layers of tfsr's inference models (int8, TFLite semantics).

Every config keeps its quantizer objects as attributes, so that :mod:`tfsr.quantization.qat` can
find them in a quantized model and initialise their ranges from data before training (tfmot's
moving-average ranges start at +-6 and would need thousands of steps to settle).

What each layer gets (matching what the TFLite int8 kernels compute):

- ``Conv2D``: kernel fake-quantised per output channel, symmetric, narrow range ([-127, 127]);
  output range learnt (skipped when a ReLU follows: TFLite fuses the two into one CONV_2D).
- ``CollapsibleLinearBlock``: the same, through its ``kernel_quantizer`` hook, since its kernel is
  computed from other variables: ``get_weights_and_quantizers`` returns ``[]``.
- ``PReLU``: output range learnt (the converter quantises the slopes: see the config).
- ``ReLU``, ``Add``: output range learnt. A clip ``ReLU(max_value=m)`` becomes an identity whose
  output range is fixed to [0, m]: the int8 rounding clips by itself, and TFLite would otherwise
  run the RELU / MINIMUM pair in float.
- ``PixelShuffle``: nothing (DEPTH_TO_SPACE keeps its input's scale and zero point).

Reference:
    Jacob et al., "Quantization and Training of Neural Networks for Efficient
    Integer-Arithmetic-Only Inference", CVPR 2018 (arXiv 1712.05877).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

_quantizers = tfmot.quantization.keras.quantizers
_QuantizeConfig = tfmot.quantization.keras.QuantizeConfig

NUM_BITS = 8


@keras.saving.register_keras_serializable(package="tfsr")
class RangeQuantizer(_quantizers.MovingAverageQuantizer):
    """Asymmetric per-tensor activation fake-quant whose range follows an EMA of batch ranges.

    tfmot's ``MovingAverageQuantizer`` with the EMA decay as an attribute: :func:`tfsr.
    quantization.qat.calibrate_ranges` lowers it to set the ranges from calibration batches.

    Args:
        ema_decay: decay of the moving average of the batch min / max (training only).
    """

    def __init__(self, ema_decay: float = 0.999):
        super().__init__(num_bits=NUM_BITS, per_axis=False, symmetric=False, narrow_range=False)
        self.ema_decay = float(ema_decay)
        # Run-time switches for calibration, not part of the config: ``observer(inputs, weights)``
        # sees every input (eager calibration passes); ``frozen`` stops the EMA in training.
        self.observer = None
        self.frozen = False

    def __call__(self, inputs, training, weights, **kwargs):
        from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

        if self.observer is not None:
            self.observer(inputs, weights)
        return quant_ops.MovingAvgQuantize(
            inputs,
            weights["min_var"],
            weights["max_var"],
            ema_decay=self.ema_decay,
            is_training=training and not self.frozen,
            num_bits=self.num_bits,
            per_channel=False,
            symmetric=False,
            narrow_range=False,
        )

    def get_config(self):
        return {"ema_decay": self.ema_decay}

    def __eq__(self, other):
        return isinstance(other, RangeQuantizer) and self.ema_decay == other.ema_decay


def kernel_weight_quantizer() -> _quantizers.LastValueQuantizer:
    """Per-output-channel (last axis), symmetric, narrow-range 8-bit kernel quantizer."""
    return _quantizers.LastValueQuantizer(
        num_bits=NUM_BITS, per_axis=True, symmetric=True, narrow_range=True
    )


@keras.saving.register_keras_serializable(package="tfsr")
def fake_quant_kernel_per_channel(kernel: tf.Tensor) -> tf.Tensor:
    """Fake-quantises a conv kernel ``(k, k, C_in, C_out)`` per output channel as TFLite does.

    Symmetric, narrow range: channel ``o`` is rounded to multiples of ``max|kernel[..., o]| / 127``.
    The ranges are those of the current kernel (no state), gradients pass straight through.
    Used as ``CollapsibleLinearBlock.kernel_quantizer``.
    """
    bound = tf.reduce_max(tf.abs(kernel), axis=[0, 1, 2])  # (C_out,)
    bound = tf.stop_gradient(tf.maximum(bound, 1e-8))
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(
        kernel, -bound, bound, num_bits=NUM_BITS, narrow_range=True
    )


class OutputRangeConfig(_QuantizeConfig):
    """Base of tfsr's configs: no weights, no activations, an optional output range.

    Args:
        quantize_output: fake-quantise the layer's output.
        output_range: a fixed ``(low, high)`` output range (a clip), kept during training; None
            learns it.
    """

    def __init__(self, quantize_output: bool = True, output_range=None):
        self.quantize_output = bool(quantize_output)
        self.output_range = None if output_range is None else tuple(map(float, output_range))
        if self.output_range is not None and not self.output_range[0] < self.output_range[1]:
            raise ValueError(
                f"output_range must be (low, high) with low < high, got {output_range}"
            )
        decay = 1.0 if self.output_range is not None else 0.999  # 1.0: never updated
        self.output_quantizer = RangeQuantizer(decay) if self.quantize_output else None

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        if quantize_weights:
            raise ValueError(
                f"{type(self).__name__} expects no weights, got {len(quantize_weights)}"
            )

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [self.output_quantizer] if self.quantize_output else []

    def range_quantizers(self) -> list[RangeQuantizer]:
        """The learnt activation-range quantizers of this config (for calibration)."""
        return [self.output_quantizer] if self.quantize_output and not self.output_range else []

    def get_config(self):
        return {"quantize_output": self.quantize_output, "output_range": self.output_range}


@keras.saving.register_keras_serializable(package="tfsr")
class OutputQuantizeConfig(OutputRangeConfig):
    """For layers without weights whose output TFLite requantises: ReLU, Add, clipping ReLU."""


@keras.saving.register_keras_serializable(package="tfsr")
class NoOpQuantizeConfig(OutputRangeConfig):
    """For layers that only move values (PixelShuffle): nothing is quantised."""

    def __init__(self, **kwargs):
        super().__init__(quantize_output=False)

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="tfsr")
class Conv2DQuantizeConfig(OutputRangeConfig):
    """``Conv2D``: per-channel symmetric kernel, output range unless a ReLU follows.

    Args:
        quantize_output: False when the next layer is a plain ReLU (fused by TFLite).
    """

    def __init__(self, quantize_output: bool = True, output_range=None):
        super().__init__(quantize_output, output_range)
        self.kernel_quantizer = kernel_weight_quantizer()

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, self.kernel_quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        if len(quantize_weights) != 1:
            raise ValueError(f"Conv2DQuantizeConfig expects 1 weight, got {len(quantize_weights)}")
        layer.kernel = quantize_weights[0]


@keras.saving.register_keras_serializable(package="tfsr")
class PReLUQuantizeConfig(OutputRangeConfig):
    """``PReLU``: output range learnt; the slopes are left to the converter.

    Fake-quantising the slopes in the graph makes the converter keep PRELU in float (between a
    DEQUANTIZE and a QUANTIZE); left alone, it quantises them itself into an int8 PRELU.
    """


@keras.saving.register_keras_serializable(package="tfsr")
class CollapsibleBlockQuantizeConfig(OutputRangeConfig):
    """``CollapsibleLinearBlock`` (QAT in collapsed-training form).

    The kernel the block convolves with is computed from the expanded variables, and tfmot's
    weight quantizers only wrap variables; so the kernel fake-quant goes through the block's
    ``kernel_quantizer`` hook (:func:`fake_quant_kernel_per_channel`) and
    ``get_weights_and_quantizers`` returns ``[]``. The output range is learnt.
    """

    def get_weights_and_quantizers(self, layer):
        if not layer.collapsed_training:
            raise ValueError(
                f"{layer.name}: QAT of a CollapsibleLinearBlock needs collapsed_training=True"
            )
        layer.kernel_quantizer = fake_quant_kernel_per_channel
        return []


def quantize_scope():
    """A custom-object scope for loading quantized models that use these configs (.h5)."""
    from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock
    from tfsr.layers.pixel_shuffle import PixelShuffle

    return tfmot.quantization.keras.quantize_scope(
        {
            "RangeQuantizer": RangeQuantizer,
            "OutputQuantizeConfig": OutputQuantizeConfig,
            "NoOpQuantizeConfig": NoOpQuantizeConfig,
            "Conv2DQuantizeConfig": Conv2DQuantizeConfig,
            "PReLUQuantizeConfig": PReLUQuantizeConfig,
            "CollapsibleBlockQuantizeConfig": CollapsibleBlockQuantizeConfig,
            "PixelShuffle": PixelShuffle,
            "CollapsibleLinearBlock": CollapsibleLinearBlock,
            "fake_quant_kernel_per_channel": fake_quant_kernel_per_channel,
        }
    )
