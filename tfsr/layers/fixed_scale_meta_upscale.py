"""FixedScaleMetaUpscale: a meta-upscale frozen at one scale, as a strided conv + phase shuffle."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least
from tfsr.layers.pos2weight import SCALE_DECIMALS, phase_positions, snap_fraction
from tfsr.ops.meta_upscale import meta_upscale_phases

# Largest phase period (numerator P of the scale P / Q) and step Q per axis: the kernel has
# P_v * P_h * C_out output channels and (k + Q - 1)^2 taps.
MAX_PERIOD = 64


def scale_fraction(scale) -> tuple[int, int]:
    """``(P, Q)``, the phase period and source step of a meta-upscale scale ``P / Q``.

    The scale is snapped as :class:`~tfsr.layers.MetaUpscale` does (a short fraction, else
    ``SCALE_DECIMALS`` decimals: :func:`tfsr.layers.pos2weight.snap_fraction`), and the period is checked against the op's own rule (``meta_upscale_phases``).

    Raises:
        ValueError: a scale that is not a positive finite number, or whose P or Q exceeds
            ``MAX_PERIOD`` (such as 3.14159: 314159 phases).

    Example:
        >>> scale_fraction(2.5), scale_fraction(2), scale_fraction(1.3)
        ((5, 2), (2, 1), (13, 10))
    """
    try:
        value = float(scale)
    except (TypeError, ValueError) as error:
        raise ValueError(f"scale must be a positive number, got {scale!r}") from error
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"scale must be a positive, finite number, got {scale!r}")
    fraction = snap_fraction(value)
    if fraction == 0:
        raise ValueError(f"scale must be at least {10.0**-SCALE_DECIMALS}, got {scale!r}")
    period, step = fraction.numerator, fraction.denominator
    if period > MAX_PERIOD or step > MAX_PERIOD:
        raise ValueError(
            f"scale {value:g} = {period}/{step} has {period} phases with a source step of {step}; "
            f"a fixed-scale meta-upscale supports at most {MAX_PERIOD} of each (use a scale with "
            "a short fraction, such as 2.5 or 3.3)"
        )
    rule = meta_upscale_phases(float(fraction), step).period
    if rule != period:
        raise ValueError(f"scale {value:g}: the op's phase period is {rule}, expected {period}")
    return period, step


@keras.saving.register_keras_serializable(package="tfsr")
class FixedScaleMetaUpscale(keras.layers.Layer):
    """A :class:`~tfsr.layers.MetaUpscale` at one fixed scale, as a strided conv + phase shuffle.

    With the scale ``r = P / Q`` in lowest terms (on each axis), output row ``i = u P + p`` reads
    low-resolution rows around ``s(i) = u Q + d(p)``, ``d(p) = (p Q) // P``, with the filter of
    phase ``p``. So every phase pair is a convolution of stride ``(Q_v, Q_h)`` shifted by
    ``(d_v(p_v), d_h(p_h))``: one ``Conv2D`` of stride Q whose ``(k + d_max)``-tap kernel holds the
    ``P_v * P_h`` phase filters at their shifts (zeros elsewhere), followed by a shuffle of the
    ``P_v x P_h`` phase channels into pixels (for integer scales: a conv and a pixel shuffle) and
    a crop to ``floor(r H)`` x ``floor(r W)``. It computes what ``tfsr.ops.meta_upscale`` computes
    with the phase table frozen in, for any input size, using TFLite builtins only (PAD, CONV_2D,
    RESHAPE, TRANSPOSE, STRIDED_SLICE): the export form of a Meta-SR model at one scale
    (:func:`tfsr.models.meta_sesr.fixed_scale_meta_sesr`).

    The kernel is a non-trainable weight, set from a phase table with :meth:`set_phase_filters`
    or from a trained layer with :meth:`from_meta_upscale`.

    Args:
        filters: output channels C_out.
        kernel_size: odd filter size k of the phase filters.
        scale_v: vertical scale (snapped to 5 decimals; at most ``MAX_PERIOD`` phases).
        scale_h: horizontal scale; default ``scale_v``.
        **kwargs: standard layer arguments (name, dtype).

    Call arguments:
        inputs: features (N, H, W, C_in).

    Input shape:
        ``(N, H, W, C_in)``.

    Output shape:
        ``(N, floor(scale_v * H), floor(scale_h * W), filters)``.

    Example:

    >>> layer = FixedScaleMetaUpscale(filters=1, scale_v=2.5, scale_h=1.5)
    >>> layer(tf.zeros((1, 10, 10, 8))).shape
    TensorShape([1, 25, 15, 1])

    Reference:
        Hu et al., "Meta-SR: A Magnification-Arbitrary Network for Super-Resolution", CVPR 2019
        (arXiv 1903.00875).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int = 3,
        scale_v: float = 2.0,
        scale_h: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = int_at_least("filters", filters)
        self.kernel_size = int_at_least("kernel_size", kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size!r}")
        self.scale_v = float(scale_v)
        self.scale_h = float(scale_v if scale_h is None else scale_h)
        self.period_v, self.step_v = scale_fraction(self.scale_v)
        self.period_h, self.step_h = scale_fraction(self.scale_h)
        # d(p) = (p Q) // P: the source offset of each phase; the kernel spans k + max d taps.
        self.shifts_v = [(p * self.step_v) // self.period_v for p in range(self.period_v)]
        self.shifts_h = [(p * self.step_h) // self.period_h for p in range(self.period_h)]
        self.kernel = None

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 4 or input_shape[-1] is None:
            raise ValueError(
                f"{self.name}: features must be (N, H, W, C) with known C, got shape {input_shape}"
            )
        k = self.kernel_size
        shape = (
            k + self.shifts_v[-1],
            k + self.shifts_h[-1],
            int(input_shape[-1]),
            self.period_v * self.period_h * self.filters,
        )
        self.kernel = self.add_weight(
            "kernel", shape=shape, initializer="zeros", trainable=False, dtype=self.dtype
        )
        super().build(input_shape)

    def phase_kernel(self, phase_filters) -> np.ndarray:
        """The conv kernel holding a phase table (P_v, P_h, k, k, C_in, C_out) at its shifts.

        Raises:
            ValueError: a table of another shape.
        """
        phase_filters = np.asarray(phase_filters)
        k, c_in, c_out = self.kernel_size, self.kernel.shape[2], self.filters
        expected = (self.period_v, self.period_h, k, k, c_in, c_out)
        if phase_filters.shape != expected:
            raise ValueError(
                f"{self.name}: phase filters must have shape {expected} (P_v, P_h, k, k, C_in, "
                f"C_out) for scale {self.scale_v:g} x {self.scale_h:g}, got {phase_filters.shape}"
            )
        kernel = np.zeros(self.kernel.shape, np.float64)
        for p_v, d_v in enumerate(self.shifts_v):
            for p_h, d_h in enumerate(self.shifts_h):
                channel = (p_v * self.period_h + p_h) * c_out
                kernel[d_v : d_v + k, d_h : d_h + k, :, channel : channel + c_out] = phase_filters[
                    p_v, p_h
                ]
        return kernel

    def set_phase_filters(self, phase_filters) -> None:
        """Sets the kernel from a phase table (P_v, P_h, k, k, C_in, C_out) (builds if needed)."""
        if self.kernel is None:
            raise ValueError(f"{self.name}: build the layer (call it once) before setting filters")
        self.kernel.assign(
            self.phase_kernel(phase_filters).astype(self.kernel.dtype.as_numpy_dtype)
        )

    @classmethod
    def from_meta_upscale(cls, layer, scale_v, scale_h=None, name=None) -> FixedScaleMetaUpscale:
        """A built layer with the filters that the trained ``layer`` predicts at this scale.

        Args:
            layer: a built :class:`~tfsr.layers.MetaUpscale`.
            scale_v, scale_h: the scale (``scale_h`` defaults to ``scale_v``).
            name: layer name; default ``layer.name``.
        """
        scale_h = scale_v if scale_h is None else scale_h
        if layer.pos2weight is None:
            raise ValueError(f"{layer.name}: the MetaUpscale layer is not built")
        fixed = cls(
            layer.filters,
            layer.kernel_size,
            scale_v,
            scale_h,
            name=name or layer.name,
            dtype=layer.dtype_policy,
        )
        fixed.build((None, None, None, layer.pos2weight.in_channels))
        # Positions for an input of Q rows / columns: exactly P phases on each axis.
        positions = phase_positions(fixed.scale_v, fixed.scale_h, fixed.step_v, fixed.step_h)
        fixed.set_phase_filters(layer.pos2weight(positions).numpy())
        return fixed

    def call(self, inputs):
        half = self.kernel_size // 2
        pv, ph, qv, qh = self.period_v, self.period_h, self.step_v, self.step_h
        # Zero padding: half a filter before, enough after for the last phase's shifted taps.
        pad = [[0, 0], [half, half + qv - 1], [half, half + qh - 1], [0, 0]]
        x = tf.pad(inputs, pad)
        kernel = tf.cast(self.kernel, inputs.dtype)
        y = tf.nn.conv2d(x, kernel, strides=[1, qv, qh, 1], padding="VALID")
        # (N, U, T, P_v * P_h * C_out) -> (N, U * P_v, T * P_h, C_out)
        shape = tf.shape(y)
        n, u, t = shape[0], shape[1], shape[2]
        y = tf.reshape(y, tf.stack([n * u, t, pv, ph * self.filters]))
        y = tf.transpose(y, [0, 2, 1, 3])  # (N * U, P_v, T, P_h * C_out)
        y = tf.reshape(y, tf.stack([n, u * pv, t * ph, self.filters]))
        in_shape = tf.shape(inputs)
        out_h = (in_shape[1] * pv) // qv  # floor(r H): exact for r = P / Q
        out_w = (in_shape[2] * ph) // qh
        return y[:, :out_h, :out_w, :]

    def compute_output_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        h, w = input_shape[1], input_shape[2]
        out_h = None if h is None else (h * self.period_v) // self.step_v
        out_w = None if w is None else (w * self.period_h) // self.step_h
        return tf.TensorShape([input_shape[0], out_h, out_w, self.filters])

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            scale_v=self.scale_v,
            scale_h=self.scale_h,
        )
        return config
