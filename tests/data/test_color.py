"""BT.601 YCbCr conversion (MATLAB rgb2ycbcr / ycbcr2rgb)."""

import numpy as np
import pytest
import tensorflow as tf
from skimage.color import rgb2ycbcr

from tfsr.data.color import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb


def test_golden_values():
    rgb = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    expected = np.array(
        [
            [16.0, 128.0, 128.0],
            [235.0, 128.0, 128.0],
            [16.0 + 65.481, 128.0 - 37.797, 128.0 + 112.0],
            [16.0 + 24.966, 128.0 + 112.0, 128.0 - 18.214],
        ]
    )
    np.testing.assert_allclose(rgb_to_ycbcr(rgb)[0] * 255, expected, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(rgb)[0, :, 0] * 255, expected[:, 0], atol=1e-12)


def test_matches_skimage():
    rgb = np.random.default_rng(0).uniform(0, 1, (6, 7, 3))
    # skimage returns the same transform on the 0..255 scale.
    np.testing.assert_allclose(rgb_to_ycbcr(rgb) * 255, rgb2ycbcr(rgb), atol=1e-10)


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-13), (np.float32, 1e-6)])
def test_round_trip_numpy_and_tf(dtype, atol):
    rgb = np.random.default_rng(1).uniform(0, 1, (2, 5, 4, 3)).astype(dtype)
    ycbcr = rgb_to_ycbcr(rgb)
    assert ycbcr.dtype == dtype
    np.testing.assert_allclose(ycbcr_to_rgb(ycbcr), rgb, atol=atol)
    ycbcr_tf = rgb_to_ycbcr(tf.constant(rgb))
    assert ycbcr_tf.dtype == tf.as_dtype(dtype)
    np.testing.assert_allclose(ycbcr_tf.numpy(), ycbcr, atol=atol)
    np.testing.assert_allclose(ycbcr_to_rgb(ycbcr_tf).numpy(), rgb, atol=atol)
    np.testing.assert_allclose(rgb_to_y(tf.constant(rgb)).numpy(), ycbcr[..., :1], atol=atol)


def test_grey_is_r_equals_g_equals_b():
    grey = np.random.default_rng(2).uniform(0, 1, (4, 5))
    y = rgb_to_y(grey)
    assert y.shape == (4, 5)
    np.testing.assert_allclose(y, (16 + 219 * grey) / 255, atol=1e-14)
    np.testing.assert_allclose(rgb_to_y(grey[..., None])[..., 0], y, atol=0)
    np.testing.assert_allclose(rgb_to_y(tf.constant(grey)).numpy(), y, atol=1e-14)
    ycbcr = rgb_to_ycbcr(grey)
    assert ycbcr.shape == (4, 5, 3)
    np.testing.assert_allclose(ycbcr[..., 1:], 128 / 255, atol=1e-14)
    np.testing.assert_allclose(rgb_to_ycbcr(tf.constant(grey[..., None])).numpy(), ycbcr)


def test_errors():
    with pytest.raises(TypeError, match="got dtype uint8 .divide uint8 images by 255 first"):
        rgb_to_y(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(TypeError, match="got dtype uint8"):
        rgb_to_ycbcr(tf.zeros((2, 2, 3), tf.uint8))
    with pytest.raises(ValueError, match=r"channels last, got shape \(2, 2, 4\)"):
        rgb_to_ycbcr(np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match=r"ycbcr_to_rgb expects \(..., 3\)"):
        ycbcr_to_rgb(np.zeros((2, 2, 1)))
