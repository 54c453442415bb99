"""MetaUpscale layer: Pos2Weight filters applied by tfsr.ops.meta_upscale, the scale a call input."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.layers import MetaUpscale
from tfsr.layers.pos2weight import phase_positions
from tfsr.ops import meta_upscale_twin
from tfsr.testing import run_layer_test


def _features(shape=(2, 6, 7, 4), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _randomize(layer, seed=0):
    """Random Pos2Weight weights (its output layer starts at zero, which would hide errors)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])


@pytest.mark.parametrize(
    "scale, expected_hw",
    [
        (2.0, (12, 14)),
        ([1.5, 1.5], (9, 10)),
        ([[2.5, 2.5], [2.5, 2.5]], (15, 17)),
        ([[2.0, 3.5], [2.0, 3.5]], (12, 24)),
    ],
)
def test_shapes_and_twin(scale, expected_hw):
    x = _features()
    layer = MetaUpscale(filters=3, hidden_units=8)
    layer([x, tf.constant(scale, tf.float32)])
    _randomize(layer)
    y = layer([x, tf.constant(scale, tf.float32)]).numpy()
    assert y.shape == (2, *expected_hw, 3)
    sv, sh = np.broadcast_to(np.asarray(scale, np.float64), (2, 2))[0]
    weights = layer.pos2weight(phase_positions(sv, sh, 6, 7))
    np.testing.assert_allclose(y, meta_upscale_twin(x, weights, sv, sh).numpy(), atol=1e-5)


def test_first_row_of_the_batch_scale_is_used():
    x = _features()
    layer = MetaUpscale(filters=1, hidden_units=8)
    layer([x, tf.constant(2.0)])
    _randomize(layer)
    a = layer([x, tf.constant([[2.5, 2.0], [3.0, 3.0]])]).numpy()
    b = layer([x, tf.constant([2.5, 2.0])]).numpy()
    np.testing.assert_array_equal(a, b)


def test_run_layer_test():
    scale = np.array([[2.5, 1.5], [2.5, 1.5]], np.float32)
    run_layer_test(
        MetaUpscale,
        dict(filters=2, kernel_size=3, hidden_units=8),
        [(2, 6, 5, 3), (2, 2)],
        input_data=[_features((2, 6, 5, 3)), scale],
        expected_output_shape=(2, 15, 7, 2),
        atol=1e-5,
    )


def test_gradients_reach_pos2weight():
    x = tf.constant(_features())
    layer = MetaUpscale(filters=2, hidden_units=8)

    def grads():
        with tf.GradientTape() as tape:
            y = layer([x, tf.constant([2.3, 1.7])])
            loss = tf.reduce_sum(tf.square(y - 1.0))
        return tape.gradient(loss, layer.trainable_variables)

    # hidden kernel, hidden bias, filters kernel, filters bias; at init the filters are zero,
    # so only the output layer gets a gradient.
    assert [float(tf.reduce_max(tf.abs(g))) > 0 for g in grads()] == [False, False, True, True]
    _randomize(layer)
    for grad in grads():
        assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0


def test_one_trace_serves_every_scale():
    layer = MetaUpscale(filters=1, hidden_units=8)
    x = tf.constant(_features((1, 10, 10, 4)))
    layer([x, tf.constant([2.0, 2.0])])  # builds the layer: variables are not made in the trace
    _randomize(layer)
    step = tf.function(
        lambda x, s: layer([x, s]),
        input_signature=[
            tf.TensorSpec((None, None, None, 4), tf.float32),
            tf.TensorSpec((None, 2), tf.float32),
        ],
    )
    for scale, hw in [((1.1, 1.1), (11, 11)), ((4.0, 2.0), (40, 20)), ((3.7, 3.7), (37, 37))]:
        y = step(x, tf.constant([scale]))
        assert y.shape == (1, *hw, 1)
        np.testing.assert_allclose(y.numpy(), layer([x, tf.constant([scale])]).numpy(), atol=1e-5)
    assert step.experimental_get_tracing_count() == 1


def test_functional_model_round_trip(tmp_path):
    features = keras.Input((None, None, 3))
    scale = keras.Input((2,))
    layer = MetaUpscale(1, hidden_units=8)
    model = keras.Model([features, scale], layer([features, scale]))
    _randomize(layer)
    path = str(tmp_path / "m.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    x, s = _features((1, 5, 5, 3)), np.array([[2.2, 2.2]], np.float32)
    np.testing.assert_allclose(restored([x, s]).numpy(), model([x, s]).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(filters=0), "filters must be a positive integer, got 0"),
        (dict(filters=1, kernel_size=4), "kernel_size must be odd, got 4"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MetaUpscale(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"expected inputs \[features, scale\]"):
        MetaUpscale(1)(tf.zeros((1, 4, 4, 2)))
    with pytest.raises(ValueError, match="scale must hold 2 values"):
        MetaUpscale(1)([tf.zeros((1, 4, 4, 2)), tf.constant([2.0, 2.0, 2.0])])
    with pytest.raises(ValueError, match="scale must be a scalar, a \\(2,\\) pair"):
        MetaUpscale(1)([tf.zeros((1, 4, 4, 2)), tf.zeros((1, 1, 2))])


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_the_scale_exact(policy):
    # Autocast would round the scale input to 16 bits (2.3 -> 2.296875 in bfloat16): another
    # output size. The features compute in the policy's dtype.
    layer = MetaUpscale(1, hidden_units=8, dtype=policy)
    x = tf.random.uniform((1, 10, 10, 4))
    for scale, rows in [(2.3, 23), (3.7, 37), (1.1, 11)]:
        y = layer([x, tf.constant([[scale, scale]])])
        assert y.shape == (1, rows, rows, 1) and y.dtype == layer.compute_dtype
    restored = MetaUpscale.from_config(layer.get_config())
    assert restored([x, tf.constant([[2.3, 2.3]])]).shape == (1, 23, 23, 1)
