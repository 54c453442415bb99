"""SESR: super-efficient super-resolution built from collapsible linear blocks.

``sesr(...)`` builds the training network (``CollapsibleLinearBlock`` layers), ``sesr_model("m5")``
one of the paper's named configurations, ``collapse_model`` turns a trained network into its
inference form (plain ``Conv2D`` layers) and ``init_from`` starts one network from another's
weights (x4 from x2).

Reference:
    Bhardwaj et al., "Collapsible Linear Blocks for Super-Efficient Super Resolution", MLSys 2022
    (arXiv 2103.09404).
"""

from __future__ import annotations

import re

import numpy as np
import tf_keras as keras

from tfsr.atomic_file import atomic_output
from tfsr.checks import int_at_least
from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock
from tfsr.layers.pixel_shuffle import PixelShuffle
from tfsr.npz_header import NpzReadError, encode_header, read_npz

# The paper's configurations: f features, m 3x3 blocks, p expanded features.
SESR_CONFIGS: dict[str, dict[str, int]] = {
    "m3": dict(num_filters=16, num_blocks=3, expanded_filters=256),
    "m5": dict(num_filters=16, num_blocks=5, expanded_filters=256),
    "m7": dict(num_filters=16, num_blocks=7, expanded_filters=256),
    "m11": dict(num_filters=16, num_blocks=11, expanded_filters=64),
    "xl": dict(num_filters=32, num_blocks=11, expanded_filters=64),
}

# The width p that sesr_model and sesr_dysample train every variant with unless told otherwise.
# The paper expands M11 and XL only to 64, which bounds the cost of training in expanded form;
# collapsed training's cost hardly depends on p (one (k*k*C_in x p) @ (p x C_out) product per
# block and step), and p = 256 trains them far better: SESR-XL x2 after 3,000 steps of 16 48x48
# patches, Set5 35.61 dB at p = 64 vs 37.01 dB at p = 256 (README, "Expanded width"). The
# collapsed network, and so the shipped model, is the same at any p.
TRAIN_EXPANDED_FILTERS = 256


def training_width(expanded_filters: int | None) -> int:
    """The expanded width p to train with: ``expanded_filters``, or ``TRAIN_EXPANDED_FILTERS``
    when that is None or 0 (the model's own)."""
    return expanded_filters or TRAIN_EXPANDED_FILTERS


def variant_config(variant, expanded_filters: int | None = None) -> tuple[str, dict]:
    """``(key, config)`` of an SESR variant: the lower-case name and a copy of its
    ``SESR_CONFIGS`` entry whose ``expanded_filters`` is the width to train with,
    ``expanded_filters`` or, when that is None or 0, ``TRAIN_EXPANDED_FILTERS``.

    Raises:
        ValueError: an unknown variant.
    """
    key = str(variant).lower()
    if key not in SESR_CONFIGS:
        raise ValueError(
            f"unknown SESR variant {variant!r}; expected one of {', '.join(SESR_CONFIGS)}"
        )
    return key, {
        **SESR_CONFIGS[key],
        "expanded_filters": training_width(expanded_filters),
    }


SCALES = (2, 3, 4)
ACTIVATIONS = ("prelu", "relu")


def check_scale_and_activation(scale, activation) -> None:
    """Raises ValueError unless ``scale`` is one of ``SCALES`` (an int) and ``activation`` one of
    ``ACTIVATIONS``: the arguments every SESR-bodied model takes."""
    if scale not in SCALES or not isinstance(scale, (int, np.integer)) or isinstance(scale, bool):
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


# Layer names shared by every SESR network (init_from and the exporters rely on them).
FIRST_BLOCK = "first_block"
LAST_BLOCK = "last_block"


def sesr_body(inputs, f: int, m: int, p: int, activation: str, collapsed_training: bool = True):
    """The SESR feature extractor on ``inputs`` (N, H, W, C): returns (N, H, W, f).

    A 5x5 block C -> f, then ``m`` residual 3x3 blocks f -> f each followed by PReLU (shared over
    H, W) or ReLU, then the long residual adding the first block's output. Layer names:
    ``first_block``, ``block_i``, ``prelu_i`` / ``relu_i``, ``long_residual``.
    """

    def block(filters, kernel_size, residual, block_name):
        return CollapsibleLinearBlock(
            filters,
            kernel_size=kernel_size,
            expanded_filters=p,
            residual=residual,
            collapsed_training=collapsed_training,
            name=block_name,
        )

    first = block(f, 5, False, FIRST_BLOCK)(inputs)  # (N, H, W, f)
    x = first
    for i in range(1, m + 1):
        x = block(f, 3, True, f"block_{i}")(x)
        if activation == "prelu":
            x = keras.layers.PReLU(shared_axes=[1, 2], name=f"prelu_{i}")(x)
        else:
            x = keras.layers.ReLU(name=f"relu_{i}")(x)
    return keras.layers.Add(name="long_residual")([x, first])


def sesr(
    scale: int = 2,
    num_filters: int = 16,
    num_blocks: int = 5,
    expanded_filters: int = 256,
    activation: str = "prelu",
    collapsed_training: bool = True,
    input_channels: int = 1,
    name: str | None = None,
) -> keras.Model:
    """Builds an SESR network for training (a tf_keras Functional model).

    Structure, on ``x`` of shape ``(N, H, W, C)`` (C = ``input_channels``, usually Y only)::

        f0 = first_block(x)                      # 5x5 linear block C -> f
        h = f0
        repeat num_blocks times:
            h = act(block_i(h))                  # 3x3 linear block f -> f with short residual
        h = h + f0                               # long residual
        r = last_block(h) + x                    # 5x5 linear block f -> C*scale^2, x added to
                                                 # every group of C channels (nearest residual)
        y = clip(pixel_shuffle(r), 0, 1)         # (N, scale*H, scale*W, C)

    ``act`` is PReLU with one slope per channel (shared over H and W), or ReLU (the choice for
    int8 export). The clip is a ``ReLU(max_value=1)``.

    Channel order of the last block: x2 and x3 use one ``PixelShuffle(scale)``; x4 uses two
    ``PixelShuffle(2)`` steps (as the authors' code), so output channel
    ``k = 4C * (2 * dy1 + dx1) + C * (2 * dy2 + dx2) + c`` lands on the high-resolution pixel
    ``(4h + 2 * dy1 + dy2, 4w + 2 * dx1 + dx2)``, channel c. The first shuffle thus groups the
    channels exactly as an x2 network does, which is what lets ``init_from`` start x4 from x2.

    Args:
        scale: upscaling factor, 2, 3 or 4.
        num_filters: feature channels f.
        num_blocks: number m of 3x3 blocks.
        expanded_filters: width p of the expanded space inside every linear block.
        activation: "prelu" or "relu".
        collapsed_training: passed to every ``CollapsibleLinearBlock`` (True: one collapsed conv
            per block and step; False: the expanded pair of convs).
        input_channels: image channels C (1 for Y).
        name: model name; default ``sesr_f{f}_m{m}_x{scale}``.

    Returns:
        A model from ``(N, H, W, C)`` float32 in [0, 1] (any H, W) to
        ``(N, scale*H, scale*W, C)`` in [0, 1].

    Raises:
        ValueError: on an unsupported scale or activation, or a non-positive size.

    Example:

    >>> model = sesr(scale=2, num_blocks=3)
    >>> model(tf.zeros((1, 10, 12, 1))).shape
    TensorShape([1, 20, 24, 1])
    """
    check_scale_and_activation(scale, activation)
    f = int_at_least("num_filters", num_filters)
    m = int_at_least("num_blocks", num_blocks)
    p = int_at_least("expanded_filters", expanded_filters)
    c = int_at_least("input_channels", input_channels)

    inputs = keras.Input(shape=(None, None, c), name="lr")  # (N, H, W, C)
    x = sesr_body(inputs, f, m, p, activation, collapsed_training)  # (N, H, W, f)
    block = CollapsibleLinearBlock
    x = block(
        c * scale * scale,
        kernel_size=5,
        expanded_filters=p,
        collapsed_training=collapsed_training,
        name=LAST_BLOCK,
    )(
        x
    )  # (N, H, W, C*scale^2)
    # Nearest-neighbour residual: every output group of C channels gets the input.
    skip = inputs
    if c > 1:
        skip = keras.layers.Concatenate(name="nearest_tile")([inputs] * (scale * scale))
    x = keras.layers.Add(name="nearest_residual")([x, skip])  # broadcasts when C == 1
    if scale == 4:
        x = PixelShuffle(2, name="pixel_shuffle_1")(x)  # (N, 2H, 2W, 4C)
        x = PixelShuffle(2, name="pixel_shuffle_2")(x)  # (N, 4H, 4W, C)
    else:
        x = PixelShuffle(scale, name="pixel_shuffle")(x)  # (N, sH, sW, C)
    outputs = keras.layers.ReLU(max_value=1.0, name="clip")(x)
    return keras.Model(inputs, outputs, name=name or f"sesr_f{f}_m{m}_x{scale}")


def sesr_model(
    variant: str = "m5",
    scale: int = 2,
    activation: str = "prelu",
    expanded_filters: int | None = None,
    **kwargs,
) -> keras.Model:
    """Builds one of the paper's configurations (``SESR_CONFIGS``) for ``scale``.

    The features f and blocks m are the variant's; the expanded width p, which only shapes
    training (the collapsed network does not depend on it), is ``TRAIN_EXPANDED_FILTERS`` (256)
    unless given: the paper's 64 for M11 and XL is ``expanded_filters=64``.

    Args:
        variant: "m3", "m5", "m7", "m11" or "xl" (case-insensitive).
        scale: 2, 3 or 4.
        activation: "prelu" or "relu".
        expanded_filters: width p of the expanded space; None for ``TRAIN_EXPANDED_FILTERS``.
        **kwargs: further ``sesr`` arguments (``collapsed_training``, ``input_channels``,
            ``name``); the model is named ``sesr_{variant}_x{scale}`` by default.

    Example:

    >>> model = sesr_model("m5", scale=4)
    >>> model.name
    'sesr_m5_x4'
    """
    key, config = variant_config(variant, expanded_filters)
    overlap = set(kwargs) & set(config)
    if overlap:
        raise ValueError(
            f"{', '.join(sorted(overlap))} is fixed by variant {key!r}; call sesr() to choose it"
        )
    kwargs.setdefault("name", f"sesr_{key}_x{scale}")
    return sesr(scale=scale, activation=activation, **config, **kwargs)


def collapse_model(model: keras.Model) -> keras.Model:
    """Returns the inference form of ``model``: every block replaced by one plain ``Conv2D``.

    Each ``CollapsibleLinearBlock`` becomes a ``Conv2D`` (same name, kernel size and filters,
    "same" padding) that holds the block's collapsed kernel and bias; every other layer is cloned
    with its weights. The result has no expanded weights and gives the same outputs (up to float
    rounding). Works for any Functional or Sequential model whose blocks are top-level layers.
    Layers trained under a mixed-precision policy come out in float32.

    Args:
        model: a trained model, typically from ``sesr``.

    Returns:
        A new model, named ``{model.name}_collapsed``.

    Raises:
        ValueError: if ``model`` is a subclassed model, or has blocks inside nested models.
    """
    if not isinstance(model, keras.Model) or not (model._is_graph_network):
        raise ValueError(
            f"collapse_model needs a Functional or Sequential model, got {type(model).__name__}"
        )
    for layer in model.layers:
        if isinstance(layer, keras.Model) and any(
            isinstance(sub, CollapsibleLinearBlock) for sub in layer._flatten_layers()
        ):
            raise ValueError(
                f"collapse_model: layer {layer.name!r} is a nested model holding collapsible "
                "blocks; flatten the model first"
            )

    def mixed(layer):
        # A mixed-precision policy is a training choice: the inference form computes in float32.
        return layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype

    def clone(layer):
        if isinstance(layer, CollapsibleLinearBlock):
            return keras.layers.Conv2D(
                layer.filters,
                layer.kernel_size,
                padding="same",
                name=layer.name,
                dtype="float32" if mixed(layer) else layer.dtype_policy,
            )
        config = layer.get_config()
        if mixed(layer):
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    collapsed = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights:
            continue
        target = collapsed.get_layer(layer.name)
        if isinstance(layer, CollapsibleLinearBlock):
            kernel, bias = layer.collapse()
            target.set_weights([kernel.numpy(), bias.numpy()])
        else:
            target.set_weights(layer.get_weights())
    collapsed._name = f"{model.name}_collapsed"
    return collapsed


def _scale(model: keras.Model) -> int:
    scale = 1
    for layer in model.layers:
        if isinstance(layer, PixelShuffle):
            scale *= layer.block_size
    return scale


def _x4_from_x2(layer: keras.layers.Layer, channels: int) -> list[np.ndarray]:
    """Last-block weights of an x2 network made into an x4 one (two PixelShuffle(2) steps).

    x2 output channel ``g * C + c`` (g = sub-pixel) becomes x4 channels ``g * 4C + s * C + c`` for
    every second-step sub-pixel s, so the x4 network starts as the x2 one followed by a nearest
    x2 upsampling. Works on a ``CollapsibleLinearBlock`` (its projection is spread) and on the
    ``Conv2D`` of a collapsed network.
    """

    def spread(a):  # (..., 4C) -> (..., 16C)
        a = a.reshape(a.shape[:-1] + (4, 1, channels))
        a = np.broadcast_to(a, a.shape[:-2] + (4, channels))
        return a.reshape(a.shape[:-3] + (16 * channels,))

    weights = layer.get_weights()
    if isinstance(layer, CollapsibleLinearBlock):
        expand_kernel, expand_bias, project_kernel, project_bias = weights
        return [expand_kernel, expand_bias, spread(project_kernel), spread(project_bias)]
    if isinstance(layer, keras.layers.Conv2D):
        return [spread(w) for w in weights]
    raise ValueError(
        f"init_from: cannot turn a {type(layer).__name__} last block from x2 into x4; expected a "
        "CollapsibleLinearBlock or a Conv2D"
    )


def _is_collapsed_pair(source: keras.layers.Layer, target: keras.layers.Layer) -> bool:
    """Whether ``source`` is a collapsed block (a plain stride-1 "same" ``Conv2D``, as
    ``collapse_model`` makes) and ``target`` a ``CollapsibleLinearBlock`` it can start."""
    return (
        type(source) is keras.layers.Conv2D
        and isinstance(target, CollapsibleLinearBlock)
        and source.padding == "same"
        and tuple(source.strides) == (1, 1)
        and tuple(source.dilation_rate) == (1, 1)
        and source.use_bias
        and source.activation is keras.activations.linear
    )


def _shapes_fit(weights, target: keras.layers.Layer, collapsed: bool) -> tuple[list, list]:
    """Shapes of the ``weights`` to copy and of what ``target`` takes: its weights, or with
    ``collapsed`` (a collapsed block into a training block), its collapsed kernel and bias."""
    if collapsed:
        k, c_in = target.kernel_size, target.input_spec.axes[-1]
        target_shapes = [(k, k, c_in, target.filters), (target.filters,)]
    else:
        target_shapes = [tuple(w.shape) for w in target.weights]
    return [tuple(w.shape) for w in weights], target_shapes


def init_from(dst: keras.Model, src: keras.Model, *, body_only: bool = False) -> list[str]:
    """Copies ``src``'s weights into ``dst``, layer by layer (by name); returns the copied names.

    Both models must be networks of the same architecture (features, blocks, expanded width,
    activation, input channels); only the scale may differ. The last block:

    - same scale: copied;
    - ``src`` x2, ``dst`` x4: copied with each x2 output channel repeated over the four channels
      of its second ``PixelShuffle(2)`` step (see ``sesr`` for the channel order), so ``dst``
      starts out computing ``src`` followed by a nearest-neighbour x2 upsampling;
    - other scale pairs (x3 from x2, ...): left at ``dst``'s initialisation and not listed.

    A ``DySample`` upsampler (``sesr_dysample``) predicts ``2 g s^2`` offsets, so between scales
    its weights do not fit: it is left at its initialisation (bilinear upsampling) and not listed.

    ``body_only=True`` starts one family from another (``sesr_dysample`` or ``meta_sesr`` from a
    trained SESR, or a ReLU SESR from a PReLU one): only the layers both models have are
    considered, the SESR body (``first_block``, ``block_i``, the activations) must be among them
    and fit, the last block is copied only where scale and shapes agree, and every other layer of
    either model is skipped.

    ``collapsed_training`` may differ between the two: the blocks hold the same variables. Two
    collapsed networks (``collapse_model``) work as well, and so does a collapsed ``src`` (a
    shipped model) for a training ``dst``: each ``Conv2D`` sets its block's expanded weights
    through ``CollapsibleLinearBlock.set_collapsed``, so ``dst`` starts out computing ``src``.
    A training ``src`` for a collapsed ``dst`` does not work (collapse the source first).

    Args:
        dst: the model to initialise (changed in place).
        src: the model to copy from.
        body_only: copy the shared SESR body only (see above).

    Returns:
        Names of the ``dst`` layers whose weights were set.

    Raises:
        ValueError: naming the first layer whose presence, type or weight shapes differ.
    """
    from tfsr.layers.dysample import DySample

    src_layers = {layer.name: layer for layer in src.layers if layer.weights}
    dst_layers = {layer.name: layer for layer in dst.layers if layer.weights}
    src_scale, dst_scale = _scale(src), _scale(dst)
    if body_only:
        if "first_block" not in src_layers or "first_block" not in dst_layers:
            raise ValueError(
                f"init_from: no SESR body (first_block) in both models (src {src.name!r}, "
                f"dst {dst.name!r})"
            )
        blocks = [
            {n for n in layers if n == "first_block" or re.fullmatch(r"block_\d+", n)}
            for layers in (src_layers, dst_layers)
        ]
        if blocks[0] != blocks[1]:  # another depth: the blocks would not fit together
            raise ValueError(
                f"init_from: the SESR bodies differ (blocks only in src {src.name!r}: "
                f"{', '.join(sorted(blocks[0] - blocks[1])) or 'none'}; only in dst "
                f"{dst.name!r}: {', '.join(sorted(blocks[1] - blocks[0])) or 'none'})"
            )
        shared = set(src_layers) & set(dst_layers)
        if LAST_BLOCK in shared:
            last, dst_last = src_layers[LAST_BLOCK], dst_layers[LAST_BLOCK]
            shapes, dst_shapes = _shapes_fit(
                last.get_weights(), dst_last, _is_collapsed_pair(last, dst_last)
            )
            if src_scale != dst_scale or shapes != dst_shapes:
                shared.discard(LAST_BLOCK)  # another upsampler's head (sesr_dysample from sesr)
        src_layers = {k: v for k, v in src_layers.items() if k in shared}
        dst_layers = {k: v for k, v in dst_layers.items() if k in shared}
    missing = sorted(set(src_layers) ^ set(dst_layers))
    if missing:
        raise ValueError(
            f"init_from: incompatible architectures, layers with weights in only one model: "
            f"{', '.join(missing)} (src {src.name!r}, dst {dst.name!r})"
        )
    copied = []
    for name, target in dst_layers.items():
        source = src_layers[name]
        from_collapsed = _is_collapsed_pair(source, target)
        if type(source) is not type(target) and not from_collapsed:
            raise ValueError(
                f"init_from: layer {name!r} is a {type(source).__name__} in src but a "
                f"{type(target).__name__} in dst"
            )
        weights = source.get_weights()
        if isinstance(target, DySample) and target.scale != source.scale:
            continue
        if name == LAST_BLOCK and src_scale != dst_scale:
            if (src_scale, dst_scale) != (2, 4):
                continue
            weights = _x4_from_x2(source, int(src.input_shape[-1]))
        shapes, target_shapes = _shapes_fit(weights, target, from_collapsed)
        if shapes != target_shapes:
            raise ValueError(
                f"init_from: incompatible architectures, layer {name!r} has weight shapes "
                f"{shapes} in src but {target_shapes} in dst"
            )
        if from_collapsed:
            target.set_collapsed(*weights)
        else:
            target.set_weights(weights)
        copied.append(name)
    return copied


# ---------------------------------------------------------------------------------------------
# Shipped pretrained SESR models: the collapsed weights in an .npz with a JSON header.

SHIPPED_FORMAT_VERSION = 1


def save_collapsed(model: keras.Model, path: str, *, variant: str, activation: str) -> None:
    """Writes the inference form of a SESR ``model`` as a compact ``.npz`` (float32 weights).

    The file holds one array per weight, named ``layer/index``, and ``header``: JSON with the
    format version, variant, scale and activation. :func:`load_collapsed` rebuilds the model.
    """

    inference = collapse_model(model) if _has_blocks(model) else model
    arrays = {
        f"{layer.name}/{i}": w.numpy().astype(np.float32)
        for layer in inference.layers
        for i, w in enumerate(layer.weights)
    }
    header = {
        "format": "tfsr-sesr",
        "version": SHIPPED_FORMAT_VERSION,
        "variant": variant,
        "scale": _scale(model),
        "activation": activation,
    }
    with atomic_output(path) as tmp, open(tmp, "wb") as f:  # a file: no ".npz" appended
        np.savez_compressed(f, header=encode_header(header), **arrays)


def _has_blocks(model: keras.Model) -> bool:
    return any(isinstance(layer, CollapsibleLinearBlock) for layer in model.layers)


def load_collapsed(path: str) -> keras.Model:
    """Rebuilds the inference model written by :func:`save_collapsed`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable tfsr .npz (corrupted, truncated, no header), another format
            or version, or weights that do not fit.
    """
    try:
        header, arrays = read_npz(path)
    except NpzReadError as error:
        raise ValueError(f"{path} is not a tfsr SESR weights file: {error.reason}") from error
    if header.get("format") != "tfsr-sesr" or header.get("version") != SHIPPED_FORMAT_VERSION:
        raise ValueError(
            f"{path}: expected format tfsr-sesr version {SHIPPED_FORMAT_VERSION}, got "
            f"{header.get('format')!r} version {header.get('version')!r}"
        )
    missing = [key for key in ("variant", "scale", "activation") if key not in header]
    if missing:
        raise ValueError(f"{path}: the header lacks {', '.join(missing)}")
    try:
        model = collapse_model(
            sesr_model(header["variant"], scale=header["scale"], activation=header["activation"])
        )
    except ValueError as error:
        raise ValueError(f"{path}: the header describes no SESR model: {error}") from error
    expected = {f"{layer.name}/{i}" for layer in model.layers for i in range(len(layer.weights))}
    if expected != set(arrays):
        raise ValueError(
            f"{path}: weights {sorted(set(arrays) ^ expected)} do not fit SESR-"
            f"{header['variant'].upper()} x{header['scale']}"
        )
    for layer in model.layers:
        if layer.weights:
            try:
                layer.set_weights([arrays[f"{layer.name}/{i}"] for i in range(len(layer.weights))])
            except ValueError as error:
                raise ValueError(f"{path}: layer {layer.name}: {error}") from error
    return model


def _register_shipped() -> None:
    from tfsr.models.pretrained import PretrainedEntry, register_pretrained

    for variant in ("m5", "xl"):
        for scale in (2, 4):
            register_pretrained(
                PretrainedEntry(
                    name=f"sesr_{variant}_x{scale}",
                    filename=f"sesr_{variant}_x{scale}.npz",
                    scale=scale,
                    description=f"SESR-{variant.upper()} x{scale}, collapsed, trained on the 291 set",
                    loader=load_collapsed,
                )
            )
    register_pretrained(
        PretrainedEntry(
            name="sesr_m5_relu_x2",
            filename="sesr_m5_relu_x2.npz",
            scale=2,
            description="SESR-M5 x2 with ReLU (the int8 deployment choice: LiteRT runs int8 PReLU "
            "outside XNNPACK), collapsed, trained on the 291 set",
            loader=load_collapsed,
        )
    )


_register_shipped()
