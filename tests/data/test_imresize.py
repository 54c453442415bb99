"""MATLAB-exact bicubic imresize, to_uint8 and modcrop."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfsr.data import io
from tfsr.data.imresize import (
    _resize_axis_np,
    bicubic_contributions,
    imresize,
    modcrop,
    output_length,
    scale_pair,
    scale_ratio,
    to_uint8,
)


def _lr_pairs(shared_data, dataset, scale):
    """(name, HR uint8 (H, W, C), LR uint8) for every image of ``dataset`` at ``scale``."""
    root = os.path.join(shared_data, "val", dataset)
    for path in io.list_images(os.path.join(root, "HR")):
        name = os.path.splitext(os.path.basename(path))[0]
        lr_path = os.path.join(root, "LR_bicubic", f"X{scale}", f"{name}x{scale}.png")
        yield name, io.read_image(path), io.read_image(lr_path)


def _graph_resize(image: np.ndarray, **kwargs) -> np.ndarray:
    """imresize inside tf.data map, on an image whose size is unknown when the graph is built."""
    ds = tf.data.Dataset.from_generator(
        lambda: iter([image]), output_signature=tf.TensorSpec([None, None, None], tf.uint8)
    )
    return next(iter(ds.map(lambda x: imresize(x, **kwargs)))).numpy()


# ---------------------------------------------------------------------------------------------
# THE test: the official MATLAB LR files, bit for bit.


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_lr_files_bit_exact(shared_data, scale):
    for name, hr, lr in _lr_pairs(shared_data, "Set5", scale):
        hr = modcrop(hr, scale)
        numpy_lr = imresize(hr, 1 / scale)
        assert numpy_lr.dtype == np.uint8 and numpy_lr.shape == lr.shape, name
        np.testing.assert_array_equal(numpy_lr, lr, err_msg=f"{name} x{scale}, NumPy path")
        eager_lr = imresize(tf.constant(hr), 1 / scale).numpy()
        np.testing.assert_array_equal(eager_lr, lr, err_msg=f"{name} x{scale}, TF static path")
        graph_lr = _graph_resize(hr, scale=1 / scale)
        np.testing.assert_array_equal(graph_lr, lr, err_msg=f"{name} x{scale}, TF run-time path")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set14_lr_files_bit_exact(shared_data, scale):
    for name, hr, lr in _lr_pairs(shared_data, "Set14", scale):
        np.testing.assert_array_equal(
            imresize(modcrop(hr, scale), 1 / scale), lr, err_msg=f"{name} x{scale}"
        )


# ---------------------------------------------------------------------------------------------
# Kernel weights: hand-computed golden values.


def test_contributions_x2_golden():
    # Output pixel 1 of a x2 upscale sits at input coordinate 0.75 (1-based); taps at -2..3 are
    # 2.75, 1.75, 0.75, -0.25, -1.25, -2.25 away; Keys' a = -0.5 kernel gives these weights.
    weights, indices = bicubic_contributions(4, 8, 2.0)
    np.testing.assert_array_equal(
        weights[0], [0.0, -0.0234375, 0.2265625, 0.8671875, -0.0703125, 0.0]
    )
    # 1-based -2, -1, 0 mirror to 3, 2, 1 (symmetric border: the edge pixel repeats).
    np.testing.assert_array_equal(indices[0], [2, 1, 0, 0, 1, 2])
    # Output pixel 8 sits at 4.25: taps 2..7 (1-based), 5, 6, 7 mirror to 4, 3, 2.
    np.testing.assert_array_equal(indices[-1], [1, 2, 3, 3, 2, 1])


def test_contributions_antialiased_x1_2():
    # Shrinking by 2 widens the kernel to 8 input pixels: output 1 is centred at 1.5 (1-based),
    # its 10 taps start at floor(1.5 - 4) = -3.
    weights, indices = bicubic_contributions(8, 4, 0.5)
    assert weights.shape == (4, 10)
    np.testing.assert_array_equal(indices[0], [3, 2, 1, 0, 0, 1, 2, 3, 4, 5])
    d = 1.5 - np.arange(-3.0, 7.0)  # distances to taps -3..6 (1-based)
    ad = np.abs(d * 0.5)
    k = np.where(
        ad <= 1,
        1.5 * ad**3 - 2.5 * ad**2 + 1,
        np.where(ad <= 2, -0.5 * ad**3 + 2.5 * ad**2 - 4 * ad + 2, 0.0),
    )
    np.testing.assert_allclose(weights[0], k / k.sum(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-15)


def test_uint8_rounds_between_passes_as_matlab():
    # MATLAB keeps the uint8 class between its two passes: same as resizing each axis by hand.
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(1, 20, 17, 3)).astype(np.uint8)
    got = imresize(image, (2.0, 0.5))  # the smaller scale (horizontal) goes first
    x = image.astype(np.float64)
    x = np.floor(np.clip(_resize_axis_np(x, 2, 0.5, 9), 0, 255) + 0.5)
    x = np.floor(np.clip(_resize_axis_np(x, 1, 2.0, 40), 0, 255) + 0.5)
    np.testing.assert_array_equal(got, x.astype(np.uint8))


# ---------------------------------------------------------------------------------------------
# Shapes, dtypes, layouts, paths.


@pytest.mark.parametrize(
    "shape, kwargs, expected",
    [
        ((5, 7, 3), dict(scale=2.5), (13, 18, 3)),  # ceil(12.5), ceil(17.5)
        ((5, 7), dict(scale=3), (15, 21)),
        ((2, 6, 9, 1), dict(scale=1 / 3), (2, 2, 3, 1)),
        ((10, 10, 3), dict(scale=1.1), (11, 11, 3)),  # 1.1 * 10 is 11.000000000000002
        ((6, 8, 3), dict(scale=(1.5, 0.5)), (9, 4, 3)),
        ((6, 8, 3), dict(output_size=(7, 13)), (7, 13, 3)),
    ],
)
def test_output_shapes(shape, kwargs, expected):
    image = np.zeros(shape, np.float32)
    assert imresize(image, **kwargs).shape == expected
    assert tuple(imresize(tf.constant(image), **kwargs).shape) == expected


def test_output_length_is_the_length_imresize_makes():
    assert output_length(180, 0.55) == 99  # 0.55 * 180 is 99.00000000000001
    assert output_length(10, 1.1) == 11 and output_length(5, 2.5) == 13
    for n in (100, 180, 321, 481):
        for f in (0.07, 0.55, 0.6, 0.81, 1.3):
            assert imresize(np.zeros((n, 1), np.uint8), f).shape[0] == output_length(n, f)


def test_dtypes_and_constant_image():
    for dtype, value in [(np.uint8, 77), (np.float32, 0.3), (np.float64, 0.3)]:
        image = np.full((9, 11, 3), value, dtype)
        for scale in (2, 1 / 4, 1.3, (0.7, 2.5)):
            out = imresize(image, scale)
            assert out.dtype == (np.uint8 if dtype == np.uint8 else np.float32)
            # Weights sum to one: a flat image stays flat.
            np.testing.assert_allclose(out, value, rtol=1e-6)


def test_scale_one_is_identity():
    image = np.random.default_rng(1).uniform(0, 1, (7, 5, 3))
    np.testing.assert_array_equal(imresize(image, 1), image.astype(np.float32))
    np.testing.assert_array_equal(imresize(image, output_size=(7, 5)), image.astype(np.float32))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scale=2.5),
        dict(scale=1 / 3),
        dict(scale=(1.3, 0.4)),
        dict(output_size=(50, 11)),
        dict(output_size=(11, 50)),
    ],
)
def test_numpy_and_tf_paths_agree_bit_for_bit(kwargs):
    rng = np.random.default_rng(2)
    image8 = rng.integers(0, 256, size=(37, 23, 3)).astype(np.uint8)
    imagef = rng.uniform(-0.2, 1.2, size=(37, 23, 3))
    for image, spec_dtype in [(image8, tf.uint8), (imagef, tf.float64)]:
        expected = imresize(image, **kwargs)
        np.testing.assert_array_equal(imresize(tf.constant(image), **kwargs).numpy(), expected)
        for spec in ([None, None, None], [37, None, 3], [None, 23, 3], [37, 23, 3]):
            fn = tf.function(
                lambda x, kw=kwargs: imresize(x, **kw),
                input_signature=[tf.TensorSpec(spec, spec_dtype)],
            )
            got = fn(tf.constant(image)).numpy()
            np.testing.assert_array_equal(got, expected, err_msg=f"{kwargs} {spec}")


def test_batched_equals_per_image():
    batch = np.random.default_rng(3).integers(0, 256, size=(3, 8, 10, 3)).astype(np.uint8)
    out = imresize(batch, 1 / 2)
    assert out.shape == (3, 4, 5, 3)
    for i in range(3):
        np.testing.assert_array_equal(out[i], imresize(batch[i], 1 / 2))
    np.testing.assert_array_equal(imresize(batch[0, :, :, 1], 2), imresize(batch[0], 2)[..., 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "exactly one of scale and output_size"),
        (dict(scale=2, output_size=(4, 4)), "exactly one of scale and output_size"),
        (dict(scale=0), "scale must be positive"),
        (dict(scale="two"), "scale must be a positive number or a"),
        (dict(scale=(1, 2, 3)), r"scale must be a number or a \(vertical, horizontal\) pair"),
        (dict(output_size=(0, 4)), "output_size must be two positive integers"),
    ],
)
def test_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        imresize(np.zeros((4, 4)), **kwargs)


def test_image_errors():
    with pytest.raises(ValueError, match=r"got shape \(4,\)"):
        imresize(np.zeros(4), 2)
    with pytest.raises(TypeError, match="uint8 or floating point, got dtype int32"):
        imresize(np.zeros((4, 4), np.int32), 2)
    unknown_rank = tf.function(
        lambda x: imresize(x, 2), input_signature=[tf.TensorSpec(None, tf.float32)]
    )
    with pytest.raises(ValueError, match="got unknown rank"):
        unknown_rank.get_concrete_function()


# ---------------------------------------------------------------------------------------------
# to_uint8 and modcrop.


def test_to_uint8_rounds_half_away_from_zero_and_clips():
    x = np.array([2.5, 3.5, 0.4999, -1.0, 254.5, 300.0, 127.5000001])
    expected = np.array([3, 4, 0, 0, 255, 255, 128], np.uint8)
    np.testing.assert_array_equal(to_uint8(x), expected)
    np.testing.assert_array_equal(to_uint8(tf.constant(x, tf.float32)).numpy(), expected)
    assert to_uint8(tf.constant(x)).dtype == tf.uint8


@pytest.mark.parametrize(
    "shape, scale, expected",
    [
        ((11, 14, 3), 3, (9, 12, 3)),
        ((11, 14), 2, (10, 14)),
        ((2, 11, 14, 1), 4, (2, 8, 12, 1)),
        ((11, 14, 3), 2.5, (10, 10, 3)),  # 2.5 = 5/2: multiples of 5
        ((27, 14, 3), 1.3, (26, 13, 3)),  # 13/10: multiples of 13
        ((11, 14, 3), (2, 3), (10, 12, 3)),
    ],
)
def test_modcrop_shapes(shape, scale, expected):
    image = np.arange(np.prod(shape)).reshape(shape)
    out = modcrop(image, scale)
    assert out.shape == expected
    np.testing.assert_array_equal(out, image[tuple(slice(0, n) for n in expected)])
    spec = tf.TensorSpec([None] * len(shape), tf.int64)
    fn = tf.function(lambda x: modcrop(x, scale), input_signature=[spec])
    np.testing.assert_array_equal(fn(tf.constant(image)).numpy(), out)


def test_modcrop_errors():
    with pytest.raises(ValueError, match="scale must be positive"):
        modcrop(np.zeros((4, 4)), -2)
    with pytest.raises(ValueError, match=r"not a ratio p/q with q <= 1000"):
        modcrop(np.zeros((4, 4)), np.pi)


def test_scale_helpers():
    assert scale_pair(2) == (2.0, 2.0) and scale_pair([3, 1.5]) == (3.0, 1.5)
    assert scale_ratio(2) == (2, 1) and scale_ratio(2.5) == (5, 2) and scale_ratio(1.3) == (13, 10)
    assert scale_ratio(1 / 3) == (1, 3)
    with pytest.raises(ValueError, match=r"scale must be positive and finite, got \(2, -1\)"):
        scale_pair((2, -1))
