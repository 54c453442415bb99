"""Pixel shuffle (depth to space) as a real, serialisable layer."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least


@keras.saving.register_keras_serializable(package="tfsr")
class PixelShuffle(keras.layers.Layer):
    """Rearranges ``block_size**2`` groups of channels into ``block_size x block_size`` pixels.

    A thin layer over ``tf.nn.depth_to_space`` (NHWC). Output pixel
    ``(block_size * h + dy, block_size * w + dx)``, channel ``c`` comes from input pixel ``(h, w)``,
    channel ``(dy * block_size + dx) * C_out + c`` where ``C_out = C_in / block_size**2``.

    A layer rather than a ``Lambda`` so that it has a config, survives ``clone_model`` (and thus
    tfmot's ``quantize_apply``), and converts to one TFLite ``DEPTH_TO_SPACE``.

    Args:
        block_size: upscaling factor, an integer >= 2.
        **kwargs: standard layer arguments (name, dtype).

    Call arguments:
        inputs: a 4-D tensor ``(N, H, W, C_in)``, ``C_in`` divisible by ``block_size**2``.

    Input shape:
        ``(N, H, W, C_in)``.

    Output shape:
        ``(N, H * block_size, W * block_size, C_in / block_size**2)``.

    Example:

    >>> shuffle = PixelShuffle(2)
    >>> shuffle(tf.zeros((1, 3, 5, 8))).shape
    TensorShape([1, 6, 10, 2])

    Reference:
        Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient
        Sub-Pixel Convolutional Neural Network", CVPR 2016 (arXiv 1609.05158).
    """

    def __init__(self, block_size: int, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int_at_least("block_size", block_size, 2)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = tf.TensorShape(input_shape)[-1]
        if channels is None or channels % (self.block_size**2):
            raise ValueError(
                f"{self.name}: input channels must be a known multiple of block_size**2 = "
                f"{self.block_size**2}, got input shape {tf.TensorShape(input_shape)}"
            )
        super().build(input_shape)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = tf.TensorShape(input_shape).as_list()
        b = self.block_size
        return tf.TensorShape(
            [n, None if h is None else h * b, None if w is None else w * b, c // (b * b)]
        )

    def get_config(self):
        config = super().get_config()
        config.update(block_size=self.block_size)
        return config
