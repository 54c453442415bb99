"""Measure an upscaler's PSNR / SSIM (Y channel) on benchmark folders, as SR papers do.

    python -m tfsr.evaluate --model=bicubic --data=../shared/data/val/Set5 --scale=2
    python -m tfsr.evaluate --model=rclut_x4 --data=../shared/data/val/Set5  # its own x4
    python -m tfsr.evaluate --model=runs/sesr/model.keras --scale=2 \
        --data=../shared/data/val/Set5,../shared/data/val/Set14 --json
    python -m tfsr.evaluate --model=runs/meta_sesr/model.keras --scale=2.5 \
        --data=../shared/data/val/Set5

Arbitrary-scale models (``meta_sesr``) run at any ``--scale`` (or ``--scale_v`` / ``--scale_h``);
at a scale without LR files, the HR images are cropped to a multiple of p for a scale p / q and
the LR is made from them, so that the SR output has the HR size.

``--model`` is anything :func:`tfsr.inference.load_upscaler` takes ("bicubic", a .keras / .h5
file or SavedModel folder, a .tflite file, a shipped pretrained name).

A data folder is either a benchmark folder, with ``HR/`` and (optionally) ``LR_bicubic/X{s}/``
holding ``{name}x{s}.png``, or a plain folder of HR images. Given LR files are used as they are;
otherwise LR is made from HR: cropped to a multiple of the scale (``modcrop``), MATLAB-bicubic
downscaled and rounded to uint8 (the way the LR files were made).

The protocol (``../shared/data/README.md``): models with a Y input, and bicubic, run on Y of the
LR image and their output is rounded to uint8; RGB models run on RGB, rounded to uint8, and Y is
taken from the result. PSNR and SSIM are measured on Y after cropping ``crop_border`` pixels
(default: the scale, rounded up) from every side; a single-channel (grey) image is its own Y, as
in the scripts that produced the published tables (see :mod:`tfsr.metrics`).

Output: a line per image and a mean per data folder. With ``--json`` the last line is JSON: one
object for one folder, a list of such objects (one per folder, in ``--data`` order) for several.
Each object has ``model, dataset, data_dir, scale, crop_border, lr_source, psnr, ssim, images``
(the number of images) and ``per_image`` (a list of ``{name, psnr, ssim}``).
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

from absl import app, flags  # noqa: E402

from tfsr.evaluation import evaluate, format_result  # noqa: E402
from tfsr.inference import load_upscaler, scale_from_flags  # noqa: E402
from tfsr.scale_flags import define_scale_flags  # noqa: E402
from tfsr.upscaling import PER_IMAGE_ERRORS, one_line  # noqa: E402

_MODEL = flags.DEFINE_string(
    "model",
    "bicubic",
    "'bicubic', a shipped model name, .keras/.h5 file, SavedModel folder, finished train.py run "
    "folder, .tflite file or .npz (collapsed SESR or LUT tables).",
)
_DATA = flags.DEFINE_list("data", None, "Comma-separated data folders (HR/ + LR_bicubic/, or HR).")
_SCALE, _SCALE_V, _SCALE_H = define_scale_flags(
    "Upscaling factor (2, 3, 4, or any, e.g. 2.5, for arbitrary-scale models); default: the "
    "model's own (bicubic has none: give it)."
)
_CROP_BORDER = flags.DEFINE_integer(
    "crop_border",
    None,
    "Pixels cropped from every side before measuring (default: the scale, rounded up).",
)
_JSON = flags.DEFINE_bool("json", False, "Print the results as JSON on the last line.")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"tfsr.evaluate: unexpected arguments {argv[1:]}")
    if not _DATA.value:
        sys.exit("tfsr.evaluate: --data is required (comma-separated data folders)")
    try:
        scale = scale_from_flags(_SCALE.value, _SCALE_V.value, _SCALE_H.value)
        if isinstance(scale, tuple) and scale[0] == scale[1]:
            scale = scale[0]
        upscaler = load_upscaler(_MODEL.value, scale)
        if scale is None:
            scale = upscaler.scale
        results = []
        for data_dir in _DATA.value:
            result = evaluate(
                upscaler,
                data_dir,
                scale,
                crop_border=_CROP_BORDER.value,
                progress=sys.stderr.isatty(),
            )
            print(format_result(result), flush=True)
            results.append(result)
    except PER_IMAGE_ERRORS as error:  # also LiteRT's RuntimeError, TensorFlow's OpError
        sys.exit(f"tfsr.evaluate: {one_line(error)}")
    if _JSON.value:
        print(json.dumps(results[0] if len(results) == 1 else results))


if __name__ == "__main__":
    app.run(main)
