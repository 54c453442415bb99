"""MetaUpscale: Meta-SR's arbitrary-scale upsampling layer, the scale a call input."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least
from tfsr.layers.pos2weight import Pos2Weight, phase_positions, snap_scale
from tfsr.ops import custom_ops_available
from tfsr.ops.meta_upscale import meta_upscale


def batch_scale(scale) -> tuple[tf.Tensor, tf.Tensor]:
    """``(scale_v, scale_h)`` float64 scalars from a scalar, a (2,) pair or (N, 2) rows.

    For (N, 2) rows the first row is used: a batch has one scale (see :class:`MetaUpscale`).
    Scales are snapped with :func:`tfsr.layers.pos2weight.snap_scale`.
    """
    scale = tf.convert_to_tensor(scale)
    rank = scale.shape.rank
    if rank == 0:
        pair = tf.stack([scale, scale])
    elif rank == 1:
        pair = scale
    elif rank == 2:
        pair = scale[0]
    else:
        raise ValueError(
            f"scale must be a scalar, a (2,) pair (scale_v, scale_h) or (N, 2) rows, got shape "
            f"{scale.shape}"
        )
    if pair.shape[0] is not None and pair.shape[0] != 2:
        raise ValueError(f"scale must hold 2 values (scale_v, scale_h), got shape {scale.shape}")
    pair = snap_scale(pair)
    return pair[0], pair[1]


@keras.saving.register_keras_serializable(package="tfsr")
class MetaUpscale(keras.layers.Layer):
    """Upsamples features by any real scale with filters predicted from the position (Meta-SR).

    Output pixel ``(i, j)`` applies a k x k filter to the features around its source pixel
    ``(floor(i / r_v), floor(j / r_h))``; the filter is predicted by a :class:`Pos2Weight` MLP from
    ``(frac_v, frac_h, 1/r_v, 1/r_h)``, once per distinct phase pair, and applied by
    ``tfsr.ops.meta_upscale`` (compiled op, or its pure-TF twin). The scale is a call input, so one
    layer (one model) serves every scale, including different vertical and horizontal scales.

    **One scale per batch**: the op takes scalar scales, so all images of a batch are upscaled by
    the same scale; with (N, 2) scale rows, the first row is used. Scales are rounded to 5
    decimals (a float32 2.3 is treated as 23 / 10).

    Args:
        filters: output channels C_out.
        kernel_size: odd filter size k (3 in the paper).
        hidden_units: width of the Pos2Weight hidden layer (256 in the paper).
        **kwargs: standard layer arguments (name, dtype).

    Call arguments:
        inputs: ``[features, scale]``: features (N, H, W, C_in); scale a scalar, a (2,) pair
            ``(scale_v, scale_h)`` or (N, 2) rows of such pairs (one value per batch).

    Input shape:
        ``[(N, H, W, C_in), ()|(2,)|(N, 2)]``.

    Output shape:
        ``(N, floor(scale_v * H), floor(scale_h * W), filters)``.

    Example:

    >>> layer = MetaUpscale(filters=1)
    >>> layer([tf.zeros((1, 10, 10, 8)), tf.constant([[2.5, 1.5]])]).shape
    TensorShape([1, 25, 15, 1])

    Reference:
        Hu et al., "Meta-SR: A Magnification-Arbitrary Network for Super-Resolution", CVPR 2019
        (arXiv 1903.00875).
    """

    def __init__(self, filters: int, kernel_size: int = 3, hidden_units: int = 256, **kwargs):
        # No autocast: under mixed precision Keras would cast the scale input to float16 or
        # bfloat16 too (2.3 -> 2.296875: another output size and period); the features are
        # cast to the compute dtype in call().
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.filters = int_at_least("filters", filters)
        self.kernel_size = int_at_least("kernel_size", kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size!r}")
        self.hidden_units = int_at_least("hidden_units", hidden_units)
        self.pos2weight = None

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(
                f"{self.name}: expected inputs [features, scale], got input shape {input_shape}"
            )
        features = tf.TensorShape(input_shape[0])
        if features.rank != 4 or features[-1] is None:
            raise ValueError(
                f"{self.name}: features must be (N, H, W, C) with known C, got shape {features}"
            )
        self.pos2weight = Pos2Weight(
            self.kernel_size,
            int(features[-1]),
            self.filters,
            hidden_units=self.hidden_units,
            name="pos2weight",
            dtype=self.dtype_policy,
        )
        self.pos2weight.build((None, None, 4))
        # Load the compiled op library now, not first inside a traced (AutoGraph) call.
        custom_ops_available()
        super().build(input_shape)

    def call(self, inputs):
        features, scale = inputs
        features = tf.cast(features, self.compute_dtype)
        scale_v, scale_h = batch_scale(scale)
        shape = tf.shape(features)
        positions = phase_positions(scale_v, scale_h, shape[1], shape[2])  # (P_v, P_h, 4)
        weights = self.pos2weight(positions)  # (P_v, P_h, k, k, C_in, C_out)
        weights = tf.cast(weights, features.dtype)
        return meta_upscale(features, weights, scale_v, scale_h)  # (N, H_out, W_out, C_out)

    def compute_output_shape(self, input_shape):
        features = tf.TensorShape(input_shape[0])
        return tf.TensorShape([features[0], None, None, self.filters])

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, hidden_units=self.hidden_units
        )
        return config
