"""Tests for tfsr.quantization.configs."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.quantization import configs


def test_fake_quant_kernel_per_channel_matches_numpy():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
    kernel[..., 2] *= 0.01  # a channel of much smaller range keeps its own step
    out = configs.fake_quant_kernel_per_channel(tf.constant(kernel)).numpy()
    step = np.abs(kernel).max(axis=(0, 1, 2)) / 127.0  # symmetric, narrow range
    expected = np.round(kernel / step) * step
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6 * np.abs(kernel).max())
    assert len(np.unique(np.round(out[..., 2] / step[2]))) > 10


def test_fake_quant_kernel_gradient_is_straight_through():
    kernel = tf.constant(np.linspace(-1, 1, 2 * 2 * 1 * 3, dtype=np.float32).reshape(2, 2, 1, 3))
    with tf.GradientTape() as tape:
        tape.watch(kernel)
        loss = tf.reduce_sum(configs.fake_quant_kernel_per_channel(kernel) * 3.0)
    np.testing.assert_allclose(tape.gradient(loss, kernel).numpy(), 3.0)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (configs.OutputQuantizeConfig, {}),
        (configs.OutputQuantizeConfig, {"output_range": (0.0, 1.0)}),
        (configs.Conv2DQuantizeConfig, {"quantize_output": False}),
        (configs.PReLUQuantizeConfig, {}),
        (configs.NoOpQuantizeConfig, {}),
        (configs.CollapsibleBlockQuantizeConfig, {}),
    ],
)
def test_config_round_trip(cls, kwargs):
    config = cls(**kwargs)
    clone = cls.from_config(config.get_config())
    assert clone.get_config() == config.get_config()
    assert len(clone.get_output_quantizers(None)) == len(config.get_output_quantizers(None))


def test_fixed_range_is_not_calibrated_and_noop_quantizes_nothing():
    fixed = configs.OutputQuantizeConfig(output_range=(0.0, 1.0))
    assert fixed.output_quantizer.ema_decay == 1.0  # never updated in training
    assert fixed.range_quantizers() == []
    assert len(configs.OutputQuantizeConfig().range_quantizers()) == 1
    assert configs.NoOpQuantizeConfig().get_output_quantizers(None) == []


def test_bad_output_range_raises():
    with pytest.raises(ValueError, match=r"low < high, got \(1.0, 0.0\)"):
        configs.OutputQuantizeConfig(output_range=(1.0, 0.0))


def test_range_quantizer_serialises():
    q = configs.RangeQuantizer(ema_decay=0.9)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(q))
    assert restored == q and restored.ema_decay == 0.9
