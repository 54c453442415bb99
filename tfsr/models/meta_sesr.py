"""Meta-SESR: an SESR body with a Meta-SR upscaler, one model for every scale.

``meta_sesr(...)`` builds the training network: SESR's collapsible linear blocks on Y, then a
:class:`~tfsr.layers.MetaUpscale` to one channel, plus a bilinear upsampling of the input as a
residual. The scale is a model input, so one set of weights serves any (vertical, horizontal)
scale; trained with one random scale per batch from 1.1 to 4.0 (``TRAIN_SCALES``).
``python train.py --model=meta_sesr`` trains it (registered in ``tfsr.models.registry``).

References:
    Hu et al., "Meta-SR: A Magnification-Arbitrary Network for Super-Resolution", CVPR 2019
    (arXiv 1903.00875); Bhardwaj et al., "Collapsible Linear Blocks for Super-Efficient Super
    Resolution", MLSys 2022 (arXiv 2103.09404).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least
from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock
from tfsr.layers.fixed_scale_meta_upscale import FixedScaleMetaUpscale
from tfsr.layers.meta_upscale import MetaUpscale
from tfsr.models.registry import ModelSpec, register_model
from tfsr.models.sesr import ACTIVATIONS, collapse_model, sesr_body

# Meta-SR's training scales, 1.1 to 4.0 in steps of 0.1, plus anisotropic pairs.
ISOTROPIC_SCALES = tuple(round(1.0 + 0.1 * i, 1) for i in range(1, 31))
ANISOTROPIC_SCALES = ((1.5, 3.0), (3.0, 1.5), (2.0, 4.0), (4.0, 2.0), (2.0, 3.0), (3.0, 2.0))
TRAIN_SCALES = ISOTROPIC_SCALES + ANISOTROPIC_SCALES
VALIDATION_SCALES = (2, 3, 4)
# LR patch side for training: a multiple of 10, the denominator of every step-0.1 scale.
PATCH_SIZE = 50


@keras.saving.register_keras_serializable(package="tfsr")
class BilinearResizeLike(keras.layers.Layer):
    """Resizes ``image`` bilinearly to the height and width of ``reference``.

    ``tf.image.resize(image, size, "bilinear")`` (half-pixel centres, no antialiasing) with the
    size read from ``reference`` at run time: the residual path of :func:`meta_sesr`, which makes
    the network learn only the correction to bilinear upsampling at every scale.

    Call arguments:
        inputs: ``[image, reference]``: image (N, H, W, C); reference (N, H_out, W_out, *).

    Input shape:
        ``[(N, H, W, C), (N, H_out, W_out, C_ref)]``.

    Output shape:
        ``(N, H_out, W_out, C)``.

    Example:

    >>> BilinearResizeLike()([tf.zeros((1, 4, 4, 1)), tf.zeros((1, 10, 6, 3))]).shape
    TensorShape([1, 10, 6, 1])
    """

    def call(self, inputs):
        image, reference = inputs
        size = tf.shape(reference)[1:3]
        return tf.cast(tf.image.resize(image, size, method="bilinear"), image.dtype)

    def compute_output_shape(self, input_shape):
        image, reference = (tf.TensorShape(s) for s in input_shape)
        return tf.TensorShape([image[0], reference[1], reference[2], image[3]])


def meta_sesr(
    num_filters: int = 16,
    num_blocks: int = 5,
    expanded_filters: int = 256,
    activation: str = "prelu",
    kernel_size: int = 3,
    hidden_units: int = 256,
    collapsed_training: bool = True,
    name: str = "meta_sesr",
) -> keras.Model:
    """Builds the arbitrary-scale Meta-SESR network (a tf_keras Functional model) for Y.

    Structure, on ``lr`` (N, H, W, 1) and ``scale`` (N, 2) rows ``(scale_v, scale_h)``::

        f0 = first_block(lr)                       # 5x5 linear block 1 -> f
        h = f0; repeat num_blocks times: h = act(block_i(h))   # 3x3 blocks with short residual
        h = h + f0                                 # long residual
        r = meta_upscale([h, scale])               # Meta-SR upscale f -> 1, (N, H_out, W_out, 1)
        y = clip(r + bilinear(lr, to r's size), 0, 1)

    The residual is a bilinear resize (``tf.image.resize``), not MATLAB bicubic: it runs at any
    scale with one op, and the network learns the rest. ``H_out = floor(scale_v * H)``, likewise
    W_out. One scale per batch: with several rows, the first is used (see ``MetaUpscale``).

    Args:
        num_filters: feature channels f.
        num_blocks: number m of 3x3 blocks.
        expanded_filters: width p of the expanded space inside every linear block.
        activation: "prelu" or "relu".
        kernel_size: meta-upscale filter size (odd).
        hidden_units: Pos2Weight hidden width.
        collapsed_training: passed to every ``CollapsibleLinearBlock``.
        name: model name.

    Returns:
        A model ``[lr, scale] -> sr`` with inputs named ``lr`` and ``scale``.

    Raises:
        ValueError: on an unsupported activation or a non-positive size.

    Example:

    >>> model = meta_sesr(num_blocks=2)
    >>> model([tf.zeros((1, 10, 12, 1)), tf.constant([[2.5, 3.0]])]).shape
    TensorShape([1, 25, 36, 1])
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    f = int_at_least("num_filters", num_filters)
    m = int_at_least("num_blocks", num_blocks)
    p = int_at_least("expanded_filters", expanded_filters)

    lr = keras.Input(shape=(None, None, 1), name="lr")  # (N, H, W, 1)
    scale = keras.Input(shape=(2,), name="scale")  # (N, 2)
    x = sesr_body(lr, f, m, p, activation, collapsed_training)  # (N, H, W, f)
    x = MetaUpscale(1, kernel_size=kernel_size, hidden_units=hidden_units, name="meta_upscale")(
        [x, scale]
    )  # (N, H_out, W_out, 1)
    skip = BilinearResizeLike(name="bilinear_residual")([lr, x])
    x = keras.layers.Add(name="residual")([x, skip])
    outputs = keras.layers.ReLU(max_value=1.0, name="clip")(x)
    return keras.Model([lr, scale], outputs, name=name)


def is_arbitrary_scale(model: keras.Model) -> bool:
    """True for a model taking ``[image, scale]`` with (N, 2) scale rows (as :func:`meta_sesr`)."""
    inputs = getattr(model, "inputs", None) or []
    return (
        len(inputs) == 2
        and inputs[0].shape.rank == 4
        and tuple(inputs[1].shape.as_list()[1:]) == (2,)
    )


def fixed_scale_meta_sesr(model: keras.Model, scale) -> keras.Model:
    """The single-input ``lr -> sr`` form of a Meta-SESR model at one scale (its export form).

    The body is collapsed (``collapse_model``: plain convolutions, unless it already is) and
    kept as a nested model;
    the ``MetaUpscale`` becomes a :class:`~tfsr.layers.FixedScaleMetaUpscale` holding the filters
    its Pos2Weight predicts once for ``scale``; the bilinear residual, the addition and the clip
    are the model's own layers. Outputs equal ``model([lr, scale])`` (up to float rounding).

    Args:
        model: a model built by :func:`meta_sesr` (training or collapsed form).
        scale: a number or a (vertical, horizontal) pair, each ``P / Q`` with P, Q <= 64.

    Returns:
        A Functional model (N, H, W, 1) -> (N, floor(scale_v H), floor(scale_h W), 1), named
        ``{model.name}_x{scale_v}`` (``_x{scale_v}x{scale_h}`` when anisotropic).

    Raises:
        ValueError: a model that is not a Meta-SESR, or a scale without a short fraction.

    Example:

    >>> fixed = fixed_scale_meta_sesr(meta_sesr(num_blocks=1), 2.5)
    >>> fixed(tf.zeros((1, 10, 12, 1))).shape
    TensorShape([1, 25, 30, 1])
    """
    from tfsr.data.imresize import scale_pair

    scale_v, scale_h = scale_pair(scale)
    if not is_arbitrary_scale(model):
        raise ValueError(
            f"model {model.name} is not an arbitrary-scale model (inputs [lr, (N, 2) scale])"
        )
    names = {type(layer).__name__: layer for layer in model.layers}
    tail = ("MetaUpscale", "BilinearResizeLike", "Add", "ReLU")
    missing = [name for name in tail if name not in names]
    if missing or not all(model.get_layer(n) for n in ("residual", "clip", "bilinear_residual")):
        raise ValueError(f"model {model.name} is not a Meta-SESR model (missing {missing})")
    if any(isinstance(layer, CollapsibleLinearBlock) for layer in model.layers):
        model = collapse_model(model)
    meta = model.get_layer("meta_upscale")
    features, _ = meta.input  # (N, H, W, f)
    body = keras.Model(model.inputs[0], features, name="body")
    fixed = FixedScaleMetaUpscale.from_meta_upscale(meta, scale_v, scale_h)

    lr = keras.Input(shape=model.inputs[0].shape[1:], name="lr")  # (N, H, W, 1)
    x = fixed(body(lr))  # (N, H_out, W_out, 1)
    skip = model.get_layer("bilinear_residual")([lr, x])
    x = model.get_layer("residual")([x, skip])
    outputs = model.get_layer("clip")(x)
    suffix = f"{scale_v:g}" if scale_v == scale_h else f"{scale_v:g}x{scale_h:g}"
    return keras.Model(lr, outputs, name=f"{model.name}_x{suffix}")


def _build(scale=None, activation="prelu", **kwargs) -> keras.Model:
    del scale  # one model for every scale
    return meta_sesr(activation=activation, **kwargs)


register_model(
    ModelSpec(
        name="meta_sesr",
        build=_build,
        to_inference=collapse_model,
        description="Meta-SESR: SESR-M5 body + Meta-SR upscale, any scale (1.1 to 4 trained)",
        train_scales=TRAIN_SCALES,
        validation_scales=VALIDATION_SCALES,
        patch_size=PATCH_SIZE,
    )
)


def _register_shipped() -> None:
    from tfsr.models.pretrained import PretrainedEntry, register_pretrained

    register_pretrained(
        PretrainedEntry(
            name="meta_sesr",
            filename="meta_sesr.keras",
            scale=None,  # any scale: give --scale (or --scale_v and --scale_h)
            description="meta_sesr (SESR-M5 body + meta-upscale), trained on the 291 set, "
            "scales 1.1..4.0",
            trained_scales=(min(ISOTROPIC_SCALES), max(ISOTROPIC_SCALES)),
        )
    )


_register_shipped()
