"""DySample: layer contract, bilinear at init, a NumPy twin, groups, gradients, errors."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.ops.test_grid_sample import grid_sample_np, offsets_to_grid
from tfsr.layers import DySample
from tfsr.testing import check_gradients, run_layer_test

VARIANTS = [  # (style, dynamic_scope): DySample, DySample+, DySample-S, DySample-S+
    ("lp", False),
    ("lp", True),
    ("pl", False),
    ("pl", True),
]


def depth_to_space_np(x, s):
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, s, s, c // (s * s)).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h * s, w * s, c // (s * s))


def dysample_np(layer, x):
    """The layer in NumPy: offsets from the paper's formulas, then grid_sample_np."""
    s, g = layer.scale, layer.groups
    n, h, w, _ = x.shape
    feats = x if layer.style == "lp" else depth_to_space_np(x, s)
    offsets = feats @ layer.offset_kernel.numpy()[0, 0] + layer.offset_bias.numpy()
    if layer.dynamic_scope:
        scope = feats @ layer.scope_kernel.numpy()[0, 0]
        offsets = offsets * 0.5 / (1.0 + np.exp(-scope))
    else:
        offsets = offsets * 0.25
    if layer.style == "lp":
        offsets = depth_to_space_np(offsets, s)
    offsets = offsets.reshape(n, s * h, s * w, g, 2)
    return grid_sample_np(x, offsets_to_grid(offsets, s, h, w))


@pytest.mark.parametrize("style,dynamic_scope", VARIANTS)
def test_layer_contract_all_variants(style, dynamic_scope):
    layer = run_layer_test(
        DySample,
        dict(scale=2, style=style, groups=4, dynamic_scope=dynamic_scope),
        (2, 5, 6, 16),
        expected_output_shape=(2, 10, 12, 16),
        atol=1e-6,
    )
    # LR conv for "lp" (C -> 2 g s^2), HR conv for "pl" (C / s^2 -> 2 g).
    kernel_shape = (1, 1, 16, 32) if style == "lp" else (1, 1, 4, 8)
    assert tuple(layer.offset_kernel.shape) == kernel_shape
    assert (layer.scope_kernel is not None) == dynamic_scope
    assert len(layer.trainable_weights) == (3 if dynamic_scope else 2)


@pytest.mark.parametrize(
    "scale,groups,style,channels",
    [(2, 1, "lp", 4), (2, 2, "pl", 8), (3, 2, "lp", 6), (3, 1, "pl", 9), (4, 4, "pl", 16)],
)
def test_layer_contract_scales_and_groups(scale, groups, style, channels):
    run_layer_test(
        DySample,
        dict(scale=scale, style=style, groups=groups, dynamic_scope=True),
        (1, 3, 4, channels),
        expected_output_shape=(1, 3 * scale, 4 * scale, channels),
    )


def test_get_config():
    config = DySample(3, "pl", groups=2, dynamic_scope=True, name="up").get_config()
    assert {k: config[k] for k in ("scale", "style", "groups", "dynamic_scope", "name")} == {
        "scale": 3,
        "style": "pl",
        "groups": 2,
        "dynamic_scope": True,
        "name": "up",
    }


@pytest.mark.parametrize("style,dynamic_scope", VARIANTS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_zeroed_offsets_equal_bilinear_resize(style, dynamic_scope, scale):
    x = np.random.default_rng(scale).uniform(size=(2, 4, 5, 4 * scale * scale)).astype(np.float32)
    layer = DySample(scale, style, groups=4, dynamic_scope=dynamic_scope)
    layer.build(x.shape)
    layer.offset_kernel.assign(tf.zeros_like(layer.offset_kernel))
    want = tf.image.resize(x, (4 * scale, 5 * scale), "bilinear").numpy()
    np.testing.assert_allclose(layer(x).numpy(), want, atol=1e-5)


@pytest.mark.parametrize("style,dynamic_scope", VARIANTS)
def test_untrained_layer_is_close_to_bilinear(style, dynamic_scope):
    """With the default init (std 0.001) the offsets are tiny, so the output is nearly bilinear.

    Inputs in [0, 1], 16 channels: the offsets are at most 0.25 * 16 * 4 std = 0.016 px
    (0.5 * sigmoid(0) = 0.25 for the dynamic scope at init), and neighbouring values differ by at
    most 1, so the output is within 0.016 of bilinear; with std 1 instead it would be far off.
    """
    x = np.random.default_rng(0).uniform(size=(1, 6, 6, 16)).astype(np.float32)
    keras.utils.set_random_seed(0)
    layer = DySample(2, style, dynamic_scope=dynamic_scope)
    diff = np.abs(layer(x).numpy() - tf.image.resize(x, (12, 12), "bilinear").numpy())
    assert 0.0 < diff.max() < 0.016
    # Normal(0, 0.001): sample mean and std within 4 standard errors (32 or 512 weights).
    kernel = layer.offset_kernel.numpy()
    n = kernel.size
    assert abs(kernel.mean()) < 4 * 0.001 / np.sqrt(n)
    assert abs(kernel.std() - 0.001) < 4 * 0.001 / np.sqrt(2 * n)
    np.testing.assert_array_equal(layer.offset_bias.numpy(), 0.0)
    if dynamic_scope:  # no scope bias
        assert [w.name.split("/")[-1] for w in layer.weights][2:] == ["scope_kernel:0"]
        np.testing.assert_array_equal(layer.scope_kernel.numpy(), 0.0)


@pytest.mark.parametrize("style,dynamic_scope", VARIANTS)
@pytest.mark.parametrize("scale,groups", [(2, 4), (3, 2)])
def test_matches_numpy_twin(style, dynamic_scope, scale, groups):
    rng = np.random.default_rng(1)
    channels = 2 * scale * scale
    x = rng.uniform(size=(2, 4, 3, channels)).astype(np.float32)
    layer = DySample(scale, style, groups=groups, dynamic_scope=dynamic_scope)
    layer.build(x.shape)
    # Offsets of a few pixels, so that positions leave the image and cross pixels.
    for w in layer.weights:
        w.assign(rng.normal(0.0, 2.0, size=w.shape))
    np.testing.assert_allclose(layer(x).numpy(), dysample_np(layer, x), atol=1e-5)


def test_each_group_moves_its_own_channels():
    x = np.random.default_rng(2).uniform(size=(1, 4, 6, 6)).astype(np.float32)
    layer = DySample(2, "lp", groups=3)
    layer.build(x.shape)
    layer.offset_kernel.assign(tf.zeros_like(layer.offset_kernel))
    # Bias channels are (sub-row, sub-column, group, [dx, dy]): move group 1 by +4 px in x
    # (0.25 * 16), i.e. sample 4 input pixels further right.
    bias = np.zeros((2, 2, 3, 2), np.float32)
    bias[:, :, 1, 0] = 16.0
    layer.offset_bias.assign(bias.reshape(-1))
    out = layer(x).numpy()
    bilinear = tf.image.resize(x, (8, 12), "bilinear").numpy()
    np.testing.assert_allclose(out[..., [0, 1, 4, 5]], bilinear[..., [0, 1, 4, 5]], atol=1e-6)
    # Output column X samples input x = (X + 0.5) / 2 - 0.5 + 4, clamped to [0, 5].
    x_pos = np.clip((np.arange(12) + 0.5) / 2 - 0.5 + 4, 0, 5)  # 3.75, 4.25, 4.75, 5, 5, ...
    left = np.floor(x_pos).astype(int)
    right = np.minimum(left + 1, 5)
    frac = (x_pos - left)[:, None]
    rows = tf.image.resize(x, (8, 6), "bilinear").numpy()[0, :, :, 2:4]  # y is plain bilinear
    want = rows[:, left] * (1 - frac) + rows[:, right] * frac
    np.testing.assert_allclose(out[0, ..., 2:4], want, atol=1e-6)


@pytest.mark.parametrize("style,dynamic_scope", VARIANTS)
def test_gradients_wrt_input(style, dynamic_scope):
    """float64 Jacobian, through the features and through the predicted offsets."""
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(1, 2, 3, 4))
    layer = DySample(2, style, groups=2, dynamic_scope=dynamic_scope, dtype="float64")
    layer.build(x.shape)
    # Offsets up to about 0.2 px: positions stay at least 0.05 px from the pixel centres (the
    # base positions are +-0.25 px from them), where bilinear sampling has its kinks.
    for w in layer.weights:
        w.assign(rng.normal(0.0, 0.03, size=w.shape))
    offsets = layer._offsets(x).numpy()
    assert np.abs(offsets).max() < 0.2
    assert np.abs(offsets).max() > 0.01
    check_gradients(layer, [x])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(scale=1), "scale must be an integer >= 2, got 1"),
        (dict(scale=2.5), "scale must be an integer >= 2, got 2.5"),
        (dict(scale=True), "scale must be an integer >= 2, got True"),
        (dict(style="lc"), r"style must be one of \('lp', 'pl'\), got 'lc'"),
        (dict(groups=0), "groups must be a positive integer, got 0"),
        (dict(dynamic_scope="yes"), "dynamic_scope must be True or False, got 'yes'"),
    ],
)
def test_bad_configuration_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DySample(**kwargs)


@pytest.mark.parametrize(
    "kwargs,channels,match",
    [
        (dict(groups=4), 6, r"input channels \(6\) must be divisible by groups \(4\)"),
        (dict(style="pl", scale=3, groups=2), 8, r"style 'pl' needs input channels \(8\) "),
        (dict(style="pl", scale=2, groups=1), 6, r"divisible by scale\*\*2 \(4\)"),
    ],
)
def test_bad_configuration_at_build(kwargs, channels, match):
    layer = DySample(**kwargs)
    with pytest.raises(ValueError, match=match):
        layer(tf.zeros((1, 2, 2, channels)))


@pytest.mark.parametrize("style", ["lp", "pl"])
def test_mixed_precision(style):
    x = np.random.default_rng(4).uniform(size=(1, 4, 4, 8)).astype(np.float32)
    mixed = DySample(2, style, groups=2, dynamic_scope=True, dtype="mixed_float16")
    mixed.build(x.shape)
    reference = DySample(2, style, groups=2, dynamic_scope=True)
    reference.build(x.shape)
    for m, r in zip(mixed.weights, reference.weights, strict=True):
        assert m.dtype == tf.float32  # variables stay float32
        m.assign(np.random.default_rng(5).normal(0.0, 0.5, size=m.shape))
        r.assign(m)
    out = mixed(x)
    assert out.dtype == tf.float16
    np.testing.assert_allclose(out.numpy(), reference(x).numpy(), atol=1e-2)


def test_unknown_spatial_size():
    layer = DySample(3, "pl", groups=3)
    assert layer.compute_output_shape((None, None, 7, 9)).as_list() == [None, None, 21, 9]
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 9))])
    assert fn(tf.zeros((2, 3, 5, 9))).shape == (2, 9, 15, 9)
