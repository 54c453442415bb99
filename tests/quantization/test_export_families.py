"""Export of the non-SESR families: sesr_dysample and Meta-SESR at a fixed scale.

Both convert to TFLite builtins only, float32 and full int8 (the converter's own calibration on
LR patches, the input size fixed in the file afterwards), and run in the LiteRT interpreter close
to the Keras model. The Meta-SESR export form (:func:`tfsr.models.meta_sesr.fixed_scale_meta_sesr`)
equals the arbitrary-scale model at its scale.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from tests.cli import run_python
from tfsr.models.meta_sesr import fixed_scale_meta_sesr, meta_sesr
from tfsr.models.sesr_dysample import sesr_dysample
from tfsr.quantization import export
from tfsr.quantization.convert import non_builtin_ops

INPUT_HW = (12, 16)


def _randomise(layers, seed, std=0.3):
    rng = np.random.default_rng(seed)
    for layer in layers:
        for w in layer.weights:
            w.assign(rng.normal(0.0, std, size=w.shape).astype(np.float32))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """A small sesr_dysample x2 and a small Meta-SESR, as .keras files.

    Weights of the upsamplers are randomised so that they matter: DySample moves its sampling
    points by up to about a pixel, and Pos2Weight predicts non-zero filters (it starts at zero).
    """
    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("families")
    dysample = sesr_dysample(scale=2, variant="m3", name="dys")
    _randomise([dysample.get_layer("dysample")], seed=0, std=0.1)
    meta = meta_sesr(num_filters=8, num_blocks=1, expanded_filters=16, hidden_units=16, name="meta")
    _randomise([meta.get_layer("meta_upscale")], seed=1)
    paths = {"dysample": str(folder / "dys.keras"), "meta": str(folder / "meta.keras")}
    dysample.save(paths["dysample"])
    meta.save(paths["meta"])
    return {"dysample": dysample, "meta": meta, "paths": paths}


@pytest.fixture(scope="module")
def hr_image(tmp_path_factory):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(40, 220, size=(5, 6, 3)), np.ones((6, 6, 1)))
    path = tmp_path_factory.mktemp("val") / "img.png"
    Image.fromarray(smooth.astype(np.uint8)).save(path)
    return str(path)


def _lr(seed, hw=INPUT_HW):
    """A smooth random LR image in [0, 1] (1, H, W, 1), as SR inputs are."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.1, 0.9, size=(1, hw[0] // 2 + 1, hw[1] // 2 + 1, 1))
    return tf.image.resize(coarse, hw, "bilinear").numpy().astype(np.float32)


def _run_tflite(path, x):
    """The file's output on float x (quantising the input / dequantising the output)."""
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    assert list(detail["shape"]) == [1, *INPUT_HW, 1]
    if detail["dtype"] != np.float32:
        q, zero = detail["quantization"]
        x = np.clip(np.round(x / q + zero), -128, 127)
    interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
    interpreter.invoke()
    out = interpreter.get_output_details()[0]
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] != np.float32:
        q, zero = out["quantization"]
        return (y.astype(np.float32) - zero) * q, q
    return y, None


@pytest.mark.parametrize("scale", [2, 2.5, 1.3, (1.5, 3.0)])
def test_fixed_scale_meta_sesr_equals_original(model_files, scale):
    meta = model_files["meta"]
    fixed = fixed_scale_meta_sesr(meta, scale)
    pair = np.broadcast_to(np.asarray(scale, np.float32), (2,))
    x = _lr(seed=3, hw=(11, 13))
    ref = meta([x, pair[None]]).numpy()
    out = fixed(x).numpy()
    assert out.shape == ref.shape == (1, int(11 * pair[0] + 1e-6), int(13 * pair[1] + 1e-6), 1)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    # The meta-upscale contributes (its filters are not zero): the output is not just bilinear.
    bilinear = tf.image.resize(x, ref.shape[1:3], "bilinear").numpy()
    assert np.abs(ref - np.clip(bilinear, 0, 1)).max() > 0.05
    assert len(fixed.inputs) == 1 and fixed.get_layer("meta_upscale").trainable_weights == []


@pytest.mark.parametrize("family, scale", [("dysample", None), ("meta", 2.5)])
def test_float32_export_matches_keras(model_files, family, scale, tmp_path):
    out = str(tmp_path / f"{family}.tflite")
    report = export.export_model(
        model_files["paths"][family],
        out,
        quantize="none",
        io_dtype="float32",
        input_hw=INPUT_HW,
        scale=scale,
        val_data=[],
        log=lambda line: None,
    )
    with open(out, "rb") as f:
        assert non_builtin_ops(f.read()) == []
    x = _lr(seed=4)
    if family == "meta":
        assert report["handler"] == "meta_sesr" and report["scale"] == 2.5
        ref = model_files["meta"]([x, np.array([[2.5, 2.5]], np.float32)]).numpy()
    else:
        assert report["handler"] == "sesr_dysample" and report["scale"] == 2.0
        ref = model_files["dysample"](x).numpy()
    y, _ = _run_tflite(out, x)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=2e-5)


@pytest.mark.parametrize("family, scale", [("dysample", None), ("meta", (1.5, 3.0))])
def test_int8_export_is_close_to_keras(model_files, family, scale, hr_image, tmp_path):
    out = str(tmp_path / f"{family}_int8.tflite")
    report = export.export_model(
        model_files["paths"][family],
        out,
        quantize="int8",
        input_hw=INPUT_HW,
        scale=scale,
        calibration_batches=1,
        val_data=[hr_image],
        log=lambda line: None,
    )
    with open(out, "rb") as f:
        assert non_builtin_ops(f.read()) == []
    assert "CONV_2D" in report["ops"] and report["qat_steps"] == 0
    x = _lr(seed=5)
    if family == "meta":
        ref = model_files["meta"]([x, np.array([scale], np.float32)]).numpy()
    else:
        ref = model_files["dysample"](x).numpy()
    y, q = _run_tflite(out, x)
    assert y.shape == ref.shape
    # In output quantisation steps q: the input rounds (0.5 q), then every int8 layer; measured
    # worst 1.5 q (dysample) and 2.8 q (meta), mean 0.4 q and 0.7 q.
    err = np.abs(y - ref) / q
    assert err.mean() < 1.5 and err.max() < 6.0
    (row,) = report["verification"]
    assert row["runner"] == "resized input" and abs(row["drop_db"]) < 1.0
    # Input and output hold all of [0, 1] (full-range and grey images are not clipped), and the
    # input step puts every uint8 pixel value on an int8 level.
    interpreter = Interpreter(model_path=out)
    (q_in, zero_in), (q_out, zero_out) = (
        interpreter.get_input_details()[0]["quantization"],
        interpreter.get_output_details()[0]["quantization"],
    )
    assert q_in == pytest.approx(1 / 255, rel=1e-6) and zero_in == -128
    assert (-128 - zero_out) * q_out <= 0.0 and (127 - zero_out) * q_out >= 0.999


def test_meta_needs_a_scale(model_files, tmp_path):
    with pytest.raises(ValueError, match="upscales by any scale: give the scale"):
        export.export_model(model_files["paths"]["meta"], str(tmp_path / "m.tflite"), val_data=[])
    with pytest.raises(ValueError, match="at most 64 of each"):
        export.export_model(
            model_files["paths"]["meta"], str(tmp_path / "m.tflite"), scale=3.14159, val_data=[]
        )
    assert not os.path.exists(tmp_path / "m.tflite")


def test_qat_and_other_scales_are_refused_for_dysample(model_files, tmp_path):
    path = model_files["paths"]["dysample"]
    with pytest.raises(ValueError, match="--qat_steps=5: QAT is for SESR models"):
        export.export_model(path, str(tmp_path / "m.tflite"), qat_steps=5, val_data=[])
    with pytest.raises(
        ValueError,
        match=r"--range_percentile, --reconstruct: only read by the int8 export of SESR models, "
        "not by --quantize=int8 of a sesr_dysample model",
    ):
        export.export_model(
            path, str(tmp_path / "m.tflite"), range_percentile=99.9, reconstruct=False, val_data=[]
        )
    with pytest.raises(ValueError, match="upscales by x2 only, but x3 was asked for"):
        export.export_model(path, str(tmp_path / "m.tflite"), scale=3, val_data=[])
    assert not os.path.exists(tmp_path / "m.tflite")


def test_script_exports_meta_at_a_scale(model_files, tmp_path):
    out = tmp_path / "meta.tflite"
    result = run_python(
        "export.py",
        f"--model={model_files['paths']['meta']}",
        "--scale_v=2",
        "--scale_h=3",
        f"--out={out}",
        "--quantize=none",
        "--io_dtype=float32",
        f"--input_height={INPUT_HW[0]}",
        f"--input_width={INPUT_HW[1]}",
        "--val_data=none",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    detail = Interpreter(model_path=str(out)).get_output_details()[0]
    assert list(detail["shape"]) == [1, 2 * INPUT_HW[0], 3 * INPUT_HW[1], 1]
