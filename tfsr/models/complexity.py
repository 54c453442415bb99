"""Multiply-accumulate (MAC) and parameter counts of tf_keras models at a given input size.

Counting rules (one MAC = one multiplication with its accumulation):

- ``Conv2D``: ``k_h * k_w * C_in / groups * C_out`` per output pixel; ``DepthwiseConv2D``:
  ``k_h * k_w * C_in * depth_multiplier`` per output pixel; ``Dense``: ``C_in * C_out`` per output
  row. Bias additions are not counted.
- ``CollapsibleLinearBlock``: in expanded form (``collapsed_training=False``)
  ``k*k*C_in*p + p*C_out`` per pixel; in collapsed-training form ``k*k*C_in*C_out`` per pixel plus,
  once per call, the collapse itself (``k*k*C_in*p*C_out + p*C_out``). Its parameters are the
  expanded variables either way: ``collapse_model`` gives the inference form (plain ``Conv2D``).
- ``PReLU``, ``Multiply``: one per output element.
- ``Add``, ``Subtract``, ``Concatenate``, ``ReLU`` (clip), ``PixelShuffle`` and other data
  movement: zero.

Parameters are all weights (trainable or not), biases and PReLU slopes included. Papers often
count convolution kernels only; the per-layer rows let a caller sum what it needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tf_keras as keras

from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock
from tfsr.layers.pixel_shuffle import PixelShuffle

# Layers that move or add data but multiply nothing.
_ZERO_MAC_LAYERS = (
    keras.layers.InputLayer,
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Concatenate,
    keras.layers.ReLU,
    keras.layers.Reshape,
    keras.layers.Flatten,
    keras.layers.Dropout,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling2D,
    PixelShuffle,
)


@dataclass(frozen=True)
class LayerComplexity:
    """One layer's share: MACs summed over its calls, its parameters, its last output shape."""

    name: str
    kind: str
    output_shape: tuple
    macs: int
    params: int


@dataclass(frozen=True)
class Complexity:
    """MACs of one forward pass and parameters of a model, with the per-layer rows."""

    macs: int
    params: int
    layers: tuple[LayerComplexity, ...]

    def macs_of(self, *kinds: str) -> int:
        """MACs of the layers whose class name is one of ``kinds`` (e.g. ``"Conv2D"``)."""
        return sum(row.macs for row in self.layers if row.kind in kinds)


def _pixels(shape) -> int:
    """Batch times spatial positions of a ``(N, ..., C)`` shape."""
    return int(np.prod(shape[:-1]))


def _layer_macs(layer: keras.layers.Layer, input_shape, output_shape) -> int:
    if isinstance(layer, CollapsibleLinearBlock):
        k2_cin = layer.kernel_size**2 * input_shape[-1]
        p, c_out = layer.expanded_filters, layer.filters
        if not layer.collapsed_training:
            return _pixels(output_shape) * (k2_cin * p + p * c_out)
        return _pixels(output_shape) * k2_cin * c_out + k2_cin * p * c_out + p * c_out
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        k_h, k_w = layer.kernel_size
        return _pixels(output_shape) * k_h * k_w * output_shape[-1]
    if isinstance(layer, keras.layers.Conv2D) and not isinstance(
        layer, keras.layers.Conv2DTranspose
    ):
        k_h, k_w = layer.kernel_size
        return _pixels(output_shape) * k_h * k_w * input_shape[-1] // layer.groups * layer.filters
    if isinstance(layer, keras.layers.Dense):
        return _pixels(output_shape) * input_shape[-1] * layer.units
    if isinstance(layer, (keras.layers.PReLU, keras.layers.Multiply)):
        return int(np.prod(output_shape))
    if isinstance(layer, _ZERO_MAC_LAYERS):
        return 0
    raise ValueError(
        f"count_macs_and_params: no counting rule for layer {layer.name!r} of type "
        f"{type(layer).__name__}; supported: Conv2D, DepthwiseConv2D, Dense, "
        f"CollapsibleLinearBlock, PReLU, Multiply, nested models and "
        f"{', '.join(t.__name__ for t in _ZERO_MAC_LAYERS)}"
    )


def _full_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or any(
        isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape
    ):
        raise ValueError(
            f"input_shape must be (H, W, C) or (N, H, W, C) of positive integers, got {input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def count_macs_and_params(model: keras.Model, input_shape: Sequence[int]) -> Complexity:
    """Counts the MACs of one forward pass of ``model`` on ``input_shape``, and its parameters.

    The model is cloned onto a fixed-size input (its weights are not needed), so every layer's
    shapes are known; the module docstring gives the counting rules.

    Args:
        model: a Functional or Sequential tf_keras model with one 4-D input (nested models are
            counted through).
        input_shape: ``(H, W, C)`` (batch 1) or ``(N, H, W, C)``.

    Returns:
        A ``Complexity`` with total ``macs``, total ``params`` and one row per layer.

    Raises:
        ValueError: for a subclassed model, a bad ``input_shape`` or a layer type without a rule.

    Example:

    >>> from tfsr.models import sesr_model, collapse_model
    >>> c = count_macs_and_params(collapse_model(sesr_model("m5")), (360, 640, 1))
    >>> c.macs_of("Conv2D")  # 13520 kernel weights per pixel, 640 x 360 pixels
    3115008000
    """
    shape = _full_shape(input_shape)
    if not isinstance(model, keras.Model) or not model._is_graph_network:
        raise ValueError(
            "count_macs_and_params needs a Functional or Sequential model, got "
            f"{type(model).__name__}"
        )
    clone = keras.models.clone_model(model, input_tensors=keras.Input(batch_shape=shape))
    rows = []
    for layer in clone.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        macs = 0
        params = layer.count_params()
        nodes = layer.inbound_nodes  # a fresh clone: only this graph's calls
        for node in nodes:
            if isinstance(layer, keras.Model):
                macs += count_macs_and_params(layer, node.input_shapes).macs
            else:
                macs += _layer_macs(layer, node.input_shapes, node.output_shapes)
        output_shape = tuple(nodes[-1].output_shapes) if nodes else ()
        rows.append(LayerComplexity(layer.name, type(layer).__name__, output_shape, macs, params))
    return Complexity(
        macs=sum(r.macs for r in rows), params=clone.count_params(), layers=tuple(rows)
    )
