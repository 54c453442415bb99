"""DySample converts to TFLite builtins (float32 and full int8) and runs in the LiteRT interpreter.

One Keras model holds the four variants side by side (one conversion per precision), with offsets
of about a pixel (as after training) so that the sampling positions matter.

int8 error bound, in output quantisation steps q (the output is a convex combination of input
pixels, so input and output share a range of about 255 q):
- rounding of values: the input (0.5 q), and in the blend ``(a * gx + b * fx) * gy + (...) * fy``
  two MULs and one ADD per level (1.5 q per level, 3 q in all);
- rounding of the weights: ``gx = 1 - fx`` and ``fx`` are rounded separately to steps of 1/255,
  so they may sum to 1 +- 1/255: up to 1 q per level, 2 q in all;
- rounding of the positions: the offsets pass through int8 with step R / 255 (R their range in
  pixels): the conv output, the sum with the sub-pixel base and the fraction each round, about
  1.5 R / 255 px in all, which moves the value by up to that times the largest neighbour difference
  (255 q on random inputs): 1.5 R q.
So the worst element is bounded by (5.5 + 1.5 R) q; the mean error is about half a step
(measured worst 3 to 7 q with R 1 to 3.5 px, mean 0.6 to 0.9 q).
"""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from tfsr.layers import DySample

VARIANTS = {  # output name: (style, dynamic_scope)
    "dysample": ("lp", False),
    "dysample_plus": ("lp", True),
    "dysample_s": ("pl", False),
    "dysample_s_plus": ("pl", True),
}
SHAPE = (1, 8, 8, 16)

# What the index arithmetic needs: everything else in the int8 model must be int8 / int32.
INDEX_FLOAT_OPS = {"DEQUANTIZE", "FLOOR", "QUANTIZE", "CAST"}


def build_model(height=SHAPE[1], width=SHAPE[2], seed=0):
    """The four variants on one input, with offsets of up to 1 or 2 px (as after training)."""
    rng = np.random.default_rng(seed)
    inputs = keras.Input(batch_size=1, shape=(height, width, SHAPE[3]))
    outputs = {}
    for name, (style, dynamic_scope) in VARIANTS.items():
        layer = DySample(2, style, groups=4, dynamic_scope=dynamic_scope, name=name)
        outputs[name] = layer(inputs)
        for w in layer.weights:
            w.assign(rng.normal(0.0, 0.5, size=w.shape))
    return keras.Model(inputs, outputs)


def images(n, seed):
    return np.random.default_rng(seed).uniform(size=(n,) + SHAPE[1:]).astype(np.float32)


def convert(model, int8):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in images(16, seed=1))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def interpreter(model_content, xnnpack=False):
    """LiteRT's interpreter; without the default XNNPACK delegate its op list is the model's."""
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_content=model_content, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def op_types(it):
    """(op name, input dtypes, output dtypes) of every operator."""
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in it.get_tensor_details()}
    return [
        (
            op["op_name"],
            {dtypes[i] for i in op["inputs"] if i >= 0},
            {dtypes[i] for i in op["outputs"]},
        )
        for op in it._get_ops_details()
    ]


def run(it, x):
    """Runs the signature on float x, (de)quantising int8 input and outputs; returns floats."""
    runner = it.get_signature_runner()
    ((in_name, in_details),) = runner.get_input_details().items()
    if in_details["dtype"] == np.int8:
        scale, zero = in_details["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    outputs = runner(**{in_name: x})
    result = {}
    for name, y in outputs.items():
        details = runner.get_output_details()[name]
        if details["dtype"] == np.int8:
            scale, zero = details["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        result[name] = (y, details["quantization"][0])
    return result


@pytest.fixture(scope="module")
def model():
    return build_model()


@pytest.fixture(scope="module")
def float_model(model):
    return convert(model, int8=False)


@pytest.fixture(scope="module")
def int8_model(model):
    return convert(model, int8=True)


def test_float32_builtins_only_and_matches_keras(model, float_model):
    it = interpreter(float_model)
    ops = op_types(it)
    names = {name for name, _, _ in ops}
    assert not any(n.startswith("Flex") or n in ("CUSTOM", "DELEGATE") for n in names), names
    assert names <= {
        "CONV_2D", "DEPTH_TO_SPACE", "RESHAPE", "UNPACK", "STRIDED_SLICE", "GATHER", "FLOOR",
        "CAST", "ADD", "SUB", "MUL", "MINIMUM", "MAXIMUM", "LESS", "GREATER", "SELECT_V2",
        "FILL", "LOGISTIC",
    }, names  # fmt: skip
    assert sum(name == "GATHER" for name, _, _ in ops) == 4 * len(VARIANTS)
    for xnnpack in (False, True):
        it = interpreter(float_model, xnnpack)
        for seed in (2, 3):
            x = images(1, seed)
            want = model(x)
            for name, (got, _) in run(it, x).items():
                np.testing.assert_allclose(got, want[name].numpy(), atol=1e-5, err_msg=name)


def test_full_int8_internals_and_error_bound(model, int8_model):
    it = interpreter(int8_model)
    ops = op_types(it)
    names = {name for name, _, _ in ops}
    assert not any(n.startswith("Flex") or n in ("CUSTOM", "DELEGATE") for n in names), names
    for name, ins, outs in ops:
        if name not in INDEX_FLOAT_OPS:
            assert "float32" not in ins | outs, (name, ins, outs)
    # The feature path is int8: convolutions, the four gathers and the blend of every variant.
    assert sum(n == "GATHER" and ins == {"int8", "int32"} for n, ins, _ in ops) == 16
    assert sum(n == "CONV_2D" and outs == {"int8"} for n, _, outs in ops) == 6
    # Float only where the offsets are floored: one DEQUANTIZE -> FLOOR per axis and variant.
    assert sum(n == "FLOOR" for n, _, _ in ops) == 2 * len(VARIANTS)

    calibration = images(16, seed=1)
    x = images(4, seed=5)
    for name in VARIANTS:
        layer = model.get_layer(name)
        offsets = layer._offsets(calibration)
        offset_range = float(tf.reduce_max(offsets) - tf.reduce_min(offsets)) + 0.5  # + sub-pixel
        bound = 5.5 + 1.5 * offset_range
        worst = mean = 0.0
        for it in (interpreter(int8_model), interpreter(int8_model, xnnpack=True)):
            for i in range(len(x)):
                got, step = run(it, x[i : i + 1])[name]
                err = np.abs(got - model(x[i : i + 1])[name].numpy()) / step
                worst, mean = max(worst, err.max()), max(mean, err.mean())
        assert worst <= bound, (name, worst, bound)
        assert mean <= 1.0, (name, mean)


def test_size_does_not_grow_with_the_image(float_model, int8_model):
    """No 2-D coordinate grids in the model: only 1-D constants grow, linearly with the side.

    One float per output pixel and group of a 2-D grid at 64x64 output would be 64 KB per
    variant; the 1-D ranges of the index arithmetic (int32 / float, length Wo * G or Ho) add a few
    KB per doubling of the side, doubling again at the next doubling (4x for a 2-D grid).
    """
    sizes = [len(float_model)] + [len(convert(build_model(n, n), int8=False)) for n in (16, 32)]
    first, second = sizes[1] - sizes[0], sizes[2] - sizes[1]
    assert 0 < second < 2.5 * first, sizes
    assert second < 16_000, sizes
    # Weights: 16*32 + 32 + 4*8 + 8 floats per variant (plus scopes); graph around 40 KB.
    assert len(float_model) < 64_000 and len(int8_model) < 64_000
