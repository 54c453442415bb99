"""Pos2Weight: the Meta-SR weight-prediction network, one filter per phase pair."""

from __future__ import annotations

import math
from fractions import Fraction

import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least
from tfsr.ops.meta_upscale import meta_upscale_phases

# Scales are snapped before the phase rule sees them, so that a float32 2.3 is the rational
# 23 / 10 again and a float 4/3 is 4 / 3 (float32 cannot tell closer scales apart anyway at
# r <= 100): to the fraction p / q with q <= SHORT_DENOMINATOR within SNAP_TOLERANCE (relative)
# where there is one (distinct such fractions lie at least 1e-4 apart), else to SCALE_DECIMALS
# decimals.
SHORT_DENOMINATOR = 100
SNAP_TOLERANCE = 1e-6
SCALE_DECIMALS = 5


def snap_scale(scale) -> tf.Tensor:
    """``scale`` as float64, snapped as :func:`snap_fraction` does (any shape)."""
    s = tf.cast(scale, tf.float64)
    q = tf.range(1, SHORT_DENOMINATOR + 1, dtype=tf.float64)
    candidates = tf.round(s[..., None] * q) / q
    distance = tf.abs(candidates - s[..., None])
    close = distance <= SNAP_TOLERANCE * tf.abs(s[..., None])
    # The nearest, as Fraction.limit_denominator takes (above r = 100 or so, several distinct
    # fractions can be close).
    nearest = tf.argmin(distance, axis=-1)
    short = tf.gather(candidates, nearest, axis=-1, batch_dims=len(s.shape))
    factor = 10.0**SCALE_DECIMALS
    return tf.where(tf.reduce_any(close, -1), short, tf.round(s * factor) / factor)


def snap_fraction(scale: float) -> Fraction:
    """The rational a scale stands for: within ``SNAP_TOLERANCE`` of a fraction p / q with
    q <= ``SHORT_DENOMINATOR``, that fraction (4/3 for 1.3333333, 23/10 for float32(2.3)); else
    the scale rounded to ``SCALE_DECIMALS`` decimals (1.33333 is 133333/100000).

    Example:
        >>> snap_fraction(4 / 3), snap_fraction(2.5), snap_fraction(1.33333)
        (Fraction(4, 3), Fraction(5, 2), Fraction(133333, 100000))
    """
    value = float(scale)
    short = Fraction(value).limit_denominator(SHORT_DENOMINATOR)
    if abs(float(short) - value) <= SNAP_TOLERANCE * abs(value):
        return short
    factor = 10**SCALE_DECIMALS
    return Fraction(round(value * factor), factor)


def phase_positions(scale_v, scale_h, in_height, in_width) -> tf.Tensor:
    """The Pos2Weight inputs of every phase pair of a meta-upscale.

    Row ``p_v``, column ``p_h`` holds ``(frac_v[p_v], frac_h[p_h], 1 / scale_v, 1 / scale_h)``,
    the fractional offsets of the two phases (``tfsr.ops.meta_upscale_phases``) and the inverse
    scales: Meta-SR's position vector, with separate vertical and horizontal scales.

    Args:
        scale_v, scale_h: the scales (numbers or scalar tensors; snapped with :func:`snap_scale`).
        in_height, in_width: the low-resolution size (ints or scalar tensors).

    Returns:
        float32 (P_v, P_h, 4), P the phase period of each axis.

    Example:
        >>> phase_positions(2.5, 2, 4, 4).shape
        TensorShape([5, 2, 4])
    """
    scale_v, scale_h = snap_scale(scale_v), snap_scale(scale_h)
    frac_v = meta_upscale_phases(scale_v, in_height).fractional_offset  # (P_v,) float64
    frac_h = meta_upscale_phases(scale_h, in_width).fractional_offset  # (P_h,)
    frac_v = tf.cast(frac_v, tf.float32)
    frac_h = tf.cast(frac_h, tf.float32)
    p_v, p_h = tf.shape(frac_v)[0], tf.shape(frac_h)[0]
    grid_v = tf.broadcast_to(frac_v[:, None], tf.stack([p_v, p_h]))
    grid_h = tf.broadcast_to(frac_h[None, :], tf.stack([p_v, p_h]))
    inv_v = tf.fill(tf.stack([p_v, p_h]), tf.cast(1.0 / scale_v, tf.float32))
    inv_h = tf.fill(tf.stack([p_v, p_h]), tf.cast(1.0 / scale_h, tf.float32))
    return tf.stack([grid_v, grid_h, inv_v, inv_h], axis=-1)  # (P_v, P_h, 4)


@keras.saving.register_keras_serializable(package="tfsr")
class Pos2Weight(keras.layers.Layer):
    """Predicts meta-upscale filters from position vectors (Meta-SR's weight prediction).

    A two-layer MLP, ``4 -> hidden_units -> k*k*C_in*C_out`` with ReLU in between, applied to each
    position vector ``(frac_v, frac_h, 1/r_v, 1/r_h)``; its output layer starts at zero and its
    result is scaled by ``1 / sqrt(k*k*C_in)`` (the fan-in of the filters: this keeps training
    at usual learning rates stable; a network whose filters blow up gets stuck at the clip).
    Meta-SR evaluates it once per output pixel; here it is fed only the distinct phase pairs
    (:func:`phase_positions`): for a scale p / q, p per axis, so for a short fraction (x2.5: 5)
    its cost and the size of the filters it returns do not depend on the output size (a long
    fraction, 1.234 = 617 / 500, has up to one phase per output row and column). The result is
    the phase table that ``tfsr.ops.meta_upscale`` takes.

    Args:
        kernel_size: odd filter size k.
        in_channels: C_in, the feature channels the filters read.
        out_channels: C_out, the channels they write.
        hidden_units: width of the hidden layer (256 in the paper).
        **kwargs: standard layer arguments (name, dtype).

    Call arguments:
        positions: float (..., 4) position vectors, typically (P_v, P_h, 4).

    Input shape:
        ``(..., 4)``.

    Output shape:
        ``(..., k, k, C_in, C_out)``.

    Example:

    >>> p2w = Pos2Weight(kernel_size=3, in_channels=16, out_channels=1)
    >>> p2w(phase_positions(2.5, 2.5, 10, 10)).shape
    TensorShape([5, 5, 3, 3, 16, 1])

    Reference:
        Hu et al., "Meta-SR: A Magnification-Arbitrary Network for Super-Resolution", CVPR 2019
        (arXiv 1903.00875).
    """

    def __init__(
        self,
        kernel_size: int,
        in_channels: int,
        out_channels: int,
        hidden_units: int = 256,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kernel_size = int_at_least("kernel_size", kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size!r}")
        self.in_channels = int_at_least("in_channels", in_channels)
        self.out_channels = int_at_least("out_channels", out_channels)
        self.hidden_units = int_at_least("hidden_units", hidden_units)
        self.hidden = keras.layers.Dense(
            self.hidden_units, activation="relu", name="hidden", dtype=self.dtype_policy
        )
        # Zero-initialised output: an untrained layer predicts zero filters (a model with a
        # residual path starts as that path), and gradients still reach this layer at once.
        self.filters = keras.layers.Dense(
            self.kernel_size**2 * self.in_channels * self.out_channels,
            kernel_initializer="zeros",
            name="filters",
            dtype=self.dtype_policy,
        )
        # Filters are scaled by 1 / sqrt(k*k*C_in), the fan-in of the convolution they stand for,
        # so that a step of Adam moves the upscaled output about as much as it moves a conv's.
        self.filter_scale = 1.0 / math.sqrt(self.kernel_size**2 * self.in_channels)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank is None or input_shape[-1] != 4:
            raise ValueError(
                f"{self.name}: positions must have a last axis of 4 (frac_v, frac_h, 1/r_v, "
                f"1/r_h), got shape {input_shape}"
            )
        self.hidden.build(input_shape)
        self.filters.build(input_shape[:-1].concatenate([self.hidden_units]))
        super().build(input_shape)

    def call(self, positions):
        flat = self.filters(self.hidden(positions)) * self.filter_scale  # (..., k*k*C_in*C_out)
        k = self.kernel_size
        shape = tf.concat(
            [tf.shape(flat)[:-1], [k, k, self.in_channels, self.out_channels]], axis=0
        )
        return tf.reshape(flat, shape)

    def compute_output_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        k = self.kernel_size
        return input_shape[:-1].concatenate([k, k, self.in_channels, self.out_channels])

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            hidden_units=self.hidden_units,
        )
        return config
