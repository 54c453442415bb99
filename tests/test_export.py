"""Tests for export.py and tfsr.quantization.export (load, convert, verify, clear errors)."""

import os

import numpy as np
import pytest
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from tests.cli import run_python
from tfsr.evaluation import evaluate
from tfsr.inference import KerasUpscaler, TFLiteUpscaler
from tfsr.models.sesr import collapse_model, sesr
from tfsr.quantization import export


@pytest.fixture(scope="module")
def tiny_model_files(tmp_path_factory):
    """A tiny SESR as a training-form .keras file and as a training run folder."""
    keras.utils.set_random_seed(0)
    model = sesr(scale=2, num_filters=4, num_blocks=1, expanded_filters=8, name="tiny")
    folder = tmp_path_factory.mktemp("models")
    keras_path = str(folder / "tiny.keras")
    model.save(keras_path)
    run = folder / "run"
    run.mkdir()
    model.save(str(run / "model.keras"))
    return model, keras_path, str(run)


@pytest.fixture(scope="module")
def hr_image(tmp_path_factory):
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(40, 220, size=(6, 8, 3)), np.ones((6, 6, 1)))
    path = tmp_path_factory.mktemp("val") / "img.png"
    Image.fromarray(smooth.astype(np.uint8)).save(path)
    return str(path)


def test_export_int8_from_training_model(tiny_model_files, hr_image, tmp_path):
    model, keras_path, _ = tiny_model_files
    out = str(tmp_path / "tiny.tflite")
    lines = []
    report = export.export_model(
        keras_path,
        out,
        input_hw=(24, 32),
        qat_steps=2,
        calibration_batches=2,
        val_data=[hr_image],
        log=lines.append,
    )
    assert os.path.getsize(out) == report["bytes"]
    assert report["handler"] == "sesr" and report["scale"] == 2.0
    assert set(report["ops"]) == {"CONV_2D", "PRELU", "ADD", "DEPTH_TO_SPACE"}
    detail = Interpreter(model_path=out).get_input_details()[0]
    assert list(detail["shape"]) == [1, 24, 32, 1] and detail["dtype"] == np.int8
    # The verification row is the evaluation protocol run on both models.
    (row,) = report["verification"]
    float_psnr = evaluate(KerasUpscaler(model, 2, name="float"), [hr_image], 2)["psnr"]
    tflite_psnr = evaluate(TFLiteUpscaler(out, 2), [hr_image], 2)["psnr"]
    assert row["float_psnr"] == pytest.approx(float_psnr, abs=1e-4)
    assert row["tflite_psnr"] == pytest.approx(tflite_psnr, abs=1e-9)
    assert row["drop_db"] == pytest.approx(float_psnr - tflite_psnr, abs=1e-4)
    assert abs(row["drop_db"]) < 1.0
    assert row["runner"] == "resized input"
    assert any("QAT: 2 steps" in line for line in lines)


def test_export_float_from_run_folder(tiny_model_files, tmp_path):
    model, _, run = tiny_model_files
    out = str(tmp_path / "tiny_f32.tflite")
    report = export.export_model(
        run, out, quantize="none", io_dtype="float32", input_hw=None, val_data=[]
    )
    assert report["verification"] == [] and report["qat_steps"] == 0
    x = np.random.default_rng(1).uniform(size=(9, 11, 1)).astype(np.float32)
    ref = np.clip(model(x[None]).numpy()[0], 0, 1)
    np.testing.assert_allclose(TFLiteUpscaler(out, 2).upscale_y(x), ref, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"spec": "no_such_model"}, ValueError, "unknown model 'no_such_model'"),
        ({"spec": "missing.keras"}, FileNotFoundError, "'missing.keras' does not exist"),
        ({"spec": "missing.npz"}, FileNotFoundError, "'missing.npz' does not exist"),
        ({"spec": "MISSING.NPZ"}, FileNotFoundError, "'MISSING.NPZ' does not exist"),
        ({"spec": "runs/typo"}, FileNotFoundError, "'runs/typo' does not exist"),
        ({"quantize": "float16"}, ValueError, "--io_dtype=int8 needs --quantize=int8"),
        (
            {"quantize": "none", "io_dtype": "float32", "qat_steps": 5},
            ValueError,
            "--qat_steps=5 needs --quantize=int8",
        ),
        ({"out": "model.bin"}, ValueError, "must end in .tflite"),
        ({"out": "/no/such/dir/m.tflite"}, FileNotFoundError, "output folder"),
        ({"input_hw": (0, 8)}, ValueError, "input size must be two positive integers"),
        (
            {"calibration_batches": -1},
            ValueError,
            "--calibration_batches must be a positive integer",
        ),
        ({"qat_steps": -3}, ValueError, "--qat_steps must be a non-negative integer"),
        ({"learning_rate": -1e-5}, ValueError, "--qat_lr must be a positive number, got -1e-05"),
        ({"learning_rate": float("nan")}, ValueError, "--qat_lr must be a positive number"),
        (
            {"range_percentile": 30},
            ValueError,
            r"--range_percentile must be 0 or in \(50, 100\], got 30",
        ),
        # 33 rows at x2.5 would make 82 (not 82.5): the file would upscale by 2.485x2.5.
        (
            {"spec": "meta_sesr", "scale": 2.5, "input_hw": (33, 48)},
            ValueError,
            r"--input_height=33 is not a multiple of 2, the denominator of scale 2.5: .*"
            r"\(try 32 or 34\)",
        ),
        ({"val_data": ["../shared/data/val/Set5", "Set14typo"]}, FileNotFoundError, "'Set14typo'"),
        (
            {"quantize": "float16", "io_dtype": "float32", "reconstruct": False},
            ValueError,
            "--reconstruct: only read by the int8 export of SESR models, not by "
            "--quantize=float16 of a sesr model",
        ),
    ],
)
def test_bad_requests_raise_clearly(tiny_model_files, tmp_path, kwargs, error, match):
    _, keras_path, _ = tiny_model_files
    args = {"spec": keras_path, "out": str(tmp_path / "m.tflite"), "val_data": []}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        export.export_model(args.pop("spec"), args.pop("out"), **args)
    assert not os.path.exists(tmp_path / "m.tflite")


def test_rgb_model_is_calibrated_on_rgb_patches():
    # Calibration used to feed Y patches to any model: an RGB SESR failed in its first conv.
    keras.utils.set_random_seed(0)
    rgb = sesr(scale=2, num_filters=4, num_blocks=1, expanded_filters=8, input_channels=3)
    q = export.quantize_for_export(
        collapse_model(rgb), 2, calibration_batches=1, reconstruct=False, log=lambda _: None
    )
    assert q.inputs[0].shape[-1] == 3


def test_run_folder_without_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds neither model.keras"):
        export.load_model(str(tmp_path))


def test_load_model_tells_npz_files_by_their_header(tmp_path):
    import shutil

    from tfsr.lut import LutModel
    from tfsr.models.pretrained import pretrained_path

    shutil.copy(pretrained_path("sesr_m5_x2"), tmp_path / "M5.NPZ")
    assert not isinstance(export.load_model(str(tmp_path / "M5.NPZ")), LutModel)
    assert isinstance(export.load_model(pretrained_path("rclut_x4")), LutModel)
    with pytest.raises(ValueError, match="rclut_x4 is look-up tables: .* no TFLite export"):
        export.export_model("rclut_x4", str(tmp_path / "lut.tflite"), val_data=[])
    (tmp_path / "m.tflite").write_bytes(b"tflite")
    with pytest.raises(ValueError, match="'.*m.tflite' is not a model file tfsr loads"):
        export.load_model(str(tmp_path / "m.tflite"))


def test_unknown_model_type_has_no_handler():
    import tf_keras as keras

    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.UpSampling2D(2)(inputs), name="upsample")
    with pytest.raises(ValueError, match="no exporter for model 'upsample'.*UpSampling2D"):
        export.export_handler_for(model)


def test_handler_registry_replaces_by_name():
    handler = export.ExportHandler("test_dummy", lambda m: False, lambda m: m, "never matches")
    export.register_export_handler(handler)
    export.register_export_handler(handler)
    assert [h.name for h in export._HANDLERS].count("test_dummy") == 1
    export._HANDLERS.remove(handler)


def test_script_reports_one_line_and_fails(tmp_path):
    result = run_python("export.py", "--model=missing.keras", f"--out={tmp_path}/m.tflite")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "export.py: error: model file 'missing.keras' does not exist"
    )
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "m.tflite")


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--report=/no/such/dir/r.json", "--report: output folder '/no/such/dir' does not exist"),
        ("--report=OUT", "would overwrite --out or --model"),  # used to replace the .tflite
        ("--calibration_batches=-1", "flag --calibration_batches=-1: -1 is not a positive integer"),
        # Flags this export would not read (they used to be ignored without a word).
        (
            "--quantize=float16 --qat_lr=1e-4 --noreconstruct",
            "--qat_lr, --reconstruct: only read by --quantize=int8, got --quantize=float16",
        ),
        ("--qat_steps=0 --qat_dir=QAT", "--qat_dir: only read by QAT, and --qat_steps=0"),
        ("--qat_lr=1e-4", "--qat_lr: only read by QAT, and --qat_steps=0 (give --qat_steps=N)"),
    ],
)
def test_script_checks_flags_before_the_export(tmp_path, flag, message):
    out = f"{tmp_path}/m.tflite"
    flags = flag.replace("OUT", out).replace("QAT", f"{tmp_path}/qat").split()
    result = run_python("export.py", "--model=sesr_m5_relu_x2", f"--out={out}", *flags)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "m.tflite")


def test_script_refuses_sesr_int8_flags_for_other_families(tmp_path):
    # The family is known once the model is loaded: the library checks, before any conversion.
    out = f"{tmp_path}/m.tflite"
    result = run_python(
        "export.py", "--model=sesr_dysample_x2", f"--out={out}", "--range_percentile=99.9"
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        "--range_percentile: only read by the int8 export of SESR models, not by --quantize=int8 "
        "of a sesr_dysample model" in result.stderr
    )
    assert not os.path.exists(out)
