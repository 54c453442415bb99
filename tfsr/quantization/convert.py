"""TFLite conversion of tfsr models: float, float16, dynamic-range and full-int8 files.

Full int8 takes a model from :func:`tfsr.quantization.qat.quantize_model` whose ranges are set
(calibrated and / or trained): the converter reads every scale from the fake-quant nodes, so no
calibration pass runs at the export size (a 1080p representative dataset would cost gigabytes).

Models tfmot cannot quantise (DySample, a fixed-scale meta-upscale) go through
:func:`convert_calibrated`: the converter's own post-training calibration, run on a dynamic-size
function fed small patches, after which :func:`set_input_size` fixes the file's input size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.atomic_file import atomic_output, check_output_path

QUANTIZE_MODES = ("int8", "float16", "dynamic", "none")
IO_DTYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def input_signature(
    model: keras.Model, input_hw: tuple[int, int] | None, batch: int = 1
) -> tf.TensorSpec:
    """The TensorSpec ``(batch, H, W, C)`` to export; ``input_hw`` None keeps H and W dynamic.

    Raises:
        ValueError: a size that is not two positive integers, or one the model's own fixed input
            size contradicts.
    """
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] is None:
        raise ValueError(f"model {model.name} must take (N, H, W, C) images, got input {shape}")
    if input_hw is not None:
        if len(input_hw) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in input_hw
        ):
            raise ValueError(f"input size must be two positive integers (H, W), got {input_hw!r}")
        for own, asked in zip(shape[1:3], input_hw, strict=True):
            if own is not None and own != asked:
                raise ValueError(
                    f"model {model.name} takes inputs of {shape[1]}x{shape[2]} only; "
                    f"{input_hw[0]}x{input_hw[1]} was asked for"
                )
        hw = tuple(int(v) for v in input_hw)
    else:
        hw = shape[1:3]
    return tf.TensorSpec((batch, *hw, shape[-1]), tf.float32, name="lr")


def convert(
    model: keras.Model,
    quantize: str = "int8",
    *,
    input_hw: tuple[int, int] | None = (1080, 1920),
    io_dtype: str = "int8",
) -> bytes:
    """Converts ``model`` to a TFLite flatbuffer with builtin ops only.

    Args:
        model: the float inference model (``quantize`` other than int8) or its QAT copy with
            ranges set (int8).
        quantize: "int8" (weights and activations), "float16" (weights), "dynamic" (int8 weights,
            float activations) or "none".
        input_hw: fixed input size (H, W); None for a dynamic-size model.
        io_dtype: "int8", "uint8" or "float32": the type of the model's input and output; int8
            and uint8 need ``quantize="int8"``.

    Returns:
        The ``.tflite`` bytes.

    Raises:
        ValueError: a bad mode, a configuration mismatch (integer I/O without int8, int8 without
            a QAT model), a size the model cannot take, or a conversion failure.
    """
    check_modes(quantize, io_dtype)
    has_fake_quant = _has_fake_quant(model)
    if quantize == "int8" and not has_fake_quant:
        raise ValueError(
            f"int8 conversion needs a QAT model (tfsr.quantization.qat.quantize_model) with its "
            f"ranges set; model {model.name} has no fake-quant layers"
        )
    if quantize != "int8" and has_fake_quant:
        raise ValueError(f"quantize={quantize} needs the float model, not the QAT model")
    converter = _builtin_converter(model, input_hw)
    if quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.inference_input_type = IO_DTYPES[io_dtype]
        converter.inference_output_type = IO_DTYPES[io_dtype]
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return _run_converter(converter, model.name)


def _has_fake_quant(model: keras.Model) -> bool:
    return any("Quantize" in type(layer).__name__ for layer in model.layers)


def _builtin_converter(model: keras.Model, input_hw) -> tf.lite.TFLiteConverter:
    """A converter of ``model`` at ``input_hw`` (None: dynamic size), builtin ops only."""
    spec = input_signature(model, input_hw)

    @tf.function(input_signature=[spec])
    def serve(lr):
        return model(lr, training=False)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], model
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _run_converter(converter: tf.lite.TFLiteConverter, name: str) -> bytes:
    """The converted flatbuffer with short tensor names; ValueError on any converter failure."""
    try:
        content = converter.convert()
    except Exception as error:  # the converter raises ConverterError, RuntimeError, ...
        raise ValueError(f"TFLite conversion of {name} failed: {error}") from error
    return short_tensor_names(content)


def convert_calibrated(
    model: keras.Model,
    representative_data: Callable[[], Iterable[np.ndarray]],
    *,
    io_dtype: str = "int8",
) -> bytes:
    """Full-int8 conversion with the TFLite converter's post-training calibration.

    The function is converted with a dynamic input size, so that calibration runs on small
    patches (memory grows with the image size); fix the size afterwards with
    :func:`set_input_size`.

    Args:
        model: the float inference model (no fake-quant layers), one (N, H, W, C) input.
        representative_data: ``representative_data()`` yields float32 (1, h, w, C) arrays.
        io_dtype: "int8", "uint8" or "float32".

    Returns:
        The ``.tflite`` bytes, input (1, -1, -1, C).

    Raises:
        ValueError: a QAT model, a bad ``io_dtype`` or a conversion failure.
    """
    _check_choice("io_dtype", io_dtype, tuple(IO_DTYPES))
    if _has_fake_quant(model):
        raise ValueError(
            f"convert_calibrated needs the float model; {model.name} has fake-quant layers "
            "(use convert)"
        )

    def dataset():
        for x in representative_data():
            yield [np.asarray(x, np.float32)]

    converter = _builtin_converter(model, None)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.inference_input_type = IO_DTYPES[io_dtype]
    converter.inference_output_type = IO_DTYPES[io_dtype]
    return _run_converter(converter, model.name)


def set_input_size(content: bytes, input_hw: tuple[int, int]) -> bytes:
    """The model with its (only) input fixed to (1, H, W, C), checked to run at that size.

    The input's shape and shape signature become (1, H, W, C) (whatever its batch was); the
    model is run once on zeros at that size and the output's shape is set to what it gave (its
    signature stays dynamic). The ops inside keep their dynamic shapes (and the run-time shape
    ops of a dynamic-size conversion), so the interpreter still accepts ``resize_tensor_input``;
    delegates that need static shapes throughout (GPU, NNAPI) may refuse such a file. The SESR
    path converts at the fixed size instead (every shape folded).

    Raises:
        ValueError: a model with several inputs, an input that is not 4-D, or a model the
            interpreter cannot allocate or run at that size.
    """
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    subgraph = model.subgraphs[0]
    if len(subgraph.inputs) != 1:
        raise ValueError(f"set_input_size needs a model with one input, got {len(subgraph.inputs)}")
    tensor = subgraph.tensors[subgraph.inputs[0]]
    if len(tensor.shape) != 4:
        raise ValueError(f"set_input_size needs a (1, H, W, C) input, got shape {tensor.shape}")
    h, w = (int(v) for v in input_hw)
    tensor.shape = np.array([1, h, w, tensor.shape[3]], np.int32)
    tensor.shapeSignature = tensor.shape.copy()
    fixed = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    try:
        interpreter = Interpreter(model_content=fixed)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
        outputs = [
            interpreter.get_tensor(d["index"]).shape for d in interpreter.get_output_details()
        ]
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"the model does not run at input size {h}x{w}: {error}") from error
    for index, shape in zip(subgraph.outputs, outputs, strict=True):
        subgraph.tensors[index].shape = np.array(shape, np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def short_tensor_names(content: bytes) -> bytes:
    """Renames the tensors "lr" (input), "sr" (output) and "t{i}" (the rest).

    The converter names tensors after the graph's op paths; for a model as small as SESR-M5 those
    strings take a third of the file (21.7 KB instead of 26.8 KB at 1080p). Signature names stay.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for s, subgraph in enumerate(model.subgraphs):
        prefix = "" if s == 0 else f"s{s}_"
        inputs, outputs = list(subgraph.inputs), list(subgraph.outputs)
        for i, tensor in enumerate(subgraph.tensors):
            if i in inputs:
                name = "lr" if len(inputs) == 1 else f"lr{inputs.index(i)}"
            elif i in outputs:
                name = "sr" if len(outputs) == 1 else f"sr{outputs.index(i)}"
            else:
                name = f"t{i}"
            tensor.name = (prefix + name).encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tflite_ops(content: bytes) -> list[str]:
    """The operator names of a TFLite flatbuffer, in execution order (custom ops by name)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    return [op["op_name"] for op in interpreter._get_ops_details()]


def non_builtin_ops(content: bytes) -> list[str]:
    """Flex (TensorFlow) and custom ops in the model; empty for a builtin-only model."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    bad = []
    for code in model.operatorCodes:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            name = code.customCode.decode() if code.customCode else "?"
            bad.append(name)
    return bad


def check_modes(quantize: str, io_dtype: str, flag: str = "") -> None:
    """Raises ValueError for an unknown ``quantize`` or ``io_dtype``, or integer I/O without
    int8; ``flag`` ("--" for the command line) prefixes the names in the message."""
    _check_choice(f"{flag}quantize", quantize, QUANTIZE_MODES)
    _check_choice(f"{flag}io_dtype", io_dtype, tuple(IO_DTYPES))
    if io_dtype != "float32" and quantize != "int8":
        raise ValueError(
            f"{flag}io_dtype={io_dtype} needs {flag}quantize=int8 (a {quantize} model has float "
            f"inputs); use {flag}io_dtype=float32"
        )


def write_atomic(content: bytes, path: str) -> None:
    """Writes ``content`` to ``path`` through a temporary file in the same folder."""
    check_output_path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(content)
