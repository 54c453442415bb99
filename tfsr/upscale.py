"""Upscale image files or folders with a tfsr model.

    python -m tfsr.upscale photo.jpg holiday/ --model=sesr_m5_x2 --out=upscaled/
    python -m tfsr.upscale photo.jpg --model=runs/meta_sesr/model.keras --scale=2.7 --out=up/
    python -m tfsr.upscale photo.jpg --model=runs/meta_sesr/model.keras --scale_v=2 --scale_h=3 \
        --out=up/

Every input file becomes ``OUT/NAME.png`` (files inside a folder input keep their path below
that folder; ``--format=jpg``, ``webp`` or ``same`` for other kinds). RGB images go through the model on Y and bicubic on CbCr; grey images stay grey;
an alpha channel is kept; a photo's EXIF orientation is applied. Large images are upscaled in
tiles (``--tile``) with the whole image's result (up to float rounding). Inputs are never
overwritten; existing outputs only with ``--overwrite``. A file that cannot be read or upscaled
is reported by name and skipped; the exit code is then 1.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402

from tfsr.inference import load_upscaler, scale_from_flags  # noqa: E402
from tfsr.scale_flags import define_scale_flags  # noqa: E402
from tfsr.upscaling import (  # noqa: E402
    DEFAULT_MARGIN,
    DEFAULT_TILE,
    OUTPUT_FORMATS,
    check_outputs_free,
    plan_outputs,
    upscale_files,
)

_MODEL = flags.DEFINE_string(
    "model",
    "sesr_m5_x2",
    "Shipped model name, .keras/.h5 file, SavedModel folder, finished train.py run folder, "
    ".tflite file, .npz (collapsed SESR or LUT tables), or 'bicubic'.",
)
_OUT = flags.DEFINE_string("out", None, "Output folder (created if missing).")
_SCALE, _SCALE_V, _SCALE_H = define_scale_flags(
    "Upscaling factor, any for arbitrary-scale models (default: the model's own)."
)
_TILE = flags.DEFINE_integer("tile", DEFAULT_TILE, "LR tile side for large images.", lower_bound=1)
_MARGIN = flags.DEFINE_integer(
    "margin",
    DEFAULT_MARGIN,
    "LR context pixels around each tile (>= the model's receptive radius).",
    lower_bound=0,
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
_FORMAT = flags.DEFINE_enum(
    "format",
    "png",
    OUTPUT_FORMATS,
    "Output files: png (lossless), jpg, webp, or the same kind as each input (PNG where it "
    "cannot be written: GIF, TIFF). JPEG holds no transparency.",
)
_QUALITY = flags.DEFINE_integer(
    "quality", 95, "JPEG / WebP quality (100: lossless WebP).", lower_bound=1, upper_bound=100
)


def main(argv):
    # The files are the user's own choice, and large ones go through in tiles: no Pillow
    # "decompression bomb" refusal of images above 179 megapixels.
    Image.MAX_IMAGE_PIXELS = None
    inputs = argv[1:]
    if not inputs:
        sys.exit("tfsr.upscale: give one or more image files or folders")
    if not _OUT.value:
        sys.exit("tfsr.upscale: --out is required (the output folder)")
    try:
        pairs = plan_outputs(inputs, _OUT.value, _FORMAT.value)
        check_outputs_free(pairs, _OVERWRITE.value)  # before loading the model
        scale = scale_from_flags(_SCALE.value, _SCALE_V.value, _SCALE_H.value)
        upscaler = load_upscaler(_MODEL.value, scale)
        failures = upscale_files(
            upscaler,
            pairs,
            overwrite=_OVERWRITE.value,
            tile=_TILE.value,
            margin=_MARGIN.value,
            quality=_QUALITY.value,
        )
    except (ValueError, OSError) as error:
        sys.exit(f"tfsr.upscale: {error}")
    for src, message in failures:
        print(f"tfsr.upscale: skipped {src}: {message}", file=sys.stderr)
    print(f"{len(pairs) - len(failures)} image(s) written to {_OUT.value}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    app.run(main)
