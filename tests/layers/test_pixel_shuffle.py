"""PixelShuffle: depth_to_space as a serialisable layer."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.layers import PixelShuffle
from tfsr.testing import run_layer_test


def _numpy_pixel_shuffle(x, b):
    n, h, w, c = x.shape
    out = np.empty((n, h * b, w * b, c // (b * b)), x.dtype)
    for dy in range(b):
        for dx in range(b):
            k = dy * b + dx
            out[:, dy::b, dx::b, :] = x[..., k * (c // (b * b)) : (k + 1) * (c // (b * b))]
    return out


@pytest.mark.parametrize("block_size, channels", [(2, 4), (2, 12), (3, 9), (4, 32)])
def test_matches_depth_to_space_and_numpy(block_size, channels):
    x = np.random.default_rng(block_size).normal(size=(2, 3, 5, channels)).astype("float32")
    y = PixelShuffle(block_size)(x).numpy()
    np.testing.assert_array_equal(y, tf.nn.depth_to_space(x, block_size).numpy())
    np.testing.assert_array_equal(y, _numpy_pixel_shuffle(x, block_size))


def test_golden_2x2():
    x = np.arange(4, dtype="float32").reshape(1, 1, 1, 4)
    np.testing.assert_array_equal(PixelShuffle(2)(x).numpy()[0, :, :, 0], [[0, 1], [2, 3]])


def test_run_layer_test():
    run_layer_test(
        PixelShuffle, dict(block_size=3), (2, 4, 5, 18), expected_output_shape=(2, 12, 15, 2)
    )


def test_output_shape_with_unknown_size():
    y = PixelShuffle(2)(keras.Input((None, 7, 8)))
    assert y.shape.as_list() == [None, None, 14, 2]
    assert PixelShuffle(3).compute_output_shape((None, 4, None, 18)).as_list() == [
        None,
        12,
        None,
        2,
    ]


@pytest.mark.parametrize("block_size", [1, 0, 2.0, True, "2"])
def test_bad_block_size(block_size):
    with pytest.raises(ValueError, match=f"block_size must be an integer >= 2, got {block_size!r}"):
        PixelShuffle(block_size)


def test_channels_not_divisible():
    with pytest.raises(ValueError, match="multiple of block_size\\*\\*2 = 4, got input shape"):
        PixelShuffle(2)(tf.zeros((1, 2, 2, 6)))
