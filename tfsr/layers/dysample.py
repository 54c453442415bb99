"""DySample: upsampling by learned point sampling."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least
from tfsr.ops.grid_sample import offset_sample

_STYLES = ("lp", "pl")


@keras.saving.register_keras_serializable(package="tfsr")
class DySample(keras.layers.Layer):
    """Upsamples a feature map by an integer factor, sampling it at learned positions.

    Each output pixel samples the input bilinearly (border padding) at the position where plain
    bilinear upsampling would sample it, moved by an offset that a 1x1 convolution predicts from
    the features. The channels are split into ``groups`` groups of consecutive channels, each with
    its own offsets. The offset convolution starts near zero (normal init, std 0.001, zero bias),
    so an untrained layer is bilinear upsampling (exactly so with the offset kernel zeroed, as
    ``tf.image.resize(x, (scale * H, scale * W), "bilinear")``).

    The four variants of the paper:

    ============  =========  =================  ============================================
    name          ``style``  ``dynamic_scope``  offsets
    ============  =========  =================  ============================================
    DySample      "lp"       False              ``0.25 * conv(x)``, conv on the input
    DySample+     "lp"       True               ``0.5 * sigmoid(scope(x)) * conv(x)``
    DySample-S    "pl"       False              as DySample, convs on the pixel-shuffled input
    DySample-S+   "pl"       True               as DySample+, on the pixel-shuffled input
    ============  =========  =================  ============================================

    "lp" (linear, then pixel shuffle): a 1x1 conv maps the ``C`` input channels to
    ``2 * groups * scale**2`` offsets per input pixel, which ``depth_to_space`` spreads over the
    ``scale x scale`` output pixels. "pl" (pixel shuffle, then linear): the input is rearranged
    to ``(scale * H, scale * W, C / scale**2)`` and a 1x1 conv maps that to ``2 * groups`` offsets
    per output pixel; fewer parameters, needs ``C % scale**2 == 0``. (It runs as the equivalent
    conv with a block-diagonal kernel on the input, which saves rearranging the input.) The
    dynamic scope ("+") multiplies the offsets by ``0.5 * sigmoid`` of a second 1x1 conv (no bias,
    zero init), so each position learns how far it may move.

    Weights: ``offset_kernel`` (1, 1, C_in, C_out) and ``offset_bias`` (C_out,), plus
    ``scope_kernel`` (1, 1, C_in, C_out) for the dynamic scope, where (C_in, C_out) is
    ``(C, 2 * groups * scale**2)`` for "lp" and ``(C / scale**2, 2 * groups)`` for "pl". Offsets
    are in input pixels; output channels are ordered ``(sub-pixel row, sub-pixel column, group,
    [dx, dy])`` for "lp" and ``(group, [dx, dy])`` for "pl", and the pixel-shuffled input of "pl"
    is in ``depth_to_space`` order (PyTorch checkpoints need the offset layers' output channels
    permuted to this order and, for "pl", the output channels of the layer that feeds DySample
    too, since ``pixel_shuffle`` and ``depth_to_space`` order channels differently). Sampling
    goes through :func:`tfsr.ops.grid_sample.offset_sample`, made of TFLite builtin ops only, so
    the layer converts to TFLite float32 and full int8.

    Args:
        scale: integer upsampling factor, >= 2.
        style: "lp" or "pl", see above.
        groups: number of channel groups with their own offsets (4 in the paper); must divide the
            number of input channels.
        dynamic_scope: use the dynamic scope (the "+" variants). (Not ``dynamic``: that name is
            taken by ``keras.layers.Layer``, where it means "eager only".)
        **kwargs: standard layer arguments (name, dtype, trainable).

    Call arguments:
        inputs: (N, H, W, C) feature map, ``C`` divisible by ``groups`` (and by ``scale**2`` for
            "pl"). ``H`` and ``W`` may be unknown.

    Input shape:
        ``(N, H, W, C)``.

    Output shape:
        ``(N, scale * H, scale * W, C)``.

    Example:

    >>> up = DySample(scale=2, style="lp", groups=4, dynamic_scope=True)  # DySample+
    >>> up(tf.zeros((1, 16, 16, 32))).shape
    TensorShape([1, 32, 32, 32])

    Reference:
        Liu, Lu, Fu, Cao, "Learning to Upsample by Learning to Sample", ICCV 2023
        (arXiv 2308.15085).
    """

    def __init__(
        self,
        scale: int = 2,
        style: str = "lp",
        groups: int = 4,
        dynamic_scope: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        int_at_least("scale", scale, 2)
        if style not in _STYLES:
            raise ValueError(f"style must be one of {_STYLES}, got {style!r}")
        int_at_least("groups", groups)
        if not isinstance(dynamic_scope, (bool, np.bool_)):
            raise ValueError(f"dynamic_scope must be True or False, got {dynamic_scope!r}")
        self.scale = int(scale)
        self.style = style
        self.groups = int(groups)
        self.dynamic_scope = bool(dynamic_scope)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the channel axis must be known, got {input_shape}")
        if channels % self.groups:
            raise ValueError(
                f"{self.name}: input channels ({channels}) must be divisible by "
                f"groups ({self.groups})"
            )
        s2 = self.scale**2
        if self.style == "pl" and channels % s2:
            raise ValueError(
                f"{self.name}: style 'pl' needs input channels ({channels}) divisible by "
                f"scale**2 ({s2})"
            )
        if self.style == "lp":
            conv_in, conv_out = channels, 2 * self.groups * s2
        else:
            conv_in, conv_out = channels // s2, 2 * self.groups
        # 1x1 convolution kernels, HWIO like keras.layers.Conv2D's.
        self.offset_kernel = self.add_weight(
            name="offset_kernel",
            shape=(1, 1, conv_in, conv_out),
            initializer=keras.initializers.RandomNormal(stddev=0.001),
        )
        self.offset_bias = self.add_weight(
            name="offset_bias", shape=(conv_out,), initializer="zeros"
        )
        self.scope_kernel = None
        if self.dynamic_scope:
            self.scope_kernel = self.add_weight(
                name="scope_kernel", shape=(1, 1, conv_in, conv_out), initializer="zeros"
            )
        super().build(input_shape)

    def _on_input_pixels(self, kernel):
        """The kernel as a 1x1 conv on the input pixels, (1, 1, C, 2g s^2).

        For "pl" the conv runs on the pixel-shuffled input, where each input pixel's channels
        ``(i * s + j) * C / s^2 ... + C / s^2`` become sub-pixel ``(i, j)``: the same as a conv on
        the input with a block-diagonal kernel (one block per sub-pixel), whose output
        ``depth_to_space`` lays out exactly as for "lp". This saves rearranging the whole input.
        """
        if self.style == "lp":
            return kernel
        s2 = self.scale**2
        c_in, c_out = kernel.shape[2], kernel.shape[3]
        eye = tf.eye(s2, dtype=kernel.dtype)
        blocks = eye[:, None, :, None] * kernel[0, 0][None, :, None, :]  # (s2, C/s2, s2, 2g)
        return tf.reshape(blocks, (1, 1, s2 * c_in, s2 * c_out))

    def _offsets(self, inputs):
        """Offsets (N, sH, sW, groups, 2) of each output pixel, (dx, dy) in input pixels."""
        s2 = self.scale**2
        bias = self.offset_bias if self.style == "lp" else tf.tile(self.offset_bias, [s2])
        offsets = tf.nn.conv2d(inputs, self._on_input_pixels(self.offset_kernel), 1, "VALID")
        offsets = tf.nn.bias_add(offsets, bias)  # (N, H, W, s * s * 2g)
        if self.dynamic_scope:
            scope = tf.nn.conv2d(inputs, self._on_input_pixels(self.scope_kernel), 1, "VALID")
            offsets = offsets * (0.5 * tf.sigmoid(scope))
        else:
            offsets = offsets * 0.25
        offsets = tf.nn.depth_to_space(offsets, self.scale)  # (N, sH, sW, 2g)
        shape = tf.shape(offsets)
        return tf.reshape(offsets, tf.stack([shape[0], shape[1], shape[2], self.groups, 2]))

    def call(self, inputs):
        return offset_sample(inputs, self._offsets(inputs), self.scale)  # (N, sH, sW, C)

    def compute_output_shape(self, input_shape):
        n, h, w, c = tf.TensorShape(input_shape).as_list()
        s = self.scale
        return tf.TensorShape([n, None if h is None else h * s, None if w is None else w * s, c])

    def get_config(self):
        config = super().get_config()
        config.update(
            scale=self.scale, style=self.style, groups=self.groups, dynamic_scope=self.dynamic_scope
        )
        return config
