"""The reconstructed-convolution (RC) module of RC-LUT: one 1-D mapping per window position."""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least
from tfsr.lut.patterns import LEVELS, pick_taps


def window_taps(levels: tf.Tensor, window: int) -> tf.Tensor:
    """The ``window**2`` pixels around every pixel: (N, H, W, 1) -> (N, H, W, window**2).

    Row-major window order, centred, symmetric padding.
    """
    r = window // 2
    padded = tf.pad(levels, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
    offsets = [(i, j) for i in range(window) for j in range(window)]
    return pick_taps(padded, offsets, window)


@functools.cache
def rc_thresholds() -> np.ndarray:
    """(255,) float32, increasing: an RC mean ``m`` quantises to level ``#{j: thresholds[j] <= m}``.

    Threshold j is the smallest float32 ``m`` with ``round((tanh(m) + 1) * 255 / 2) >= j + 1``
    (tanh in exact arithmetic, rounding half away from zero), i.e. ``atanh((j + 0.5) / 127.5 - 1)``
    rounded up to float32. Counting thresholds gives every implementation (TensorFlow, the
    compiled op ``Tfsr>LutStage``) the same level without depending on how a library rounds tanh.
    """
    half = LEVELS / 2.0
    exact = np.arctanh((np.arange(1, 256, dtype=np.float64) - 0.5) / half - 1.0)
    out = exact.astype(np.float32)
    low = out.astype(np.float64) < exact
    out[low] = np.nextafter(out[low], np.float32(np.inf))
    return out


@tf.custom_gradient
def rc_mean(mapped: tf.Tensor) -> tf.Tensor:
    """(N, H, W, K) -> (N, H, W, 1): the mean, summed in window order (reproducible in C++).

    Its gradient is the mean's, ``dy / K`` at every position, given directly: differentiating the
    K slices would pad each one back to full width (K^2 work, most of an RC-LUT training step).
    """
    k = mapped.shape[-1]
    parts = tf.unstack(mapped, axis=-1)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    total = tf.expand_dims(total, -1)

    def grad(dy):
        return tf.broadcast_to(dy / float(k), tf.shape(mapped))

    return total / float(k), grad


def rc_quantize(mean: tf.Tensor) -> tf.Tensor:
    """RC means -> integer levels in [0, 255] (float32) by counting :func:`rc_thresholds`."""
    flat = tf.reshape(mean, [-1])
    levels = tf.searchsorted(tf.constant(rc_thresholds()), flat, side="right", out_type=tf.int32)
    return tf.reshape(tf.cast(levels, tf.float32), tf.shape(mean))


def rc_combine(mapped: tf.Tensor) -> tf.Tensor:
    """(N, H, W, K) per-position mappings -> (N, H, W, 1) integer levels in [0, 255].

    Mean over the K positions (:func:`rc_mean`), tanh, then ``round((t + 1) / 2 * 255)``
    (:func:`rc_quantize`, exact thresholds), with the gradient of ``(t + 1) / 2 * 255``
    (straight-through rounding).
    """
    mean = rc_mean(mapped)
    smooth = (tf.tanh(mean) + 1.0) * (LEVELS / 2.0)
    return smooth + tf.stop_gradient(rc_quantize(mean) - smooth)


def rc_read(
    tables: tf.Tensor, levels: tf.Tensor, window: int, slopes: tf.Tensor | None = None
) -> tf.Tensor:
    """An RC module in table form: (N, H, W, 1) levels -> (N, H, W, 1) integer levels.

    Reads every window position's level from its row of ``tables`` (K, 256), then
    :func:`rc_combine`. Levels are truncated to integers and clipped to [0, 255]: a level outside
    (or NaN, whose cast is INT_MIN) must not read another position's row or fail the gather.
    With ``slopes`` (K, 256), the derivative of each row, the levels get the gradient
    ``slope * upstream`` (zero in the forward pass, and NaN levels stay NaN); without, none.
    """
    k = window**2
    taps = window_taps(levels, window)  # (N, H, W, K)
    index = tf.clip_by_value(tf.cast(taps, tf.int32), 0, 255)
    index += tf.range(k, dtype=tf.int32) * 256  # row of the flat (K, 256) table
    mapped = tf.gather(tf.reshape(tables, [-1]), index)
    if slopes is not None:
        mapped += (taps - tf.stop_gradient(taps)) * tf.gather(tf.reshape(slopes, [-1]), index)
    return rc_combine(mapped)


def table_slopes(tables: tf.Tensor) -> tf.Tensor:
    """(K, 256) -> (K, 256): each row's slope along its levels by finite differences (central
    inside, one-sided at levels 0 and 255), for :func:`rc_read` on tables that have no MLP
    behind them (LUT fine-tuning)."""
    first = tables[:, 1:2] - tables[:, :1]
    inner = (tables[:, 2:] - tables[:, :-2]) / 2.0
    last = tables[:, -1:] - tables[:, -2:-1]
    return tf.concat([first, inner, last], axis=1)


@keras.saving.register_keras_serializable(package="tfsr")
class RcModule(keras.layers.Layer):
    """RC module: every position of a ``window x window`` neighbourhood has its own 1-D mapping.

    Position k maps its pixel ``v`` (an 8-bit level) through a small MLP
    ``1 -> filters -> 1`` (ReLU): ``m_k(v) = w2_k . relu(w1_k * v / 255 + b1_k) + b2_k``. The
    ``window**2`` outputs are averaged, squashed by tanh and quantised to levels 0..255, which index
    the 4-D LUT branch that follows. Each ``m_k`` sees one 8-bit input, so it transfers exactly
    to a 256-entry 1-D table (:meth:`mapping_table`).

    Args:
        window: odd window side (RC-LUT: 5 for S, 7 for D, 3 for Y).
        filters: hidden width of each 1-D MLP.

    Call arguments:
        levels: (N, H, W, 1) integer levels in [0, 255] (float32); other values are truncated
            to an integer and clipped to that range.

    Input shape: (N, H, W, 1). Output shape: (N, H, W, 1), integer levels in [0, 255].

    Example:
        >>> rc = RcModule(window=3, filters=8)
        >>> rc(tf.fill((1, 6, 6, 1), 128.0)).shape
        TensorShape([1, 6, 6, 1])

    Reference: Liu et al., "Reconstructed Convolution Module Based Look-Up Tables for Efficient
    Image Super-Resolution", ICCV 2023.
    """

    def __init__(self, window: int = 5, filters: int = 16, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(window, int) or window < 1 or window % 2 == 0:
            raise ValueError(f"window must be a positive odd int, got {window!r}")
        int_at_least("filters", filters)
        self.window = window
        self.filters = filters

    def build(self, input_shape):
        k = self.window**2
        self.w1 = self.add_weight(
            "w1", (k, self.filters), initializer=keras.initializers.RandomNormal(0.0, 1.0)
        )
        # Every unit's kink -b1 / w1 at a uniform point of the input range [0, 1], so that every
        # unit is active on part of it (rising or falling with the sign of w1). An independent
        # b1 in [-1, 0) left about 70% of the units dead at every input, for good (no gradient).
        kinks = keras.initializers.RandomUniform(0.0, 1.0)
        self.b1 = self.add_weight(
            "b1",
            (k, self.filters),
            initializer=lambda shape, dtype=None: -tf.convert_to_tensor(self.w1) * kinks(shape),
        )
        self.w2 = self.add_weight(
            "w2", (k, self.filters), initializer=keras.initializers.RandomNormal(0.0, 0.3)
        )
        self.b2 = self.add_weight("b2", (k,), initializer="zeros")
        super().build(input_shape)

    def mapping(self, taps: tf.Tensor) -> tf.Tensor:
        """(..., K) levels -> (..., K): every position's 1-D mapping."""
        v = tf.expand_dims(taps / LEVELS, -1)  # (..., K, 1)
        hidden = tf.nn.relu(v * self.w1 + self.b1)  # (..., K, filters)
        return tf.reduce_sum(hidden * self.w2, axis=-1) + self.b2

    def mapping_table(self) -> tf.Tensor:
        """(K, 256) float32: ``m_k(v)`` for every position k and level v (the RC 1-D LUTs)."""
        if not self.built:
            self.build((None, None, None, 1))
        k = self.window**2
        levels = tf.tile(tf.range(256, dtype=tf.float32)[:, None], [1, k])  # (256, K)
        return tf.transpose(self.mapping(levels))

    def slope_table(self) -> tf.Tensor:
        """(K, 256) float32: ``dm_k/dv`` at every level (ReLU's derivative 0 at its kink, as
        TensorFlow's gradient takes it)."""
        if not self.built:
            self.build((None, None, None, 1))
        v = tf.range(256, dtype=tf.float32)[:, None, None] / LEVELS  # (256, 1, 1)
        active = tf.cast(v * self.w1 + self.b1 > 0.0, tf.float32)  # (256, K, filters)
        slope = tf.reduce_sum(active * (self.w1 * self.w2), axis=-1) / LEVELS  # (256, K)
        return tf.transpose(slope)

    def call(self, levels):
        # The taps are integer levels, so every m_k is read from its 256-entry table, computed
        # once per call: the same values and gradients as running the MLP at every pixel (whose
        # (N, H, W, K, filters) hidden layer made RC modules ~85% of a training step). The
        # slopes carry the gradient to the levels (the previous stage's straight-through one).
        slopes = tf.stop_gradient(self.slope_table())
        return rc_read(self.mapping_table(), levels, self.window, slopes)

    def get_config(self):
        config = super().get_config()
        config.update(window=self.window, filters=self.filters)
        return config
