"""Export a tfsr model to TFLite (full int8 by default) and check its quality.

    python export.py --model=runs/sesr_m5_x2 --out=sesr_m5_x2_int8.tflite
    python export.py --model=sesr_m5_relu_x2 --out=m5.tflite --train_data=../shared/data/train
    python export.py --model=sesr_m5_x2 --out=m5_qat.tflite --qat_steps=2000 --qat_dir=qat_ckpt
    python export.py --model=model.keras --out=m5_f16.tflite --quantize=float16 --io_dtype=float32
    python export.py --model=meta_sesr --scale=2.5 --out=meta_x2.5_int8.tflite

Arbitrary-scale models (meta_sesr) are exported at one --scale (or --scale_v and --scale_h) with
their filters baked in; they and sesr_dysample are quantised by the converter's calibration.

int8 (SESR): activation ranges are calibrated on training patches, then searched, and the kernels
refitted and re-rounded, against the float model's outputs (--reconstruct, on by default);
--qat_steps=N adds N steps of quantisation-aware fine-tuning (tfmot; resumable with --qat_dir).
Afterwards the file is evaluated on --val_data (float vs TFLite PSNR).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import app, flags  # noqa: E402

from tfsr.scale_flags import define_scale_flags  # noqa: E402

_MODEL = flags.DEFINE_string(
    "model", None, "Shipped name, .keras/.h5/.npz file, SavedModel or training run folder."
)
_OUT = flags.DEFINE_string("out", None, "Output .tflite file (written atomically).")
_QUANTIZE = flags.DEFINE_enum(
    "quantize", "int8", ["int8", "float16", "dynamic", "none"], "Quantisation."
)
_QAT_STEPS = flags.DEFINE_integer(
    "qat_steps",
    None,
    "Quantisation-aware fine-tuning steps after calibration and reconstruction (default 0: "
    "post-training only, which measured as good on the shipped models). QAT is for SESR models "
    "only: other families are calibrated by the TFLite converter.",
    lower_bound=0,
)
_SCALE, _SCALE_V, _SCALE_H = define_scale_flags(
    "Scale to export an arbitrary-scale model (meta_sesr) at, e.g. 2 or 2.5.", axis_word="scale"
)
_QAT_DIR = flags.DEFINE_string("qat_dir", "", "Checkpoint folder for QAT; rerunning resumes.")
_QAT_LR = flags.DEFINE_float(
    "qat_lr", None, "QAT learning rate (Adam, cosine decay; default DEFAULT_QAT_LR, 1e-5)."
)
_RANGE_PERCENTILE = flags.DEFINE_float(
    "range_percentile",
    None,
    "SESR int8: activation ranges from this percentile of the calibration activations "
    "(default DEFAULT_RANGE_PERCENTILE, 99.99; 0: the mean batch min / max).",
)
_RECONSTRUCT = flags.DEFINE_boolean(
    "reconstruct",
    True,
    "SESR int8: after calibration, search the activation ranges and re-round the kernels "
    "against the float model's outputs (--noreconstruct: calibration ranges, nearest rounding).",
)
_CALIBRATION_BATCHES = flags.DEFINE_integer(
    "calibration_batches",
    16,
    "Batches of 16 LR patches (64x64) for the activation ranges.",
    lower_bound=1,
)
_TRAIN_DATA = flags.DEFINE_string(
    "train_data", "embedded", "Calibration / QAT images: 'embedded', 'div2k' or a folder."
)
_INPUT_HEIGHT = flags.DEFINE_integer("input_height", 1080, "Input height (0: dynamic size).")
_INPUT_WIDTH = flags.DEFINE_integer("input_width", 1920, "Input width (0: dynamic size).")
_IO_DTYPE = flags.DEFINE_enum(
    "io_dtype", "int8", ["int8", "uint8", "float32"], "Input / output type of the file."
)
_VAL_DATA = flags.DEFINE_list(
    "val_data",
    None,
    "Validation folders, comma separated (default ../shared/data/val/Set5, or a held-out "
    "embedded photo); 'none' skips verification.",
)
_REPORT = flags.DEFINE_string("report", "", "Also write the report as JSON here.")


def _input_hw():
    h, w = _INPUT_HEIGHT.value, _INPUT_WIDTH.value
    if h == 0 and w == 0:
        return None
    if h < 1 or w < 1:
        raise ValueError(
            f"--input_height and --input_width must both be positive (or both 0 for a dynamic "
            f"size), got {h}x{w}"
        )
    return (h, w)


# Flags that only an int8 export reads, and those that only QAT reads.
_INT8_ONLY = (
    "qat_steps",
    "qat_dir",
    "qat_lr",
    "range_percentile",
    "reconstruct",
    "calibration_batches",
    "train_data",
)
_QAT_ONLY = ("qat_dir", "qat_lr")


def _check_flags_apply() -> None:
    """Flags given on the command line that this export would not read are an error (they used
    to be ignored): the int8-only flags with another --quantize, the QAT ones without QAT. The
    SESR-only int8 flags are checked against the model's family by the library, which knows it."""
    from tfsr.quantization.export import DEFAULT_QAT_STEPS

    given = [
        name
        for name in _INT8_ONLY
        if flags.FLAGS[name].present and not (name == "qat_steps" and _QAT_STEPS.value == 0)
    ]
    if _QUANTIZE.value != "int8" and given:
        names = ", ".join(f"--{n}" for n in given)
        raise ValueError(f"{names}: only read by --quantize=int8, got --quantize={_QUANTIZE.value}")
    steps = DEFAULT_QAT_STEPS if _QAT_STEPS.value is None else _QAT_STEPS.value
    unused = [f"--{n}" for n in _QAT_ONLY if flags.FLAGS[n].present]
    if steps == 0 and unused:
        raise ValueError(
            f"{', '.join(unused)}: only read by QAT, and --qat_steps={steps} (give --qat_steps=N)"
        )


def main(argv):
    del argv
    import tensorflow as tf

    from tfsr.atomic_file import atomic_output, check_output_path
    from tfsr.quantization.export import export_model
    from tfsr.training import user_errors
    from tfsr.upscaling import one_line

    val_data = _VAL_DATA.value
    if val_data == ["none"]:
        val_data = []
    # Unset tuning flags leave the library's defaults (tfsr.quantization.export.DEFAULT_*).
    tuning = {
        name: flag.value
        for name, flag in (("learning_rate", _QAT_LR), ("range_percentile", _RANGE_PERCENTILE))
        if flag.value is not None
    }
    if _RECONSTRUCT.present:  # unset: the library's default (on for SESR int8)
        tuning["reconstruct"] = _RECONSTRUCT.value
    try:
        if not _MODEL.value or not _OUT.value:
            raise ValueError("--model and --out are required")
        _check_flags_apply()
        if _REPORT.value:
            try:
                check_output_path(_REPORT.value)
            except OSError as error:
                raise ValueError(f"--report: {error}") from None
            taken = {os.path.realpath(p) for p in (_OUT.value, _MODEL.value)}
            if os.path.realpath(_REPORT.value) in taken:
                raise ValueError(f"--report={_REPORT.value} would overwrite --out or --model")
        report = export_model(
            _MODEL.value,
            _OUT.value,
            quantize=_QUANTIZE.value,
            input_hw=_input_hw(),
            io_dtype=_IO_DTYPE.value,
            qat_steps=_QAT_STEPS.value,
            qat_dir=_QAT_DIR.value or None,
            calibration_batches=_CALIBRATION_BATCHES.value,
            train_data=_TRAIN_DATA.value,
            val_data=val_data,
            scale=_SCALE.value,
            scale_v=_SCALE_V.value,
            scale_h=_SCALE_H.value,
            **tuning,
        )
        print(
            f"conversion {report['conversion_s']:.1f} s, peak memory "
            f"{report['peak_rss_mb']:.0f} MB, {report['bytes']} bytes, ops "
            f"{', '.join(report['ops'])}"
        )
        if _REPORT.value:
            with atomic_output(_REPORT.value) as tmp, open(tmp, "w") as f:
                json.dump(report, f, indent=2)
    except (*user_errors(), tf.errors.OpError) as error:  # OSError: --out a folder, ...
        print(f"export.py: error: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
