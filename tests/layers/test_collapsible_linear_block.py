"""CollapsibleLinearBlock: expanded == collapsed == a plain conv holding collapse()."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.layers import CollapsibleLinearBlock
from tfsr.testing import run_layer_test

# (kernel_size, C_in, C_out, expanded_filters, residual)
CASES = [
    (1, 3, 5, 7, False),
    (2, 3, 4, 6, False),
    (3, 4, 4, 8, True),
    (3, 16, 16, 64, True),
    (5, 1, 16, 32, False),
    (5, 16, 4, 32, False),
    (5, 6, 6, 3, True),
]


def _randomize(block, rng, scale=1.0):
    """Sets every expanded variable, biases included, to nonzero random values (outputs ~ 1)."""
    block.set_weights(
        [
            rng.normal(
                0.0, scale / np.sqrt(np.prod(w.shape[:-1]) if w.ndim > 1 else 3.0), w.shape
            ).astype(w.dtype)
            for w in block.get_weights()
        ]
    )


def _numpy_collapse(weights, residual):
    k1, b1, k2, b2 = weights
    kernel = np.einsum("hwip,po->hwio", k1, k2[0, 0])
    if residual:
        k = kernel.shape[0]
        kernel[k // 2, k // 2] += np.eye(kernel.shape[2], kernel.shape[3])
    return kernel, b1 @ k2[0, 0] + b2


@pytest.mark.parametrize("k, c_in, c_out, p, residual", CASES)
def test_expanded_collapsed_and_plain_conv_agree(k, c_in, c_out, p, residual):
    rng = np.random.default_rng(k * 100 + c_in + p)
    x = rng.uniform(-1.0, 1.0, (2, 7, 6, c_in)).astype("float32")
    collapsed = CollapsibleLinearBlock(c_out, k, p, residual=residual)
    expanded = CollapsibleLinearBlock(c_out, k, p, residual=residual, collapsed_training=False)
    collapsed.build(x.shape)
    expanded.build(x.shape)
    _randomize(collapsed, rng)
    expanded.set_weights(collapsed.get_weights())

    kernel, bias = collapsed.collapse()
    want_kernel, want_bias = _numpy_collapse(collapsed.get_weights(), residual)
    np.testing.assert_allclose(kernel.numpy(), want_kernel, atol=1e-5)
    np.testing.assert_allclose(bias.numpy(), want_bias, atol=1e-5)
    assert np.abs(want_bias).min() > 0  # the bias path is really exercised

    conv = keras.layers.Conv2D(c_out, k, padding="same")
    conv.build(x.shape)
    conv.set_weights([kernel.numpy(), bias.numpy()])
    y_plain = conv(x).numpy()
    y_collapsed = collapsed(x).numpy()
    y_expanded = expanded(x).numpy()
    assert y_collapsed.shape == (2, 7, 6, c_out)
    np.testing.assert_allclose(y_collapsed, y_plain, atol=1e-5)
    np.testing.assert_allclose(y_expanded, y_plain, atol=1e-5)


def test_collapse_golden_values():
    block = CollapsibleLinearBlock(2, kernel_size=3, expanded_filters=2, residual=True)
    block.build((1, 4, 4, 2))
    k1 = np.zeros((3, 3, 2, 2), "float32")
    k1[0, 0] = [[1.0, 2.0], [3.0, 4.0]]  # tap (0, 0): rows = input channel, cols = p
    k2 = np.array([[[[1.0, -1.0], [0.5, 2.0]]]], "float32")  # (1, 1, p, C_out)
    block.set_weights([k1, np.array([1.0, 2.0], "float32"), k2, np.array([0.25, -0.5], "float32")])
    kernel, bias = block.collapse()
    # [[1, 2], [3, 4]] @ [[1, -1], [0.5, 2]] = [[2, 3], [5, 5]]
    np.testing.assert_array_equal(kernel.numpy()[0, 0], [[2.0, 3.0], [5.0, 5.0]])
    np.testing.assert_array_equal(kernel.numpy()[1, 1], np.eye(2))  # the short residual
    assert np.count_nonzero(kernel.numpy()) == 4 + 2
    # [1, 2] @ [[1, -1], [0.5, 2]] + [0.25, -0.5] = [2.25, 2.5]
    np.testing.assert_array_equal(bias.numpy(), [2.25, 2.5])


@pytest.mark.parametrize("residual", [False, True])
def test_collapsed_gradients_equal_expanded_gradients(residual):
    rng = np.random.default_rng(7)
    x = tf.constant(rng.uniform(-1.0, 1.0, (2, 6, 5, 4)).astype("float32"))
    target = tf.constant(rng.uniform(-1.0, 1.0, (2, 6, 5, 4)).astype("float32"))
    collapsed = CollapsibleLinearBlock(4, 3, 12, residual=residual)
    expanded = CollapsibleLinearBlock(4, 3, 12, residual=residual, collapsed_training=False)
    collapsed.build(x.shape)
    expanded.build(x.shape)
    _randomize(collapsed, rng)
    expanded.set_weights(collapsed.get_weights())

    def grads(block):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.abs(block(x) - target) ** 1.5)
        return tape.gradient(loss, [x, *block.trainable_weights])

    got, want = grads(collapsed), grads(expanded)
    assert len(collapsed.trainable_weights) == 4
    for g, w in zip(got, want, strict=True):
        assert np.abs(g.numpy()).max() > 1e-3  # every expanded variable gets a gradient
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("collapsed_training", [True, False])
def test_run_layer_test(collapsed_training):
    layer = run_layer_test(
        CollapsibleLinearBlock,
        dict(
            filters=3,
            kernel_size=3,
            expanded_filters=8,
            residual=True,
            collapsed_training=collapsed_training,
        ),
        (2, 5, 6, 3),
        expected_output_shape=(2, 5, 6, 3),
        atol=1e-5,
    )
    assert [w.shape for w in layer.trainable_weights] == [(3, 3, 3, 8), (8,), (1, 1, 8, 3), (3,)]


@keras.saving.register_keras_serializable(package="tfsr_test")
def _round_to_quarter(kernel):
    return tf.round(kernel * 4.0) / 4.0


def test_kernel_quantizer_sees_collapsed_kernel_and_serialises():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, (1, 5, 5, 2)).astype("float32")
    block = CollapsibleLinearBlock(3, 3, 6, kernel_quantizer=_round_to_quarter)
    block.build(x.shape)
    _randomize(block, rng, scale=0.5)
    kernel, bias = block.collapse()
    want = tf.nn.conv2d(x, _round_to_quarter(kernel), 1, "SAME") + bias
    np.testing.assert_allclose(block(x).numpy(), want.numpy(), atol=1e-5)
    assert not np.allclose(_round_to_quarter(kernel).numpy(), kernel.numpy())

    clone = CollapsibleLinearBlock.from_config(block.get_config())
    assert clone.kernel_quantizer is _round_to_quarter
    assert CollapsibleLinearBlock(3).get_config()["kernel_quantizer"] is None


@keras.saving.register_keras_serializable(package="tfsr_test")
def _per_channel_fake_quant(kernel):
    limit = tf.reduce_max(tf.abs(kernel), axis=(0, 1, 2))
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(
        kernel, -limit, limit, num_bits=8, narrow_range=True
    )


def test_fake_quant_hook_lets_gradients_reach_expanded_weights():
    rng = np.random.default_rng(11)
    x = tf.constant(rng.uniform(-1.0, 1.0, (1, 5, 5, 4)).astype("float32"))
    block = CollapsibleLinearBlock(4, 3, 8, residual=True, kernel_quantizer=_per_channel_fake_quant)
    block.build(x.shape)
    _randomize(block, rng)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(x) ** 2)
    grads = tape.gradient(loss, block.trainable_weights)
    assert all(g is not None and np.abs(g.numpy()).max() > 0 for g in grads)
    kernel = block.collapse()[0].numpy()
    step = np.abs(kernel).max(axis=(0, 1, 2)) / 127.0  # narrow range: 127 steps per side
    quantised = _per_channel_fake_quant(tf.constant(kernel)).numpy()
    np.testing.assert_allclose(quantised, np.round(kernel / step) * step, atol=1e-6)


def test_mixed_precision_float32_variables_float16_outputs():
    rng = np.random.default_rng(5)
    x = rng.uniform(-1.0, 1.0, (1, 6, 6, 8)).astype("float32")
    ref = CollapsibleLinearBlock(8, 3, 32, residual=True)
    mixed = CollapsibleLinearBlock(8, 3, 32, residual=True, dtype="mixed_float16")
    ref.build(x.shape)
    mixed.build(x.shape)
    _randomize(ref, rng)
    mixed.set_weights(ref.get_weights())
    assert all(w.dtype == tf.float32 for w in mixed.weights)
    y = mixed(x)
    assert y.dtype == tf.float16
    np.testing.assert_allclose(y.numpy().astype("float32"), ref(x).numpy(), atol=2e-2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=0), "filters must be a positive integer, got 0"),
        (dict(filters=4, kernel_size=2.5), "kernel_size must be a positive integer, got 2.5"),
        (dict(filters=4, expanded_filters=True), "expanded_filters must be a positive integer"),
        (dict(filters=4, kernel_size=4, residual=True), "odd kernel_size.*got kernel_size=4"),
        (dict(filters=4, kernel_quantizer=3), "kernel_quantizer must be callable or None, got 3"),
        (
            dict(filters=4, collapsed_training=False, kernel_quantizer=tf.identity),
            "kernel_quantizer needs collapsed_training=True",
        ),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CollapsibleLinearBlock(**kwargs)


def test_bad_inputs():
    with pytest.raises(
        ValueError,
        match="residual=True needs input channels == filters, got input "
        "channels 3 and filters 4",
    ):
        CollapsibleLinearBlock(4, residual=True)(tf.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="channel dimension of the input must be known"):
        CollapsibleLinearBlock(4).build((None, None, None, None))
    with pytest.raises(ValueError, match="collapse\\(\\) needs a built block"):
        CollapsibleLinearBlock(4).collapse()
    block = CollapsibleLinearBlock(4, collapsed_training=False)
    block.kernel_quantizer = tf.identity
    with pytest.raises(ValueError, match="kernel_quantizer needs collapsed_training=True"):
        block(tf.zeros((1, 4, 4, 2)))


@pytest.mark.parametrize("k, c_in, c_out, p, residual", [c for c in CASES if c[3] >= c[2]])
def test_set_collapsed_inverts_collapse(k, c_in, c_out, p, residual):
    rng = np.random.default_rng(k * 100 + c_in)
    block = CollapsibleLinearBlock(c_out, kernel_size=k, expanded_filters=p, residual=residual)
    block.build((None, None, None, c_in))
    _randomize(block, rng)
    project_before = block.project_kernel.numpy()
    expand_bias_before = block.expand_bias.numpy()
    kernel = rng.normal(0.0, 0.3, (k, k, c_in, c_out)).astype("float32")
    bias = rng.normal(0.0, 0.3, (c_out,)).astype("float32")
    block.set_collapsed(kernel, bias)
    collapsed_kernel, collapsed_bias = block.collapse()
    np.testing.assert_allclose(collapsed_kernel.numpy(), kernel, atol=1e-5)
    np.testing.assert_allclose(collapsed_bias.numpy(), bias, atol=1e-5)
    # The projection and the expansion bias are kept; both forms compute the target conv.
    np.testing.assert_array_equal(block.project_kernel.numpy(), project_before)
    np.testing.assert_array_equal(block.expand_bias.numpy(), expand_bias_before)
    x = rng.uniform(-1.0, 1.0, (2, 6, 5, c_in)).astype("float32")
    conv = tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias).numpy()
    block.collapsed_training = False
    np.testing.assert_allclose(block(x).numpy(), conv, atol=1e-4)


def test_set_collapsed_of_own_collapse_changes_little():
    block = CollapsibleLinearBlock(4, kernel_size=3, expanded_filters=8, residual=True)
    block.build((None, None, None, 4))
    _randomize(block, np.random.default_rng(3))
    before = block.get_weights()
    block.set_collapsed(*block.collapse())
    for a, b in zip(block.get_weights(), before, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_set_collapsed_errors():
    with pytest.raises(ValueError, match="set_collapsed\\(\\) needs a built block"):
        CollapsibleLinearBlock(4).set_collapsed(np.zeros((3, 3, 2, 4)), np.zeros(4))
    block = CollapsibleLinearBlock(4, kernel_size=3, expanded_filters=8)
    block.build((None, None, None, 2))
    with pytest.raises(ValueError, match="expects a kernel \\(3, 3, 2, 4\\) and a bias \\(4,\\)"):
        block.set_collapsed(np.zeros((3, 3, 4, 4)), np.zeros(4))
    narrow = CollapsibleLinearBlock(6, kernel_size=3, expanded_filters=3)
    narrow.build((None, None, None, 2))
    with pytest.raises(ValueError, match="needs a projection of rank 6 \\(expanded_filters=3\\)"):
        narrow.set_collapsed(np.zeros((3, 3, 2, 6)), np.zeros(6))
