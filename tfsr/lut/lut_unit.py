"""The 4-pixel unit of LUT-convertible networks (SR-LUT, MuLUT, RC-LUT)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least
from tfsr.lut.patterns import LEVELS, UNIT_RANGE, round_unit_values


@keras.saving.register_keras_serializable(package="tfsr")
class LutUnit(keras.layers.Layer):
    """An MLP of four 8-bit inputs, small enough in input to be stored as a 4-D look-up table.

    ``unit(a, b, c, d) = 127 * tanh(MLP([a, b, c, d] / 255))``: ``depth`` dense layers of
    ``filters`` units with ReLU, then a dense layer to ``scale**2`` outputs (one per sub-pixel of
    the ``scale x scale`` output block, in depth-to-space order). Outputs are in 8-bit levels,
    in [-127, 127], which is what the int8 table stores after transfer (:meth:`table`).

    With ``dense=True`` the hidden layers are densely connected (MuLUT's units): every hidden
    layer after the first, and the output layer, reads the concatenation of all earlier hidden
    layers' outputs. The table the unit becomes has the same size either way.

    Args:
        scale: upscaling factor of the unit (``scale**2`` outputs).
        filters: hidden width.
        depth: number of hidden layers.
        dense: densely connected hidden layers (see above).

    Call arguments:
        index: (..., 4) integer levels in [0, 255] (float32): the pattern's 4 pixels.

    Input shape: (..., 4). Output shape: (..., scale**2) in [-127, 127].

    Example:
        >>> unit = LutUnit(scale=2, filters=8, depth=2)
        >>> unit(tf.zeros((1, 3, 3, 4))).shape
        TensorShape([1, 3, 3, 4])

    Reference: Jo and Kim, "Practical Single-Image Super-Resolution Using Look-Up Table",
    CVPR 2021; Li et al., "MuLUT", ECCV 2022.
    """

    def __init__(
        self, scale: int = 1, filters: int = 64, depth: int = 4, dense: bool = False, **kwargs
    ):
        super().__init__(**kwargs)
        for name, value in (("scale", scale), ("filters", filters), ("depth", depth)):
            int_at_least(name, value)
        self.scale = scale
        self.filters = filters
        self.depth = depth
        self.dense = bool(dense)
        policy = dict(dtype=self.dtype_policy)  # the unit's own policy, not the global one
        self.hidden = [
            keras.layers.Dense(filters, activation="relu", name=f"hidden_{i}", **policy)
            for i in range(depth)
        ]
        self.out = keras.layers.Dense(scale * scale, name="out", **policy)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)[:-1].concatenate([4])
        for i, layer in enumerate(self.hidden):
            layer.build(shape)
            shape = shape[:-1].concatenate([self.filters * (i + 1 if self.dense else 1)])
        self.out.build(shape)
        super().build(input_shape)

    def call(self, index):
        x = index / LEVELS
        for i, layer in enumerate(self.hidden):
            h = layer(x)
            x = tf.concat([x, h], axis=-1) if self.dense and i > 0 else h
        return UNIT_RANGE * tf.tanh(self.out(x))

    def table(self, interval: int = 16, batch: int = 4096) -> tf.Tensor:
        """The unit sampled on the LUT grid: (L**4, scale**2) int8, rounded (half away from 0).

        Sample point i of an input is level ``i * interval``, the last one 256 (not 255): the
        interpolation weighs vertex i as level ``i * interval``, so that an input of 255 lies
        15/16 of the way to it; sampling the net at 255 there (SR-LUT's choice) would stretch
        the top cell. Rows in the order of :func:`tfsr.ops.lut_interp_4d`.
        """
        from tfsr.ops.lut_interp import lut_side

        side = lut_side(interval)
        points = tf.range(side, dtype=tf.float32) * interval
        grid = tf.stack(tf.meshgrid(points, points, points, points, indexing="ij"), axis=-1)
        grid = tf.reshape(grid, (-1, 4))
        rows = []
        for start in range(0, side**4, batch):
            rows.append(self(grid[start : start + batch]))
        return tf.cast(round_unit_values(tf.concat(rows, axis=0)), tf.int8)

    def get_config(self):
        config = super().get_config()
        config.update(scale=self.scale, filters=self.filters, depth=self.depth, dense=self.dense)
        return config
