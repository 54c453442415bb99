"""Tfsr>MetaUpscale (compiled) against its pure-TF twin, a NumPy reference and finite differences."""

import math

import numpy as np
import pytest
import tensorflow as tf

from custom_ops.harness.meta_upscale_harness import reference_backward, reference_forward
from tfsr.ops.meta_upscale import (
    meta_upscale,
    meta_upscale_output_size,
    meta_upscale_phases,
    meta_upscale_twin,
)
from tfsr.testing import check_gradients


@pytest.fixture(scope="module")
def lib(compiled_library):
    return compiled_library("meta_upscale")


def _raw(lib, x, w, scales, sizes=(-1, -1)):
    return lib.tfsr_meta_upscale(
        x, w, tf.constant(scales, tf.float64), tf.constant(sizes, tf.int32)
    )


def _weights(rng, scale_v, scale_h, h, w, k, ci, co, out=None, per_pixel=(False, False)):
    out_h, out_w = out if out is not None else (None, None)
    pv = meta_upscale_phases(scale_v, h, out_h)
    ph = meta_upscale_phases(scale_h, w, out_w)
    rows = len(pv.source_index) if per_pixel[0] else pv.period
    cols = len(ph.source_index) if per_pixel[1] else ph.period
    return rng.standard_normal((rows, cols, k, k, ci, co)), pv, ph


# ---- the phase rule ----


def test_phases_golden_2_5():
    p = meta_upscale_phases(2.5, in_size=4)
    assert p.period == 5
    assert p.source_index.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    np.testing.assert_allclose(p.fractional_offset, [0.0, 0.4, 0.8, 0.2, 0.6], atol=1e-15)


def test_phases_exact_where_float_division_fails():
    # 13 / 1.3 = 10 exactly, but floating point gives 13 // 1.3 == 9.0.
    assert 13 // 1.3 == 9.0
    p = meta_upscale_phases(1.3, in_size=20)
    assert p.period == 13
    assert p.source_index[13] == 10
    assert p.source_index.tolist() == [(i * 10) // 13 for i in range(26)]
    np.testing.assert_allclose(p.fractional_offset, [(i * 10 % 13) / 13 for i in range(13)])


@pytest.mark.parametrize(
    "scale, in_size, out_size, period, sources",
    [
        (4.0, 2, None, 4, [0, 0, 0, 0, 1, 1, 1, 1]),
        (1.0, 3, None, 1, [0, 1, 2]),
        (0.5, 6, None, 1, [0, 2, 4]),  # downscaling: P / r = 1 / 0.5
        (np.float32(1.3), 10, None, 13, [(i * 10) // 13 for i in range(13)]),  # float32-rounded
        (2.5, 4, 7, 5, [0, 0, 0, 1, 1, 2, 2]),  # explicit output size
        (2.5, 4, 3, 3, [0, 0, 0]),  # period capped at the output size
    ],
)
def test_phases_table(scale, in_size, out_size, period, sources):
    p = meta_upscale_phases(scale, in_size, out_size)
    assert p.period == period
    assert p.source_index.tolist() == sources
    assert p.fractional_offset.shape == (period,)
    assert np.all((p.fractional_offset >= 0) & (p.fractional_offset < 1))


def test_phases_irrational_scale_one_phase_per_row():
    p = meta_upscale_phases(math.pi, in_size=10)
    assert p.period == 31 == len(p.source_index)
    assert p.source_index.tolist() == [math.floor(i / math.pi) for i in range(31)]
    np.testing.assert_allclose(
        p.fractional_offset, [i / math.pi - math.floor(i / math.pi) for i in range(31)]
    )


def test_phases_tensor_arguments_match_numbers():
    for scale, size in [(2.5, 7), (1.3, 20), (math.pi, 6), (3.7, 5), (1.0, 4), (0.75, 9)]:
        ref = meta_upscale_phases(scale, size)
        got = meta_upscale_phases(tf.constant(scale, tf.float64), tf.constant(size))
        assert int(got.period) == ref.period
        np.testing.assert_array_equal(got.source_index.numpy(), ref.source_index)
        np.testing.assert_allclose(got.fractional_offset.numpy(), ref.fractional_offset)


@pytest.mark.parametrize(
    "scale, size, expected", [(2.3, 10, 23), (1.3, 10, 13), (np.float32(1.3), 10, 13), (2.5, 3, 7)]
)
def test_output_size(scale, size, expected):
    assert meta_upscale_output_size(scale, size) == expected


@pytest.mark.parametrize(
    "scale, size, match",
    [
        (0.0, 4, r"scale must be a finite number in \[0.0001, 10000.0\], got 0.0"),
        (-2.0, 4, r"got -2.0"),
        (float("nan"), 4, r"got nan"),
        (float("inf"), 4, r"got inf"),
        (2e4, 4, r"got 20000.0"),
        (2.0, 0, r"in_size must be in \[1, 1048576\], got 0"),
        (0.1, 4, r"output would be empty: floor\(0.1 \* 4\) = 0"),
    ],
)
def test_output_size_errors(scale, size, match):
    with pytest.raises(ValueError, match=match):
        meta_upscale_output_size(scale, size)


# ---- op vs twin vs NumPy ----

CASES = [
    # (N, H, W, C_in, C_out, k, scale_v, scale_h, output_size, per_pixel)
    (1, 4, 5, 3, 2, 3, 2.0, 2.0, None, (False, False)),
    (2, 5, 4, 4, 3, 3, 3.0, 3.0, None, (False, False)),
    (1, 6, 5, 3, 3, 3, 2.5, 2.5, None, (False, False)),
    (1, 11, 9, 2, 1, 3, 1.3, 1.3, None, (False, False)),
    (2, 5, 7, 3, 4, 3, 2.5, 1.3, None, (False, False)),  # anisotropic
    (1, 4, 6, 2, 3, 5, 3.7, 1.0, None, (False, False)),
    (1, 5, 5, 3, 2, 3, 2.5, 2.5, (14, 9), (False, False)),  # explicit, beyond the default
    (1, 4, 3, 3, 3, 3, 2.0, 3.0, None, (True, True)),  # per-pixel weights (untransposed on CPU)
    (1, 4, 5, 2, 3, 3, 2.5, 2.5, None, (True, False)),  # per-pixel rows, phase columns
    (1, 5, 4, 3, 9, 3, 2.5, 4.0, None, (False, False)),  # C_out 9: dot blocks of 4 and 1
    (1, 6, 6, 2, 2, 1, math.pi, 0.5, None, (False, False)),  # k = 1, irrational, downscale
    (3, 3, 4, 5, 3, 7, 1.5, 2.0, None, (False, False)),  # k larger than the input
]


def _forward_case(case):
    """(x, weights, NumPy reference output) of one CASES row."""
    n, h, w, ci, co, k, sv, sh, out, per_pixel = case
    rng = np.random.default_rng(0)
    weights, pv, ph = _weights(rng, sv, sh, h, w, k, ci, co, out, per_pixel)
    x = rng.standard_normal((n, h, w, ci))
    ref = reference_forward(
        x,
        weights,
        pv.source_index,
        np.arange(len(pv.source_index)) % weights.shape[0],
        ph.source_index,
        np.arange(len(ph.source_index)) % weights.shape[1],
    )
    assert ref.shape == (n, len(pv.source_index), len(ph.source_index), co)
    return x, weights, ref


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_forward_twin_numpy(case):
    # The pure-TF twin (the fallback without the compiled op, and the TFLite path): runs with or
    # without the library.
    x, weights, ref = _forward_case(case)
    sv, sh, out = case[6], case[7], case[8]
    twin = meta_upscale_twin(x, weights, sv, sh, output_size=out).numpy()
    np.testing.assert_allclose(twin, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_forward_op_numpy(lib, case):
    x, weights, ref = _forward_case(case)
    sv, sh, out = case[6], case[7], case[8]
    got = meta_upscale(x, weights, sv, sh, output_size=out).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # float32 too.
    got32 = meta_upscale(x.astype(np.float32), weights.astype(np.float32), sv, sh, out)
    np.testing.assert_allclose(got32.numpy(), ref, rtol=1e-4, atol=1e-4)


def _backward_case(case, seed):
    """``(x, weights, output gradient, phases v, phases h)`` for a CASES entry."""
    n, h, w, ci, co, k, sv, sh, out, per_pixel = case
    rng = np.random.default_rng(seed)
    weights, pv, ph = _weights(rng, sv, sh, h, w, k, ci, co, out, per_pixel)
    x = rng.standard_normal((n, h, w, ci))
    go = rng.standard_normal((n, len(pv.source_index), len(ph.source_index), co))
    return x, weights, go, pv, ph


@pytest.mark.parametrize("case", [CASES[i] for i in (2, 4, 6, 8, 9)], ids=["2", "4", "6", "8", "9"])
def test_backward_matches_numpy_and_twin(lib, case):
    sv, sh, out = case[6], case[7], case[8]
    x, weights, go, pv, ph = _backward_case(case, seed=1)
    ref_gx, ref_gw = reference_backward(
        x,
        weights,
        go,
        pv.source_index,
        np.arange(len(pv.source_index)) % weights.shape[0],
        ph.source_index,
        np.arange(len(ph.source_index)) % weights.shape[1],
    )
    for fn in (meta_upscale, meta_upscale_twin):
        xt, wt = tf.constant(x), tf.constant(weights)
        with tf.GradientTape() as tape:
            tape.watch([xt, wt])
            y = fn(xt, wt, sv, sh, output_size=out)
        gx, gw = tape.gradient(y, [xt, wt], output_gradients=tf.constant(go))
        np.testing.assert_allclose(gx.numpy(), ref_gx, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(gw.numpy(), ref_gw, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize(
    "scale_v, scale_h, out, per_pixel, co",
    [
        (2.5, 1.3, None, (False, False), 2),
        (2.0, 3.0, None, (True, True), 3),
        (1.5, 2.5, (8, 9), (False, False), 9),
    ],
)
def test_gradients_finite_differences(lib, scale_v, scale_h, out, per_pixel, co):
    rng = np.random.default_rng(2)
    weights, _, _ = _weights(rng, scale_v, scale_h, 3, 4, 3, 2, co, out, per_pixel)
    x = rng.standard_normal((2, 3, 4, 2))
    worst = check_gradients(
        lambda a, b: meta_upscale(a, b, scale_v, scale_h, output_size=out), [x, weights]
    )
    assert worst < 1e-6


@pytest.mark.parametrize("case", [CASES[i] for i in (2, 6, 9)], ids=["2", "6", "9"])
def test_second_order_gradients_match_the_twin(lib, case):
    # A gradient penalty: the gradient (w.r.t. x, weights and the output gradient) of a function
    # of the first gradients, through the compiled gradient op.
    sv, sh, out = case[6], case[7], case[8]
    x, weights, go, _, _ = _backward_case(case, seed=3)
    results = []
    for fn in (meta_upscale, meta_upscale_twin):
        xt, wt, gt = tf.constant(x), tf.constant(weights), tf.constant(go)
        with tf.GradientTape() as outer:
            outer.watch([xt, wt, gt])
            with tf.GradientTape() as inner:
                inner.watch([xt, wt])
                y = fn(xt, wt, sv, sh, output_size=out)
            gx, gw = inner.gradient(y, [xt, wt], output_gradients=gt)
            penalty = tf.reduce_sum(tf.square(gx)) + tf.reduce_sum(tf.sin(gw))
        results.append([g.numpy() for g in outer.gradient(penalty, [xt, wt, gt])])
    for got, want in zip(*results, strict=True):
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_fuzz_op_vs_twin(lib):
    """300 random small problems: shapes, scales (rational, float32-rounded, irrational, < 1),
    explicit sizes and per-pixel weights; forward always, gradients for every 5th."""
    rng = np.random.default_rng(1234)

    def random_scale():
        kind = rng.integers(4)
        if kind == 0:
            return float(rng.integers(1, 40)) / float(rng.integers(1, 12))
        if kind == 1:
            return float(np.float32(rng.integers(11, 41) / 10))
        if kind == 2:
            return float(rng.uniform(0.3, 8.0))
        return float(rng.integers(1, 9))

    checked = 0
    for trial in range(300):
        n, h, w = rng.integers(1, 3), rng.integers(1, 7), rng.integers(1, 7)
        ci, co, k = rng.integers(1, 5), rng.integers(1, 10), int(rng.choice([1, 3, 5]))
        sv, sh = random_scale(), random_scale()
        if math.floor(sv * h + 1e-6) < 1 or math.floor(sh * w + 1e-6) < 1:
            continue
        out = None
        if rng.random() < 0.2:
            out = (int(rng.integers(1, 20)), int(rng.integers(1, 20)))
        per_pixel = (bool(rng.random() < 0.15), bool(rng.random() < 0.15))
        weights, _, _ = _weights(rng, sv, sh, h, w, k, ci, co, out, per_pixel)
        x = rng.standard_normal((n, h, w, ci))
        desc = f"trial {trial}: x {x.shape} w {weights.shape} scales ({sv!r}, {sh!r}) out {out}"
        if trial % 5:
            got = meta_upscale(x, weights, sv, sh, out)
            ref = meta_upscale_twin(x, weights, sv, sh, out)
            np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-11, err_msg=desc)
        else:
            results = []
            for fn in (meta_upscale, meta_upscale_twin):
                xt, wt = tf.constant(x), tf.constant(weights)
                with tf.GradientTape() as tape:
                    tape.watch([xt, wt])
                    y = fn(xt, wt, sv, sh, out)
                    loss = tf.reduce_sum(tf.sin(y))
                results.append([y, *tape.gradient(loss, [xt, wt])])
            for a, b in zip(*results, strict=True):
                np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-10, err_msg=desc)
        checked += 1
    assert checked > 250


def test_tensor_scales_in_tf_function(lib):
    """One trace serves every scale; the op's output size is dynamic, the twin agrees."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((1, 5, 6, 2)), tf.float32)
    traces = []

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, None, None, None, None], tf.float32),
            tf.TensorSpec([], tf.float64),
        ]
    )
    def upscale(w, scale):
        traces.append(1)
        return meta_upscale(x, w, scale, scale)

    for scale in (2.0, 2.5, 1.3, 3.7):
        w, _, _ = _weights(rng, scale, scale, 5, 6, 3, 2, 3)
        w = tf.constant(w, tf.float32)
        got = upscale(w, tf.constant(scale, tf.float64))
        ref = meta_upscale_twin(x, w, scale, scale)
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    assert len(traces) == 1


def test_static_shape_inference(lib):
    f = tf.function(lambda x, w: meta_upscale(x, w, 2.5, 1.3))
    w = tf.TensorSpec([5, 13, 3, 3, 2, 3])
    concrete = f.get_concrete_function(tf.TensorSpec([None, 6, 10, 2]), w)
    assert concrete.structured_outputs.shape.as_list() == [None, 15, 13, 3]
    # Tensor scales: the size follows from the scales when they are constants in the graph.
    g = tf.function(
        lambda x, w: lib.tfsr_meta_upscale(x, w, tf.constant([2.5, 1.3], tf.float64), [-1, -1])
    )
    concrete = g.get_concrete_function(tf.TensorSpec([None, 6, 10, 2]), w)
    assert concrete.structured_outputs.shape.as_list() == [None, 15, 13, 3]
    h = tf.function(lambda x, w, s: lib.tfsr_meta_upscale(x, w, s, [-1, 7]))
    concrete = h.get_concrete_function(
        tf.TensorSpec([None, 6, 10, 2]), w, tf.TensorSpec([2], tf.float64)
    )
    assert concrete.structured_outputs.shape.as_list() == [None, None, 7, 3]


def test_deterministic_weight_gradient(lib):
    rng = np.random.default_rng(4)
    weights, _, _ = _weights(rng, 1.0, 1.0, 9, 8, 3, 8, 3)  # one phase: 64 splits on CPU
    x = tf.constant(rng.standard_normal((2, 9, 8, 8)), tf.float32)
    w = tf.constant(weights, tf.float32)

    def grads():
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = meta_upscale(x, w, 1.0, 1.0, deterministic=True)
        return [g.numpy() for g in tape.gradient(y, [x, w])]

    first, second = grads(), grads()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_saved_model_round_trip_with_gradient(lib, tmp_path):
    rng = np.random.default_rng(5)
    weights, _, _ = _weights(rng, 2.5, 2.5, 4, 4, 3, 2, 3)

    class Upscaler(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(weights.astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 2], tf.float32)])
        def __call__(self, x):
            return meta_upscale(x, self.w, 2.5, 2.5)

    module = Upscaler()
    tf.saved_model.save(module, str(tmp_path / "model"))
    restored = tf.saved_model.load(str(tmp_path / "model"))
    x = tf.constant(rng.standard_normal((2, 4, 4, 2)), tf.float32)
    results = []
    for m in (module, restored):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = m(x)
            loss = tf.reduce_sum(y**2)
        results.append([y, *tape.gradient(loss, [x, m.w])])
    assert results[1][0].shape == (2, 10, 10, 3)
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


def test_half_types_fall_back_to_twin_on_cpu(lib):
    rng = np.random.default_rng(6)
    weights, _, _ = _weights(rng, 2.0, 2.0, 3, 3, 3, 2, 2)
    x = rng.standard_normal((1, 3, 3, 2))
    ref = meta_upscale(x, weights, 2.0, 2.0).numpy()
    for dtype, tol in ((tf.float16, 3e-2), (tf.bfloat16, 2e-1)):
        got = meta_upscale(tf.cast(x, dtype), tf.cast(weights, dtype), 2.0, 2.0)
        assert got.dtype == dtype
        np.testing.assert_allclose(tf.cast(got, tf.float64).numpy(), ref, rtol=tol, atol=tol)


def test_half_types_need_gpu_kernels_in_the_library(lib, monkeypatch):
    # With a GPU visible, half types used to go to the compiled op even when the library was
    # built without CUDA (TFSR_NO_CUDA=1, no nvcc): "no registered kernel" instead of the twin.
    import importlib

    module = importlib.import_module("tfsr.ops.meta_upscale")  # tfsr.ops.meta_upscale: the function
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["a GPU"])
    built_with_cuda = tf.float16.as_datatype_enum in module._gpu_kernel_types()
    assert (module._compiled_op_usable(tf.float16) is not None) == built_with_cuda
    monkeypatch.setattr(module, "_gpu_kernel_types", frozenset)  # a CPU-only build
    assert module._compiled_op_usable(tf.float16) is None
    assert module._compiled_op_usable(tf.bfloat16) is None
    assert module._compiled_op_usable(tf.float32) is not None


# ---- errors ----


def test_output_too_large_to_count_is_an_error_not_an_abort(lib):
    # 2^23 x 2^20 x 2^20 elements overflow int64: TensorShape used to abort the process.
    x = tf.zeros([2**23, 1, 1, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="more elements than an int64"):
        meta_upscale(x, tf.zeros([1] * 6), 1.0, 1.0, output_size=(2**20, 2**20))


@pytest.mark.parametrize(
    "x_shape, w_shape, scales, sizes, match",
    [
        ((4, 4, 2), (2, 2, 3, 3, 2, 3), (2.0, 2.0), (-1, -1), r"x must be 4-D"),
        ((1, 4, 4, 2), (2, 3, 3, 2, 3), (2.0, 2.0), (-1, -1), r"weights must be 6-D"),
        ((1, 4, 4, 2), (2, 2, 2, 2, 2, 3), (2.0, 2.0), (-1, -1), r"odd size k .* got 2 x 2"),
        ((1, 4, 4, 2), (2, 2, 3, 1, 2, 3), (2.0, 2.0), (-1, -1), r"got 3 x 1"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 5, 3), (2.0, 2.0), (-1, -1), r"5 input channels .* has 2"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 0), (2.0, 2.0), (-1, -1), r">= 1 output channels"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), (0.0, 2.0), (-1, -1), r"scale_v must be .* got 0"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), (2.0, -1.0), (-1, -1), r"scale_h must be .* got -1"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), (np.nan, 2.0), (-1, -1), r"scale_v .* got nan"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), (2.0, np.inf), (-1, -1), r"scale_h .* got inf"),
        (
            (1, 4, 4, 2),
            (3, 2, 3, 3, 2, 3),
            (2.0, 2.0),
            (-1, -1),
            r"3 row phases .* needs 2 .* or 8",
        ),
        (
            (1, 4, 4, 2),
            (2, 3, 3, 3, 2, 3),
            (2.0, 2.5),
            (-1, -1),
            r"3 column phases .* needs 5 .* or 10",
        ),
        (
            (1, 4, 5, 2),
            (5, 4, 3, 3, 2, 3),
            (2.5, 2.5),
            (-1, -1),
            r"4 column phases .* needs 5 .* 12",
        ),
        ((1, 4, 4, 2), (1, 2, 3, 3, 2, 3), (2.0, 2.0), (0, -1), r"output height must be .* got 0"),
        ((1, 4, 4, 2), (2, 1, 3, 3, 2, 3), (2.0, 2.0), (-1, -5), r"output width .* got -5"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), (2.0, 2.0), (-1, 2**21), r"width .* got 2097152"),
        ((1, 4, 4, 2), (1, 2, 3, 3, 2, 3), (0.1, 2.0), (-1, -1), r"floor\(0.1.* \* 4\) is 0"),
        ((1, 200, 4, 2), (1, 1, 3, 3, 2, 3), (9999.0, 1.0), (-1, -1), r"1999800 exceeds the max"),
    ],
)
def test_op_errors(lib, x_shape, w_shape, scales, sizes, match):
    x, w = tf.zeros(x_shape), tf.zeros(w_shape)
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=match):
        _raw(lib, x, w, scales, sizes)


def test_op_errors_shape_arguments(lib):
    x, w = tf.zeros([1, 4, 4, 2]), tf.zeros([2, 2, 3, 3, 2, 3])
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=r"shape \[2\]|rank|2"):
        lib.tfsr_meta_upscale(x, w, tf.constant([2.0, 2.0, 2.0], tf.float64), [-1, -1])

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float64), tf.TensorSpec(None, tf.int32)])
    def run(scales, sizes):
        return lib.tfsr_meta_upscale(x, w, scales, sizes)

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"scales must have shape \[2\]"):
        run(tf.constant([2.0], tf.float64), tf.constant([-1, -1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"output_size must have shape \[2\]"):
        run(tf.constant([2.0, 2.0], tf.float64), tf.constant([-1]))


def test_shape_functions_refuse_what_the_kernels_would(lib):
    """In a graph the mistakes surface when the op is added, not when it first runs."""
    scales = tf.constant([2.0, 2.0], tf.float64)
    x = tf.TensorSpec([None, 4, 4, 2])

    def trace(fn, *specs):
        return tf.function(fn).get_concrete_function(*specs)

    def forward(x, w):
        return lib.tfsr_meta_upscale(x, w, scales, [-1, -1])

    def backward(g, x, w):
        return lib.tfsr_meta_upscale_grad(g, x, w, scales)

    for k in ((4, 4), (3, 5), (None, 4)):
        with pytest.raises(ValueError, match=r"odd size k \(dims 2 and 3\), got .* x "):
            trace(forward, x, tf.TensorSpec([2, 2, *k, 2, 3]))
    trace(forward, x, tf.TensorSpec([2, 2, None, None, 2, 3]))  # unknown: left to the kernel
    w = tf.TensorSpec([2, 2, 3, 3, 2, 3])
    trace(backward, tf.TensorSpec([None, 8, 8, 3]), x, w)  # fits
    for grad, wrong in (([None, 8, 8, 4], "4 and 3"), ([3, 8, 8, 3], "3 and 1")):
        with pytest.raises(ValueError, match=f"Dimensions must be equal, but are {wrong}"):
            trace(backward, tf.TensorSpec(grad), tf.TensorSpec([1, 4, 4, 2]), w)
    with pytest.raises(ValueError, match=r"Dimensions must be equal, but are 2 and 3"):
        trace(backward, tf.TensorSpec([1, 8, 8, 3]), x, tf.TensorSpec([2, 2, 3, 3, 3, 3]))


def test_bad_constant_scale_in_a_graph_leaves_the_shape_unknown_and_fails_at_run(lib):
    x, w = tf.zeros([1, 4, 4, 2]), tf.zeros([2, 2, 3, 3, 2, 3])

    @tf.function
    def run():
        # Constants: shape inference sees the scales (NaN must not reach its size arithmetic).
        out = lib.tfsr_meta_upscale(x, w, tf.constant([np.nan, 2.0], tf.float64), [-1, -1])
        assert out.shape.as_list() == [1, None, 8, 3]
        return out

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"scale_v .* got nan"):
        run()


def test_grad_op_errors(lib):
    x, w = tf.zeros([1, 4, 4, 2]), tf.zeros([2, 2, 3, 3, 2, 3])
    scales = tf.constant([2.0, 2.0], tf.float64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"grad_output must be 4-D"):
        lib.tfsr_meta_upscale_grad(tf.zeros([8, 8, 3]), x, w, scales)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"forward output has batch 1 and C"):
        lib.tfsr_meta_upscale_grad(tf.zeros([1, 8, 8, 4]), x, w, scales)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"2 row phases .* needs 1 .* or 1"):
        lib.tfsr_meta_upscale_grad(tf.zeros([1, 1, 8, 3]), x, w, scales)


@pytest.mark.parametrize("fn", [meta_upscale, meta_upscale_twin])
@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, match",
    [
        ((4, 4, 2), (2, 2, 3, 3, 2, 3), {}, r"x must be a 4-D tensor"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2), {}, r"weights must be a 6-D tensor"),
        ((1, 4, 4, 2), (2, 2, 4, 4, 2, 3), {}, r"odd size k .* got 4 x 4"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 3, 3), {}, r"weights have 3 input channels .* x has 2"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), {"scale_v": 0.0}, r"scale_v must be .* got 0.0"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), {"scale_h": float("nan")}, r"scale_h .* got nan"),
        ((1, 4, 4, 2), (4, 2, 3, 3, 2, 3), {}, r"4 row phases but scale_v 2.0 .* needs 2 .* or 8"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), {"output_size": (0, 8)}, r"output_size .* got 0"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), {"output_size": 8}, r"None or \(H_out, W_out\)"),
        ((1, 4, 4, 2), (2, 2, 3, 3, 2, 3), {"scale_v": 0.1}, r"output would be empty"),
    ],
)
def test_python_errors(fn, x_shape, w_shape, kwargs, match):
    args = {"scale_v": 2.0, "scale_h": 2.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        fn(tf.zeros(x_shape), tf.zeros(w_shape), **args)


def test_python_dtype_error():
    with pytest.raises(ValueError, match=r"same floating dtype, got float32 and float64"):
        meta_upscale(tf.zeros([1, 2, 2, 1]), tf.zeros([2, 2, 1, 1, 1, 1], tf.float64), 2.0, 2.0)


def test_twin_dynamic_checks():
    @tf.function(input_signature=[tf.TensorSpec([], tf.float64)])
    def run(scale):
        return meta_upscale_twin(tf.zeros([1, 4, 4, 1]), tf.zeros([3, 2, 3, 3, 1, 1]), scale, 2.0)

    with pytest.raises(tf.errors.InvalidArgumentError, match=r"scale_v must be a finite"):
        run(tf.constant(-1.0, tf.float64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"weights have.*row phases"):
        run(tf.constant(2.0, tf.float64))
    assert run(tf.constant(1.5, tf.float64)).shape == (1, 6, 8, 1)


# ---- the twin as the TFLite export path ----


def test_twin_converts_to_tflite_builtins():
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(7)
    weights, _, _ = _weights(rng, 2.5, 2.5, 6, 6, 3, 4, 3)
    w = tf.constant(weights, tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, 6, 6, 4], tf.float32)])
    def upscale(x):
        return meta_upscale_twin(x, w, 2.5, 2.5)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [upscale.get_concrete_function()], upscale
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    model = converter.convert()
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    x = rng.standard_normal((1, 6, 6, 4)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, upscale(x).numpy(), rtol=1e-5, atol=1e-5)
    ops = {d["op_name"] for d in interpreter._get_ops_details()}  # noqa: SLF001
    assert not any("Flex" in op or "Custom" in op.title() for op in ops), ops


def test_empty_batch(lib):
    x = tf.zeros([0, 4, 4, 2])
    w = tf.constant(np.random.default_rng(8).standard_normal((5, 5, 3, 3, 2, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = meta_upscale(x, w, 2.5, 2.5)
    gx, gw = tape.gradient(y, [x, w])
    assert y.shape == (0, 10, 10, 3) and gx.shape == x.shape
    np.testing.assert_array_equal(gw.numpy(), np.zeros(w.shape))


# ---- the CUDA kernels, emulated on the CPU ----


def test_cuda_kernels_emulated_on_cpu(capsys):
    """The CUDA kernels (every launcher, all reduction modes) vs the NumPy reference, run by the
    harness's CPU emulation: this machine has no GPU, but the kernels' indexing, shared-memory
    layout and barriers are exercised on every run of the suite."""
    from custom_ops.harness import meta_upscale_harness as harness

    lib = harness.load(harness.build_emulated())
    cases = [harness.CHECK_CASES[i] for i in (1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15)]
    ok = harness.check(lib, harness.HostBackend(), ("float32", "float16", "bfloat16"), cases)
    report = capsys.readouterr().out
    assert ok, report
    assert report.count("ok  ") == 3 * len(cases)
