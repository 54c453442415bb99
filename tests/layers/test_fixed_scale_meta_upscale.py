"""FixedScaleMetaUpscale: the strided-conv form of a MetaUpscale frozen at one scale."""

import numpy as np
import pytest
import tensorflow as tf

from tfsr.layers import FixedScaleMetaUpscale, MetaUpscale
from tfsr.layers.fixed_scale_meta_upscale import scale_fraction
from tfsr.testing import run_layer_test


@pytest.fixture(scope="module")
def meta_layer():
    """A MetaUpscale 3 -> 2 channels with random Pos2Weight weights (it starts at zero)."""
    layer = MetaUpscale(2, hidden_units=16)
    layer([tf.zeros((1, 4, 4, 3)), tf.constant([[2.0, 2.0]])])
    rng = np.random.default_rng(0)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape).astype(np.float32))
    return layer


def test_layer_contract():
    run_layer_test(
        FixedScaleMetaUpscale,
        {"filters": 2, "kernel_size": 3, "scale_v": 2.5, "scale_h": 1.5},
        (1, 6, 7, 3),
        expected_output_shape=(1, 15, 10, 2),
    )


@pytest.mark.parametrize(
    "scale", [(2, 2), (2.5, 2.5), (1.5, 3.0), (3.0, 1.5), (1.1, 2.3), (4, 4), (0.5, 1.3)]
)
def test_equals_meta_upscale_at_its_scale(meta_layer, scale):
    fixed = FixedScaleMetaUpscale.from_meta_upscale(meta_layer, *scale)
    rng = np.random.default_rng(1)
    for h, w in [(2, 3), (7, 9), (10, 11)]:
        x = rng.uniform(-1, 1, size=(2, h, w, 3)).astype(np.float32)
        ref = meta_layer([x, tf.constant([scale] * 2, tf.float32)]).numpy()
        out = fixed(x).numpy()
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-5)
        assert np.abs(ref).max() > 0.1  # the filters are not zero


def test_integer_scale_is_a_conv_and_pixel_shuffle(meta_layer):
    fixed = FixedScaleMetaUpscale.from_meta_upscale(meta_layer, 2)
    # x2: 2 x 2 phases, no shift: a 3x3 kernel with 4 * C_out channels, stride 1.
    assert fixed.kernel.shape == (3, 3, 3, 8)
    assert (fixed.period_v, fixed.step_v, fixed.shifts_v) == (2, 1, [0, 0])
    # x2.5 = 5 / 2: phases read rows 0, 0, 0, 1, 1 (+ 2u): a 4x4 kernel of stride 2.
    fixed = FixedScaleMetaUpscale.from_meta_upscale(meta_layer, 2.5)
    assert fixed.kernel.shape == (4, 4, 3, 50) and fixed.shifts_v == [0, 0, 0, 1, 1]


def test_scale_fraction_and_errors(meta_layer):
    assert scale_fraction(2.3) == (23, 10) and scale_fraction(np.float32(2.3)) == (23, 10)
    with pytest.raises(ValueError, match=r"3.14159 = 314159/100000 has 314159 phases"):
        scale_fraction(3.14159)
    with pytest.raises(ValueError, match="positive, finite number"):
        scale_fraction(-2)
    fixed = FixedScaleMetaUpscale(1, scale_v=2)
    fixed.build((None, None, None, 3))
    with pytest.raises(ValueError, match=r"phase filters must have shape \(2, 2, 3, 3, 3, 1\)"):
        fixed.set_phase_filters(np.zeros((5, 5, 3, 3, 3, 1)))
