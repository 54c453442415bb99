"""Tfsr>LutInterp4D (compiled) against its pure-TF twin, a NumPy reference and golden values."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfsr.ops.lut_interp import lut_interp_4d, lut_interp_4d_twin, lut_side


@pytest.fixture(scope="module")
def lib(compiled_library):
    return compiled_library("lut_interp")


def _reference(index, lut, interval):
    """4-simplex interpolation, one point at a time, written from the definition."""
    side = 256 // interval + 1
    table = lut.reshape(side, side, side, side, -1).astype(np.float64)
    out = np.zeros((len(index), table.shape[-1]))
    for m, v in enumerate(index):
        msb, lsb = v // interval, v % interval
        order = sorted(range(4), key=lambda d: -lsb[d])
        corner = list(msb)
        weights, vertices = [interval - lsb[order[0]]], [tuple(corner)]
        for k in range(4):
            corner[order[k]] += 1
            vertices.append(tuple(corner))
            weights.append(lsb[order[k]] - (lsb[order[k + 1]] if k < 3 else 0))
        out[m] = sum(w * table[vx] for w, vx in zip(weights, vertices, strict=True)) / interval
    return out


def _random(rng, shape, channels, interval=16, dtype=np.int8):
    side = lut_side(interval)
    if dtype == np.int8:
        lut = rng.integers(-127, 128, (side**4, channels)).astype(np.int8)
    else:
        lut = rng.normal(0, 30, (side**4, channels)).astype(np.float32)
    return rng.integers(0, 256, shape + (4,)).astype(np.int32), lut


@pytest.mark.parametrize("dtype", [np.int8, np.float32])
@pytest.mark.parametrize("interval", [16, 32])
def test_compiled_equals_twin_exactly(lib, dtype, interval):
    rng = np.random.default_rng(interval)
    index, lut = _random(rng, (2, 9, 11), 16 if interval == 16 else 3, interval, dtype)
    index[0, 0, :4] = [[0, 0, 0, 0], [255, 255, 255, 255], [16, 16, 16, 16], [7, 7, 200, 7]]
    compiled = lib.tfsr_lut_interp4d(index, lut, interval=interval).numpy()
    twin = lut_interp_4d_twin(index, lut, interval).numpy()
    np.testing.assert_array_equal(compiled, twin)
    assert compiled.shape == index.shape[:-1] + (lut.shape[1],)
    assert compiled.dtype == np.float32


def test_twin_matches_numpy_reference():
    rng = np.random.default_rng(1)
    index, lut = _random(rng, (300,), 4)
    expected = _reference(index, lut, 16)
    np.testing.assert_allclose(lut_interp_4d_twin(index, lut).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(lut_interp_4d(index, lut).numpy(), expected, atol=1e-5)


def test_float_index_gives_the_same_values():
    rng = np.random.default_rng(2)
    index, lut = _random(rng, (50,), 2, dtype=np.float32)
    a = lut_interp_4d_twin(index, lut).numpy()
    b = lut_interp_4d_twin(index.astype(np.float32), lut).numpy()
    np.testing.assert_array_equal(a, b)


def test_all_24_orderings_reproduce_a_linear_function():
    # Simplex interpolation is exact for a function linear in the levels (inside [0, 240]).
    side = 17
    levels = np.arange(side) * 16.0
    grid = np.stack(np.meshgrid(levels, levels, levels, levels, indexing="ij"), -1)
    coeff = np.array([1.0, -2.0, 0.5, 3.0])
    lut = (grid @ coeff).reshape(-1, 1).astype(np.float32)
    points = []
    for perm in itertools.permutations(range(4)):  # every ordering of 4 distinct LSBs
        v = np.zeros(4, np.int32)
        v[list(perm)] = [3, 6, 9, 12]
        points.append(v + np.array([32, 64, 96, 128]))
    index = np.array(points, np.int32)
    out = lut_interp_4d(index, lut).numpy()[:, 0]
    np.testing.assert_allclose(out, index @ coeff, atol=1e-4)
    assert len(set(map(tuple, index % 16))) == 24


def test_golden_values():
    lut = np.zeros((17**4, 1), np.int8)
    lut[0, 0] = 64  # vertex (0, 0, 0, 0)
    lut[17**3, 0] = -32  # vertex (1, 0, 0, 0)
    index = np.array([[0, 0, 0, 0], [8, 0, 0, 0], [4, 2, 0, 0], [16, 0, 0, 0]], np.int32)
    # (8,0,0,0): (8*64 + 8*-32)/16 = 16; (4,2,0,0): w0=12 -> 48, w1=2 on (1,0,0,0) -> -4 => 44
    np.testing.assert_array_equal(lut_interp_4d(index, lut).numpy()[:, 0], [64, 16, 44, -32])


def test_gradient_with_respect_to_a_float_table(lib):
    rng = np.random.default_rng(3)
    index, lut = _random(rng, (40,), 2, dtype=np.float32)
    lut_var = tf.Variable(lut)
    upstream = tf.constant(rng.normal(size=(40, 2)).astype(np.float32))
    grads = []
    for fn in (lut_interp_4d, lut_interp_4d_twin):
        with tf.GradientTape() as tape:
            out = fn(index, lut_var)
        grads.append(tf.convert_to_tensor(tape.gradient(out, lut_var, upstream)).numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-6)
    # Each point's weights sum to 1 (interval / interval): the gradient sums to the upstream sum.
    np.testing.assert_allclose(grads[0].sum(0), upstream.numpy().sum(0), rtol=1e-5)


def test_gradient_with_respect_to_a_float_index():
    lut = np.zeros((17**4, 1), np.float32)
    lut[17**3, 0] = 16.0  # only vertex (1, 0, 0, 0) is non-zero
    index = tf.Variable([[5.0, 1.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        out = lut_interp_4d_twin(index, lut)
    # LSBs 5 > 1: vertex (1, 0, 0, 0) has weight 5 - 1, so out = 16 * (a - b) / 16.
    np.testing.assert_allclose(out.numpy(), [[4.0]])
    np.testing.assert_allclose(tape.gradient(out, index).numpy(), [[1.0, -1.0, 0.0, 0.0]])


def test_out_of_range_index_is_an_error(lib):
    lut = np.zeros((17**4, 1), np.int8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[0, 255\], got 256"):
        lib.tfsr_lut_interp4d(np.array([[0, 256, 0, 0]], np.int32), lut)
    with pytest.raises(tf.errors.InvalidArgumentError, match="got -1"):
        lib.tfsr_lut_interp4d(np.array([[0, -1, 0, 0]], np.int32), lut)


@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_twin_checks_the_index_range_like_the_op(dtype):
    # It used to gather out-of-range rows (an error on CPU, zeros or wrong rows on a GPU).
    lut = np.zeros((17**4, 1), np.int8)
    for bad, got in (([0, 256, 0, 0], "256"), ([0, 0, -1, 3], "-1")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"\\[0, 255\\], got {got}$"):
            lut_interp_4d_twin(np.array([bad], dtype), lut)
    graph = tf.function(lambda i: lut_interp_4d_twin(i, lut))
    with pytest.raises(tf.errors.InvalidArgumentError, match="8-bit levels"):
        graph(tf.constant([[300, 0, 0, 0]], dtype))
    assert graph(tf.constant([[255, 0, 17, 1]], dtype)).shape == (1, 1)


def test_bad_arguments():
    lut = np.zeros((17**4, 1), np.int8)
    with pytest.raises(ValueError, match=r"lut must have shape \(83521, C\)"):
        lut_interp_4d(np.zeros((1, 4), np.int32), np.zeros((100, 1), np.int8))
    with pytest.raises(ValueError, match=r"index must have shape \(\.\.\., 4\)"):
        lut_interp_4d(np.zeros((1, 3), np.int32), lut)
    with pytest.raises(ValueError, match="power of two"):
        lut_interp_4d(np.zeros((1, 4), np.int32), lut, interval=12)
    with pytest.raises(ValueError, match="int8 or float32"):
        lut_interp_4d(np.zeros((1, 4), np.int32), lut.astype(np.int16))


def test_compiled_shape_checks(lib):
    with pytest.raises(tf.errors.InvalidArgumentError, match="lut must have shape"):
        lib.tfsr_lut_interp4d(np.zeros((1, 4), np.int32), np.zeros((7, 1), np.int8))


def test_shape_function_checks_the_table_rows(lib):
    """In a graph a table of the wrong size fails where the op is added."""
    index = tf.TensorSpec([None, 4], tf.int32)

    def trace(rows, interval=16):
        fn = tf.function(lambda i, t: lib.tfsr_lut_interp4d(i, t, interval=interval))
        return fn.get_concrete_function(index, tf.TensorSpec([rows, 2], tf.int8))

    with pytest.raises(ValueError, match="must be 83521 but is 100"):
        trace(100)
    trace(17**4)
    trace(9**4, interval=32)
    trace(None)  # unknown: left to the kernel
