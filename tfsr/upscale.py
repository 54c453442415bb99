"""Upscale image files or folders with a tfsr model.

    python -m tfsr.upscale photo.jpg holiday/ --model=sesr_m5_x2 --out=upscaled/

Every input file becomes ``OUT/NAME.png`` (files inside a folder input keep their path below
that folder). RGB images go through the model on Y and bicubic on CbCr; grey images stay grey;
an alpha channel is kept. Large images are upscaled in tiles (``--tile``) with the same result.
Inputs are never overwritten; existing outputs only with ``--overwrite``. Unreadable files are
reported by name and skipped; the exit code is then 1.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

from tfsr.data.io import ImageReadError, list_images, read_image, write_image  # noqa: E402
from tfsr.inference import load_upscaler  # noqa: E402
from tfsr.upscaling import DEFAULT_MARGIN, DEFAULT_TILE, upscale_image  # noqa: E402

_MODEL = flags.DEFINE_string(
    "model", "sesr_m5_x2", "Shipped model name, .keras/.h5 file, .tflite file, or 'bicubic'."
)
_OUT = flags.DEFINE_string("out", None, "Output folder (created if missing).")
_SCALE = flags.DEFINE_float("scale", None, "Upscaling factor (default: the model's own).")
_TILE = flags.DEFINE_integer("tile", DEFAULT_TILE, "LR tile side for large images.")
_MARGIN = flags.DEFINE_integer(
    "margin",
    DEFAULT_MARGIN,
    "LR context pixels around each tile (>= the model's receptive radius).",
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing output files.")


def plan_outputs(inputs: list[str], out_dir: str) -> list[tuple[str, str]]:
    """``(input file, output file)`` pairs for files and folders given on the command line.

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: no image found, two inputs with the same output, or an output that is an input.
    """
    pairs = []
    for item in inputs:
        if os.path.isdir(item):
            root = os.path.normpath(item)
            for path in list_images(root):
                rel = os.path.splitext(os.path.relpath(path, root))[0]
                pairs.append((path, os.path.join(out_dir, rel + ".png")))
        elif os.path.isfile(item):
            stem = os.path.splitext(os.path.basename(item))[0]
            pairs.append((item, os.path.join(out_dir, stem + ".png")))
        else:
            raise FileNotFoundError(f"input {item!r} does not exist")
    if not pairs:
        raise ValueError("no input images given")
    seen = {}
    for src, dst in pairs:
        key = os.path.realpath(dst)
        if key in seen:
            raise ValueError(f"{seen[key]!r} and {src!r} would both be written to {dst!r}")
        seen[key] = src
    sources = {os.path.realpath(src) for src, _ in pairs}
    for src, dst in pairs:
        if os.path.realpath(dst) in sources:
            raise ValueError(f"output {dst!r} is an input image; choose another --out")
    return pairs


def upscale_files(upscaler, pairs, *, overwrite=False, tile=DEFAULT_TILE, margin=DEFAULT_MARGIN):
    """Upscales every pair; returns the list of ``(input, error message)`` that failed."""
    if not overwrite:
        existing = [dst for _, dst in pairs if os.path.exists(dst)]
        if existing:
            raise FileExistsError(
                f"{len(existing)} output file(s) exist, e.g. {existing[0]!r}; use --overwrite"
            )
    failures = []
    for src, dst in tqdm(pairs, desc="upscaling", unit="image", disable=len(pairs) < 2):
        try:
            image = read_image(src, keep_alpha=True)
            if (image[..., 3] == 255).all():
                image = image[..., :3]
            if (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all():
                image = image[..., 0] if image.shape[-1] == 3 else image
            result = upscale_image(upscaler, image, tile=tile, margin=margin)
            os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
            write_image(dst, result, overwrite=overwrite)
        except (ImageReadError, OSError) as error:
            failures.append((src, str(error)))
    return failures


def main(argv):
    inputs = argv[1:]
    if not inputs:
        sys.exit("tfsr.upscale: give one or more image files or folders")
    if not _OUT.value:
        sys.exit("tfsr.upscale: --out is required (the output folder)")
    try:
        pairs = plan_outputs(inputs, _OUT.value)
        upscaler = load_upscaler(_MODEL.value, _SCALE.value)
        failures = upscale_files(
            upscaler, pairs, overwrite=_OVERWRITE.value, tile=_TILE.value, margin=_MARGIN.value
        )
    except (ValueError, OSError) as error:
        sys.exit(f"tfsr.upscale: {error}")
    for src, message in failures:
        print(f"tfsr.upscale: skipped {src}: {message}", file=sys.stderr)
    print(f"{len(pairs) - len(failures)} image(s) written to {_OUT.value}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    app.run(main)
