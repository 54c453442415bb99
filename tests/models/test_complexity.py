"""count_macs_and_params against hand-computed numbers."""

import pytest
import tf_keras as keras

from tfsr.layers import CollapsibleLinearBlock, PixelShuffle
from tfsr.models.complexity import count_macs_and_params
from tfsr.models.sesr import collapse_model, sesr_model


def _tiny_model():
    x = inputs = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(3, 3, padding="same", name="conv")(x)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = CollapsibleLinearBlock(3, 3, 5, residual=True, name="collapsed")(x)
    x = CollapsibleLinearBlock(4, 1, 6, collapsed_training=False, name="expanded")(x)
    x = PixelShuffle(2, name="shuffle")(x)
    x = keras.layers.ReLU(max_value=1.0, name="clip")(x)
    return keras.Model(inputs, x)


def test_tiny_model_by_hand():
    c = count_macs_and_params(_tiny_model(), (2, 5, 7, 2))  # 70 positions per feature map
    rows = {r.name: (r.kind, r.output_shape, r.macs, r.params) for r in c.layers}
    assert rows == {
        "conv": ("Conv2D", (2, 5, 7, 3), 70 * 9 * 2 * 3, 9 * 2 * 3 + 3),
        "prelu": ("PReLU", (2, 5, 7, 3), 70 * 3, 3),
        # one 3x3 conv 3->3 per pixel, plus the collapse once per call (9*3*5*3 + 5*3)
        "collapsed": ("CollapsibleLinearBlock", (2, 5, 7, 3), 70 * 81 + 405 + 15, 135 + 5 + 15 + 3),
        # 1x1 conv 3->6, then 1x1 conv 6->4, per pixel
        "expanded": ("CollapsibleLinearBlock", (2, 5, 7, 4), 70 * (18 + 24), 18 + 6 + 24 + 4),
        "shuffle": ("PixelShuffle", (2, 10, 14, 1), 0, 0),
        "clip": ("ReLU", (2, 10, 14, 1), 0, 0),
    }
    assert c.macs == 3780 + 210 + 6090 + 2940
    assert c.params == 57 + 3 + 158 + 52
    assert c.macs_of("Conv2D", "PReLU") == 3780 + 210


def test_batch_defaults_to_one_and_collapse_cost_is_per_call():
    c = count_macs_and_params(_tiny_model(), (5, 7, 2))
    assert c.macs == 35 * (54 + 3 + 81 + 42) + 420


def test_shared_layers_and_nested_models():
    conv = keras.layers.Conv2D(2, 3, padding="same", name="shared")
    inner = keras.Sequential([keras.layers.Conv2D(4, 1, name="inner_conv")], name="inner")
    inputs = keras.Input((None, None, 2))
    x = conv(conv(inputs))
    x = inner(x)
    x = keras.layers.Dense(3, name="dense")(x)
    c = count_macs_and_params(keras.Model(inputs, x), (4, 4, 2))
    rows = {r.name: (r.macs, r.params) for r in c.layers}
    assert rows == {
        "shared": (2 * 16 * 9 * 2 * 2, 9 * 2 * 2 + 2),
        "inner": (16 * 2 * 4, 2 * 4 + 4),
        "dense": (16 * 4 * 3, 4 * 3 + 3),
    }


def test_sesr_m5_figures():
    # Collapsed M5 at 640x360: 13,520 kernel weights per LR pixel (the paper's convention).
    collapsed = count_macs_and_params(collapse_model(sesr_model("m5")), (360, 640, 1))
    assert collapsed.macs_of("Conv2D") == 13520 * 640 * 360
    assert collapsed.macs == 13520 * 640 * 360 + 5 * 16 * 640 * 360
    assert collapsed.params == 13700
    # Expanded training form, batch 32 of 64x64 (the authors quote 41.77 G per forward).
    expanded = count_macs_and_params(sesr_model("m5", collapsed_training=False), (32, 64, 64, 1))
    assert expanded.macs_of("CollapsibleLinearBlock") == 318720 * 32 * 64 * 64
    assert expanded.params == 320692


def test_errors():
    inputs = keras.Input((None, None, 2))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    with pytest.raises(ValueError, match="no counting rule for layer 'bn' of type BatchNorm"):
        count_macs_and_params(model, (4, 4, 2))
    with pytest.raises(ValueError, match="input_shape must be \\(H, W, C\\) or \\(N, H, W, C\\)"):
        count_macs_and_params(_tiny_model(), (4, 2))
    with pytest.raises(ValueError, match="positive integers, got \\(1, 0, 4, 2\\)"):
        count_macs_and_params(_tiny_model(), (1, 0, 4, 2))

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="needs a Functional or Sequential model, got Sub"):
        count_macs_and_params(Sub(), (4, 4, 2))
