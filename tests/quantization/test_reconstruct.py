"""Tests for tfsr.quantization.reconstruct: range search and kernel re-rounding against float."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.models.sesr import collapse_model, sesr
from tfsr.quantization import convert, qat, reconstruct


def lr_batches(n=3, size=16, seed=0):
    """Smooth-ish LR images on the uint8 grid (a random field, blurred), like real patches."""
    rng = np.random.default_rng(seed)
    noise = rng.random((n * 2, size, size, 1)).astype(np.float32)
    blurred = tf.nn.avg_pool2d(noise, 3, 1, "SAME").numpy()
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min())
    images = np.round(blurred * 255.0) / 255.0
    return [images[2 * i : 2 * i + 2].astype(np.float32) for i in range(n)]


def trained_like_sesr(activation="relu", seed=0):
    """A small collapsed SESR with weights large enough that int8 rounding is visible."""
    keras.utils.set_random_seed(seed)
    model = collapse_model(
        sesr(scale=2, num_filters=8, num_blocks=2, expanded_filters=16, activation=activation)
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "kernel"):
            k = layer.kernel.numpy()
            layer.kernel.assign(k + rng.normal(0, 0.05, k.shape).astype(np.float32))
    return model


def quantized(model, batches):
    q = qat.quantize_model(model)
    qat.calibrate_ranges(q, batches, percentile=99.9)
    return q


def kernels(q):
    return {w.name: w.numpy() for w in q.weights if w.name.endswith("kernel:0")}


def test_round_channel_identity_hessian_is_nearest_rounding():
    rng = np.random.default_rng(1)
    w = rng.normal(size=10)
    out = reconstruct.round_channel(w, np.eye(10))
    step = np.max(np.abs(w[:9])) / 127
    np.testing.assert_allclose(out[:9], np.round(w[:9] / step) * step, atol=1e-12)
    assert out[9] == pytest.approx(w[9])  # the bias is not rounded


def test_round_channel_stays_on_grid_and_beats_nearest_rounding():
    rng = np.random.default_rng(2)
    d = 24
    x = rng.normal(size=(2000, d)) @ rng.normal(size=(d, d)) * 0.3  # correlated inputs
    x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    hessian = x.T @ x
    w = np.concatenate([rng.normal(0, 0.02, d), [0.1]])
    out = reconstruct.round_channel(w, hessian)
    step = np.max(np.abs(w[:d])) / 127
    levels = out[:d] / step
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-6)
    assert np.max(np.abs(levels)) == pytest.approx(127)  # the channel's scale is kept
    nearest = w.copy()
    nearest[:d] = np.round(w[:d] / step) * step

    def error(v):
        return (v - w) @ hessian @ (v - w)

    assert error(out) < 0.5 * error(nearest)


def test_round_kernels_puts_kernels_on_int8_grid_and_lowers_error():
    batches = lr_batches()
    model = trained_like_sesr()
    q = quantized(model, batches)
    before = reconstruct.output_error(q, model, batches)
    reconstruct.round_kernels(q, model, batches)
    after = reconstruct.output_error(q, model, batches)
    assert after < before
    for name, k in kernels(q).items():
        step = np.max(np.abs(k), axis=(0, 1, 2)) / 127
        levels = k / step
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-3, err_msg=name)


def test_search_ranges_never_worse_and_leaves_fixed_ranges():
    batches = lr_batches()
    model = trained_like_sesr("prelu")
    q = quantized(model, batches)
    before = reconstruct.output_error(q, model, batches)
    fixed = {
        w.name: float(w.numpy())
        for w in q.weights
        if w.name.endswith(("_min:0", "_max:0"))
        and ("clip" in w.name or "nearest_residual" in w.name or "quantize_layer" in w.name)
    }
    assert fixed  # the input range, the clip and the add before it
    after = reconstruct.search_ranges(q, model, batches, passes=1)
    assert after <= before
    assert after == pytest.approx(reconstruct.output_error(q, model, batches), rel=1e-5)
    for w in q.weights:
        if w.name in fixed:
            assert float(w.numpy()) == fixed[w.name], w.name


def test_converter_keeps_the_rounded_kernels():
    batches = lr_batches()
    model = trained_like_sesr()
    q = quantized(model, batches)
    report = reconstruct.reconstruct(q, model, batches)
    assert report["error_after"] < report["error_before"]
    content = convert.convert(q, "int8", input_hw=None)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    filters = []
    for detail in interpreter.get_tensor_details():
        scales = detail["quantization_parameters"]["scales"]
        if detail["dtype"] == np.int8 and len(detail["shape"]) == 4 and len(scales) > 1:
            values = interpreter.get_tensor(detail["index"]).astype(np.float64)
            # TFLite filters are (C_out, kh, kw, C_in); Keras kernels (kh, kw, C_in, C_out).
            filters.append(np.transpose(values * scales[:, None, None, None], (1, 2, 3, 0)))
    qat_kernels = list(kernels(q).values())
    assert len(filters) == len(qat_kernels)
    for k in qat_kernels:
        step = np.max(np.abs(k), axis=(0, 1, 2)) / 127
        assert any(
            f.shape == k.shape and np.max(np.abs(f - k) / step) < 1e-3 for f in filters
        ), "a re-rounded kernel was rounded again by the converter"


def test_empty_batches_raise():
    model = trained_like_sesr()
    q = qat.quantize_model(model)
    with pytest.raises(ValueError, match="at least one calibration batch"):
        reconstruct.reconstruct(q, model, [])
