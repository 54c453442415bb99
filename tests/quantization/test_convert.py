"""Tests for tfsr.quantization.convert: TFLite files, builtin ops, int8 arithmetic, atomic writes."""

import os

import numpy as np
import pytest
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.tools import flatbuffer_utils

from tfsr.inference import TFLiteUpscaler
from tfsr.models.sesr import collapse_model, sesr
from tfsr.quantization import convert, qat

# No QUANTIZE: the residual add before the clip takes the clip's [0, 1] range, so nothing is
# requantised at the end.
INT8_SESR_OPS = {"CONV_2D", "PRELU", "ADD", "DEPTH_TO_SPACE"}


def tiny_sesr():
    keras.utils.set_random_seed(0)
    return collapse_model(sesr(scale=2, num_filters=4, num_blocks=2, expanded_filters=8))


def lr_image(seed=0, h=10, w=14):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(1, h, w, 1)) / 255.0).astype(np.float32)


@pytest.fixture(scope="module")
def models():
    model = tiny_sesr()
    q = qat.quantize_model(model)
    qat.calibrate_ranges(q, [lr_image(s, 16, 16) for s in range(3)])
    return model, q


def run(content, x):
    """Runs a TFLite model on a float image, (de)quantising integer inputs and outputs."""
    interpreter = Interpreter(model_content=content)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], list(x.shape))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    if detail["dtype"] != np.float32:
        scale, zero = detail["quantization"]
        x = np.round(x / scale + zero).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    out_detail = interpreter.get_output_details()[0]
    out = interpreter.get_tensor(out_detail["index"])
    if out_detail["dtype"] != np.float32:
        scale, zero = out_detail["quantization"]
        out = (out.astype(np.float32) - zero) * scale
    return out


@pytest.fixture(scope="module")
def int8_dynamic(models):
    return convert.convert(models[1], "int8", input_hw=None)


def test_int8_matches_qat_model(models, int8_dynamic):
    _, q = models
    ops = set(convert.tflite_ops(int8_dynamic))
    # Everything runs in int8: no DEQUANTIZE, no float op.
    assert ops == INT8_SESR_OPS
    assert convert.non_builtin_ops(int8_dynamic) == []
    detail = Interpreter(model_content=int8_dynamic).get_input_details()[0]
    assert detail["dtype"] == np.int8
    # [0, 1] images map exactly onto the 256 integer levels.
    np.testing.assert_allclose(detail["quantization"], (1 / 255, -128), rtol=1e-6)
    x = lr_image(5)
    out, ref = run(int8_dynamic, x), q(x).numpy()
    assert out.shape == ref.shape == (1, 20, 28, 1)
    # Integer arithmetic vs the fake-quant simulation: rarely a step or two apart.
    diff = np.abs(out - ref) * 255
    assert diff.max() <= 2.0 + 1e-3 and np.mean(diff > 0.5) < 0.15


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_int8_relu_sesr_is_conv_add_and_depth_to_space_only(scale):
    # The README's deployment claim: with ReLU (fused into the convolutions) nothing else is
    # left, at every scale (the fixed [0, 1] range reaches through the pixel shuffles).
    keras.utils.set_random_seed(0)
    model = collapse_model(
        sesr(scale=scale, num_filters=4, num_blocks=2, expanded_filters=8, activation="relu")
    )
    q = qat.quantize_model(model)
    qat.calibrate_ranges(q, [lr_image(s, 16, 16) for s in range(2)])
    content = convert.convert(q, "int8", input_hw=(12, 12))
    assert set(convert.tflite_ops(content)) == {"CONV_2D", "ADD", "DEPTH_TO_SPACE"}


def test_uint8_io(models):
    content = convert.convert(models[1], "int8", input_hw=(8, 8), io_dtype="uint8")
    detail = Interpreter(model_content=content).get_input_details()[0]
    assert detail["dtype"] == np.uint8
    np.testing.assert_allclose(detail["quantization"], (1 / 255, 0), rtol=1e-6)
    x = lr_image(2, 8, 8)
    np.testing.assert_allclose(run(content, x), models[1](x).numpy(), atol=1 / 255 + 1e-6)


def test_int8_fixed_size_file_runs_resized_with_same_results(models, int8_dynamic, tmp_path):
    _, q = models
    fixed = convert.convert(q, "int8", input_hw=(40, 48))
    assert list(Interpreter(model_content=fixed).get_input_details()[0]["shape"]) == [1, 40, 48, 1]
    (tmp_path / "fixed.tflite").write_bytes(fixed)
    (tmp_path / "dynamic.tflite").write_bytes(int8_dynamic)
    x = lr_image(3, 13, 17)[0]
    a = TFLiteUpscaler(str(tmp_path / "fixed.tflite"), 2).upscale_y(x)
    b = TFLiteUpscaler(str(tmp_path / "dynamic.tflite"), 2).upscale_y(x)
    assert a.shape == (26, 34, 1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode, atol", [("none", 1e-5), ("float16", 2e-2), ("dynamic", 5e-2)])
def test_float_modes_match_keras(models, mode, atol):
    model, _ = models
    content = convert.convert(model, mode, input_hw=(10, 14), io_dtype="float32")
    assert convert.non_builtin_ops(content) == []
    x = lr_image(1)
    np.testing.assert_allclose(run(content, x), model(x).numpy(), atol=atol)


def test_tensor_names_are_short(models):
    model, _ = models
    content = convert.convert(model, "none", input_hw=(8, 8), io_dtype="float32")
    interpreter = Interpreter(model_content=content)
    assert interpreter.get_input_details()[0]["name"] == "lr"
    assert interpreter.get_output_details()[0]["name"] == "sr"
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["lr"], "outputs": ["output_0"]}
    }


def test_configuration_mismatches_raise(models):
    model, q = models
    with pytest.raises(ValueError, match="io_dtype=int8 needs quantize=int8"):
        convert.convert(model, "float16", io_dtype="int8")
    with pytest.raises(ValueError, match="needs a QAT model"):
        convert.convert(model, "int8")
    with pytest.raises(ValueError, match="needs the float model"):
        convert.convert(q, "none", io_dtype="float32")
    with pytest.raises(ValueError, match="quantize must be one of int8, float16, dynamic, none"):
        convert.convert(model, "int4")
    with pytest.raises(ValueError, match=r"input size must be two positive integers"):
        convert.convert(q, "int8", input_hw=(0, 10))


def test_fixed_size_model_rejects_other_size():
    import tf_keras as keras

    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs))
    with pytest.raises(ValueError, match="takes inputs of 8x8 only; 1080x1920 was asked for"):
        convert.input_signature(model, (1080, 1920))


def test_non_builtin_ops_finds_custom_op(models):
    model, _ = models
    content = convert.convert(model, "none", input_hw=(8, 8), io_dtype="float32")
    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    code = flat.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = 32  # BuiltinOperator.CUSTOM
    code.customCode = b"TfsrMetaUpscale"
    patched = bytes(flatbuffer_utils.convert_object_to_bytearray(flat))
    assert convert.non_builtin_ops(patched) == ["TfsrMetaUpscale"]


def test_write_atomic(tmp_path):
    path = tmp_path / "m.tflite"
    convert.write_atomic(b"abc", str(path))
    convert.write_atomic(b"defg", str(path))
    assert path.read_bytes() == b"defg"
    assert os.listdir(tmp_path) == ["m.tflite"]  # no temporary left behind
    with pytest.raises(FileNotFoundError, match="output folder .* does not exist"):
        convert.write_atomic(b"x", str(tmp_path / "missing" / "m.tflite"))
