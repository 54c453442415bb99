"""Pos2Weight: the Meta-SR weight-prediction MLP and its phase-pair inputs."""

from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

from tfsr import inference
from tfsr.layers import Pos2Weight
from tfsr.layers.fixed_scale_meta_upscale import scale_fraction
from tfsr.layers.pos2weight import SHORT_DENOMINATOR, phase_positions, snap_fraction, snap_scale
from tfsr.testing import run_layer_test


def test_phase_positions_golden():
    # x2.5 rows: offsets 0, .4, .8, .2, .6; x2 columns: 0, .5.
    pos = phase_positions(2.5, 2.0, 4, 4).numpy()
    assert pos.shape == (5, 2, 4)
    np.testing.assert_allclose(pos[:, 0, 0], [0.0, 0.4, 0.8, 0.2, 0.6], atol=1e-7)
    np.testing.assert_allclose(pos[0, :, 1], [0.0, 0.5], atol=1e-7)
    np.testing.assert_allclose(pos[..., 2], 0.4, atol=1e-7)
    np.testing.assert_allclose(pos[..., 3], 0.5, atol=1e-7)


def test_phase_positions_float32_scale_is_rational():
    # float32(2.3) would need one phase per output row without the snap; 23 with it.
    pos = phase_positions(tf.constant(2.3, tf.float32), tf.constant(1.1, tf.float32), 20, 20)
    assert pos.shape == (23, 11, 4)
    assert float(snap_scale(tf.constant(2.3, tf.float32))) == 2.3


def test_scales_snap_to_short_fractions_else_five_decimals():
    # A fraction given as a float (4/3, even in float32) is that fraction: 4 phases, not 133,333.
    assert phase_positions(tf.constant(4 / 3, tf.float32), 2.5, 9, 9).shape == (4, 5, 4)
    values = [4 / 3, np.float32(4 / 3), 1.33333, 2.37, 3.14159, 2.0]
    expected = [4 / 3, 4 / 3, 1.33333, 2.37, 3.14159, 2.0]
    np.testing.assert_array_equal(snap_scale(tf.constant(values, tf.float64)).numpy(), expected)
    assert [snap_fraction(v) for v in values] == [
        Fraction(4, 3),
        Fraction(4, 3),
        Fraction(133333, 100000),
        Fraction(237, 100),
        Fraction(314159, 100000),
        Fraction(2),
    ]
    assert scale_fraction(4 / 3) == (4, 3)
    # Tiles and whole-grid padding align to the same short fractions.
    assert inference.GRID_DENOMINATOR == SHORT_DENOMINATOR


def test_snap_scale_is_snap_fraction():
    # The graph and the Python snap agree over the op's whole range; snap_scale used to take
    # the largest close fraction, and above r = 100 or so there can be several.
    rng = np.random.default_rng(0)
    q = rng.integers(1, SHORT_DENOMINATOR + 1, 500)
    values = np.concatenate(
        [10 ** rng.uniform(-4, 4, 3000), rng.integers(1, 10**6, 500) / q, 1e4 * (1 - 1e-7 * q)]
    )
    got = snap_scale(tf.constant(values, tf.float64)).numpy()
    np.testing.assert_array_equal(got, [float(snap_fraction(v)) for v in values])


def test_matches_numpy_mlp():
    layer = Pos2Weight(kernel_size=3, in_channels=2, out_channels=3, hidden_units=8)
    pos = phase_positions(1.5, 3.0, 6, 6)
    assert not np.any(layer(pos).numpy())  # zero-initialised output layer
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    out = layer(pos).numpy()
    assert out.shape == (3, 3, 3, 3, 2, 3)
    w1, b1, w2, b2 = (w.numpy() for w in layer.weights)
    expect = (np.maximum(pos.numpy() @ w1 + b1, 0) @ w2 + b2) / np.sqrt(3 * 3 * 2)
    np.testing.assert_allclose(out, expect.reshape(3, 3, 3, 3, 2, 3), rtol=1e-5, atol=1e-6)


def test_run_layer_test():
    run_layer_test(
        Pos2Weight,
        dict(kernel_size=3, in_channels=4, out_channels=1, hidden_units=16),
        (5, 2, 4),
        expected_output_shape=(5, 2, 3, 3, 4, 1),
        symbolic_batch=True,
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kernel_size=2, in_channels=1, out_channels=1), "kernel_size must be odd, got 2"),
        (dict(kernel_size=3, in_channels=0, out_channels=1), "in_channels must be a positive"),
        (dict(kernel_size=3, in_channels=1, out_channels=1.5), "out_channels must be a positive"),
        (dict(kernel_size=3, in_channels=1, out_channels=1, hidden_units=-1), "hidden_units"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Pos2Weight(**kwargs)


def test_bad_positions():
    with pytest.raises(ValueError, match="last axis of 4"):
        Pos2Weight(3, 1, 1)(tf.zeros((2, 2, 3)))
