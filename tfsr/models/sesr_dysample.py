"""SESR with DySample as its upsampler: ``sesr_dysample``.

The SESR feature extractor (:func:`tfsr.models.sesr.sesr_body`) runs at low resolution; DySample
upsamples its ``f`` feature channels by learned point sampling instead of SESR's last block +
pixel shuffle; one 3x3 collapsible block at high resolution maps the ``f`` channels to Y, and the
bilinearly upsampled input is added (DySample starts as bilinear upsampling, so the untrained
network is close to bilinear interpolation of the input plus a small correction)::

    lr (N, H, W, 1) -> sesr_body -> (N, H, W, f) -> DySample(s) -> (N, sH, sW, f)
        -> CollapsibleLinearBlock 3x3, f -> 1 -> + bilinear(lr) -> clip [0, 1] -> (N, sH, sW, 1)

Every layer converts to TFLite builtin ops (float32 and full int8); ``collapse_model`` gives the
inference form (plain convolutions).
"""

from __future__ import annotations

import tf_keras as keras

from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock
from tfsr.layers.dysample import DySample
from tfsr.models.registry import ModelSpec, register_model
from tfsr.models.sesr import (
    LAST_BLOCK,
    check_scale_and_activation,
    collapse_model,
    sesr_body,
    variant_config,
)


def sesr_dysample(
    scale: int = 2,
    variant: str = "m5",
    activation: str = "prelu",
    style: str = "lp",
    groups: int = 4,
    dynamic_scope: bool = False,
    collapsed_training: bool = True,
    expanded_filters: int | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds SESR-``variant`` with a DySample upsampler, on Y.

    Args:
        scale: 2, 3 or 4.
        variant: the SESR body: "m3", "m5", "m7", "m11" or "xl".
        activation: "prelu" or "relu" (ReLU for int8 deployment).
        style, groups, dynamic_scope: the DySample variant (see :class:`tfsr.layers.DySample`).
        collapsed_training: train the blocks collapsed (one conv each).
        expanded_filters: width p of every block's expanded space; None for
            ``TRAIN_EXPANDED_FILTERS`` (as ``sesr_model``).
        name: model name; default ``sesr_dysample_{variant}_x{scale}``.

    Returns:
        A Functional model (N, H, W, 1) float [0, 1] -> (N, scale H, scale W, 1).

    Example:

    >>> model = sesr_dysample(scale=2)
    >>> model(tf.zeros((1, 8, 8, 1))).shape
    TensorShape([1, 16, 16, 1])
    """
    check_scale_and_activation(scale, activation)
    variant, cfg = variant_config(variant, expanded_filters)  # "M5" as sesr_model takes it
    f, p = cfg["num_filters"], cfg["expanded_filters"]
    inputs = keras.Input(shape=(None, None, 1), name="lr")  # (N, H, W, 1)
    x = sesr_body(inputs, f, cfg["num_blocks"], p, activation, collapsed_training)  # (N, H, W, f)
    x = DySample(scale, style=style, groups=groups, dynamic_scope=dynamic_scope, name="dysample")(
        x
    )  # (N, sH, sW, f)
    x = CollapsibleLinearBlock(
        1, kernel_size=3, expanded_filters=p, collapsed_training=collapsed_training, name=LAST_BLOCK
    )(
        x
    )  # (N, sH, sW, 1)
    skip = keras.layers.UpSampling2D(scale, interpolation="bilinear", name="bilinear")(inputs)
    x = keras.layers.Add(name="bilinear_residual")([x, skip])
    outputs = keras.layers.ReLU(max_value=1.0, name="clip")(x)
    return keras.Model(inputs, outputs, name=name or f"sesr_dysample_{variant}_x{scale}")


register_model(
    ModelSpec(
        name="sesr_dysample",
        build=lambda scale, activation="prelu", **kw: sesr_dysample(
            scale=scale, activation=activation, **kw
        ),
        to_inference=collapse_model,
        description="SESR-M5 body with a DySample upsampler",
        options=("expanded_filters",),
    )
)


def _register_shipped() -> None:
    from tfsr.models.pretrained import PretrainedEntry, register_pretrained

    for scale in (2, 4):
        register_pretrained(
            PretrainedEntry(
                name=f"sesr_dysample_x{scale}",
                filename=f"sesr_dysample_x{scale}.keras",
                scale=scale,
                description=f"SESR-M5 body + DySample (lp, static) x{scale}, collapsed, trained "
                "on the 291 set",
            )
        )


_register_shipped()
