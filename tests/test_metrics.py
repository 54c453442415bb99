"""Y-channel PSNR / SSIM (evaluation protocol) and the TF training-loop PSNR."""

import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

from tfsr.metrics import psnr, psnr_tf, ssim, y_channel


def _pair(shape=(24, 30, 3), noise=12, seed=0):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, size=shape).astype(np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-noise, noise + 1, size=shape), 0, 255)
    return sr.astype(np.uint8), hr


def test_psnr_known_mse():
    hr = np.full((10, 12), 100, np.uint8)
    sr = hr + 2  # MSE 4
    assert psnr(sr, hr) == pytest.approx(10 * np.log10(255**2 / 4), abs=1e-12)
    # Differences only in the cropped border do not count.
    sr = hr.copy()
    sr[:2], sr[:, -2:] = 0, 255
    assert psnr(sr, hr, crop_border=2) == float("inf")
    assert psnr(sr, hr) < 20


def test_identical_images():
    sr, hr = _pair()
    assert psnr(hr, hr) == float("inf")
    assert ssim(hr, hr, crop_border=2) == pytest.approx(1.0, abs=1e-12)


def test_colour_images_are_measured_on_bt601_y():
    sr, hr = _pair()
    r, g, b = (hr[..., k].astype(np.float64) for k in range(3))
    expected_y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    np.testing.assert_allclose(y_channel(hr), expected_y, atol=1e-10)
    r, g, b = (sr[..., k].astype(np.float64) for k in range(3))
    sr_y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    mse = np.mean((sr_y[3:-3, 3:-3] - expected_y[3:-3, 3:-3]) ** 2)
    assert psnr(sr, hr, crop_border=3) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-10)


def test_single_channel_is_its_own_y():
    sr, hr = _pair(shape=(20, 20))
    assert y_channel(hr[..., None]).shape == (20, 20)
    np.testing.assert_array_equal(y_channel(hr), hr.astype(np.float64))
    mse = np.mean((sr.astype(float) - hr) ** 2)
    assert psnr(sr, hr) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-10)
    # A float Y (0..255) is used as given.
    assert psnr(sr.astype(np.float32), hr[..., None]) == pytest.approx(psnr(sr, hr), abs=1e-10)


@pytest.mark.parametrize("crop", [0, 4])
def test_ssim_matches_skimage_gaussian_valid(crop):
    sr, hr = _pair(shape=(40, 52, 3), noise=30, seed=1)
    a, b = y_channel(sr), y_channel(hr)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    # skimage filters the whole image and averages over the part the window never leaves
    # the image: the 'valid' region of MATLAB's ssim_index.
    expected = structural_similarity(
        a,
        b,
        win_size=11,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    got = ssim(sr, hr, crop_border=crop)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got < 0.99  # not trivially 1


def test_errors():
    sr, hr = _pair()
    with pytest.raises(ValueError, match=r"SR and HR sizes differ: \(24, 30\) vs \(24, 29\)"):
        psnr(sr, hr[:, :-1])
    with pytest.raises(ValueError, match="too small for crop_border=8"):
        ssim(sr, hr, crop_border=8)
    with pytest.raises(ValueError, match="crop_border must be a non-negative integer"):
        psnr(sr, hr, crop_border=-1)
    with pytest.raises(ValueError, match="colour images must be uint8 RGB"):
        psnr(sr.astype(np.float32), hr)
    with pytest.raises(ValueError, match=r"every value in \[0, 1\]: the metrics take the 0..255"):
        psnr(sr[..., 0] / 255.0, hr[..., 0] / 255.0)
    with pytest.raises(ValueError, match=r"got shape \(24, 30, 4\)"):
        psnr(np.zeros((24, 30, 4), np.uint8), np.zeros((24, 30, 4), np.uint8))


def test_psnr_tf_batched():
    rng = np.random.default_rng(2)
    hr = rng.uniform(0, 1, (3, 16, 18, 1)).astype(np.float32)
    sr = np.clip(hr + rng.normal(0, 0.02, hr.shape), 0, 1).astype(np.float32)
    sr[1] = hr[1]
    got = psnr_tf(tf.constant(sr), tf.constant(hr), crop_border=2).numpy()
    assert got.shape == (3,)
    for i in (0, 2):
        mse = np.mean((sr[i, 2:-2, 2:-2].astype(np.float64) - hr[i, 2:-2, 2:-2]) ** 2)
        assert got[i] == pytest.approx(-10 * np.log10(mse), abs=1e-3)
    assert got[1] == float("inf")


def test_psnr_tf_equals_psnr_on_uint8_values_and_has_gradients():
    sr, hr = _pair(shape=(2, 20, 20), seed=3)
    sr_y = tf.Variable(sr[..., None] / 255.0, dtype=tf.float32)
    with tf.GradientTape() as tape:
        value = psnr_tf(sr_y, hr[..., None] / 255.0, crop_border=2)
        total = tf.reduce_sum(value)
    for i in range(2):
        assert value[i].numpy() == pytest.approx(psnr(sr[i], hr[i], crop_border=2), abs=1e-4)
    grad = tape.gradient(total, sr_y).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    np.testing.assert_array_equal(grad[:, :2], 0.0)  # cropped pixels do not count


def test_psnr_tf_errors():
    with pytest.raises(ValueError, match=r"expects \(N, H, W, C\) batches"):
        psnr_tf(tf.zeros((4, 4, 1)), tf.zeros((4, 4, 1)))
    with pytest.raises(ValueError, match="crop_border must be a non-negative integer"):
        psnr_tf(tf.zeros((1, 4, 4, 1)), tf.zeros((1, 4, 4, 1)), crop_border=1.5)
