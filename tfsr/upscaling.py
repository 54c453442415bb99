"""Upscaling real images: any size (tiled), RGB, grey or with alpha. Library side of
``python -m tfsr.upscale``.

- RGB: a Y-only model runs on Y (BT.601); Cb and Cr are upscaled with MATLAB bicubic.
- Grey: the model runs on the grey values as its Y (as the evaluation protocol does); an RGB
  model runs on R = G = B and its output is made grey again with full-range luma.
- Alpha: kept, upscaled with bicubic. The colour of fully transparent pixels (often black, or a
  palette's key colour) is first replaced by that of the nearest pixel that is not, so that it
  does not bleed into the visible edge (no dark or coloured halo); visible pixels are upscaled as
  they are (not premultiplied: a model is not linear, and a uniformly translucent image then
  gives the same colours as the opaque one).
- Large images are cut into LR tiles of about ``tile`` x ``tile`` pixels that overlap by about
  ``margin`` pixels on every side; each tile's margin is dropped after upscaling. For a scale
  p / q (2.5 = 5 / 2) tile corners sit on multiples of q LR pixels, so that every tile's output
  grid is the whole image's (tile and margin are rounded up to multiples of q). When the margin
  is at least the model's receptive-field radius (9 LR pixels for SESR-M5, 15 for SESR-XL; 2 for
  bicubic), the tiled result equals the whole-image result up to float rounding (a rare pixel
  one uint8 level apart, where a value sits on a rounding tie).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tfsr.data.color import grey_to_rgb, rgb_to_grey
from tfsr.data.imresize import imresize, scale_name, scale_ratio, to_uint8
from tfsr.data.io import (
    IMAGE_EXTENSIONS,
    TIFF_EXTENSIONS,
    WRITE_EXTENSIONS,
    has_alpha_channel,
    holds_alpha,
    is_animation,
    list_images,
    read_icc_profile,
    read_image,
    write_image,
)
from tfsr.inference import GRID_DENOMINATOR, Upscaler

UPSCALE_EXTENSIONS = IMAGE_EXTENSIONS + TIFF_EXTENSIONS
"""The files of a folder that ``tfsr.upscale`` takes."""

DEFAULT_TILE = 512
DEFAULT_MARGIN = 16


def _tiles(length: int, tile: int):
    for start in range(0, length, tile):
        yield start, min(start + tile, length)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def run_tiled(
    run: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    scale: tuple[float, float],
    *,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
) -> np.ndarray:
    """Applies ``run`` ((h, w, C) -> (about s_v h, s_h w, C')) to ``image`` tile by tile.

    On an axis of scale p / q (lowest terms), tile corners and margins are multiples of q LR
    pixels, which start exactly p HR pixels apart: a piece's output grid is then a window of the
    whole image's (the phase of every output pixel is the same), whether ``run`` makes floor or
    ceil of ``s * size`` pixels. The last tile on an axis keeps all the rows or columns its piece
    made, so the result has the size ``run`` gives the whole image.

    Args:
        run: the upscaling function for one piece.
        image: (H, W, C) float array.
        scale: (s_v, s_h); a scale that is no ratio p / q with q <= ``GRID_DENOMINATOR`` (100)
            runs the whole image, with a warning when it is larger than a tile.
        tile: LR tile side (rounded up to a multiple of q); images no larger than this in both
            sides run whole.
        margin: LR pixels of context on each side of a tile (rounded up to a multiple of q),
            dropped from the result.
    """
    if tile <= 0 or margin < 0:
        raise ValueError(f"tile must be positive and margin >= 0, got tile={tile}, margin={margin}")
    h, w = image.shape[:2]
    try:
        (pv, qv), (ph, qh) = (scale_ratio(s, GRID_DENOMINATOR) for s in scale)
    except ValueError:
        if h > tile or w > tile:
            warnings.warn(
                f"scale {scale_name(scale)} is no ratio p/q with q <= {GRID_DENOMINATOR}: the "
                f"{h}x{w} image runs whole, not in tiles (give a scale such as 4/3 as a fraction)",
                stacklevel=2,
            )
        return run(image)
    tile_v, tile_h = _round_up(tile, qv), _round_up(tile, qh)
    if h <= tile_v and w <= tile_h:
        return run(image)
    margin_v, margin_h = _round_up(margin, qv), _round_up(margin, qh)

    def window(start, stop, length, tile_margin, p, q):
        """(LR piece start, stop; HR rows of the piece to keep, as a slice)."""
        lo, hi = max(start - tile_margin, 0), min(stop + tile_margin, length)
        first = (start - lo) // q * p
        last = first + (stop - start) // q * p if stop < length else None
        return lo, hi, slice(first, last)

    bands = []
    for y0, y1 in _tiles(h, tile_v):
        py0, py1, keep_y = window(y0, y1, h, margin_v, pv, qv)
        row = []
        for x0, x1 in _tiles(w, tile_h):
            px0, px1, keep_x = window(x0, x1, w, margin_h, ph, qh)
            row.append(run(image[py0:py1, px0:px1])[keep_y, keep_x])
        bands.append(np.concatenate(row, axis=1))
    return np.concatenate(bands, axis=0)


def upscale_image(
    upscaler: Upscaler,
    image: np.ndarray,
    *,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
) -> np.ndarray:
    """Upscales a uint8 image with ``upscaler``.

    Args:
        upscaler: from :func:`tfsr.inference.load_upscaler`.
        image: uint8 (H, W) grey, (H, W, 2) grey and alpha, (H, W, 3) RGB or (H, W, 4) RGBA.
        tile, margin: see :func:`run_tiled`.

    Returns:
        uint8 image of the same kind, (s_v H, s_h W[, C]) pixels for integer scales (floor or
        ceil, as the model decides, for others).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 2, 3, 4))):
        raise ValueError(
            f"expected an (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) image, got {image.shape}"
        )
    alpha = None
    if has_alpha_channel(image):
        image, alpha = image[..., :-1], image[..., -1]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]

    if image.ndim == 2:
        image = image[..., None]
        if upscaler.channels == 3:  # an RGB model: run on R = G = B, made grey again

            def run_colour(piece):
                return rgb_to_grey(upscaler.upscale_rgb(grey_to_rgb(piece)))

        else:
            run_colour = upscaler.upscale_y
    else:
        run_colour = upscaler.upscale_rgb
    x = image.astype(np.float32) / 255.0
    if alpha is not None:
        x = np.concatenate([fill_transparent(x, alpha), alpha[..., None] / np.float32(255)], -1)

    def run(piece):
        if alpha is None:
            return run_colour(piece)
        # Alpha rides along as the last channel: bicubic, tile by tile like the colour.
        colour = np.asarray(run_colour(piece[..., :-1]))
        big_alpha = np.asarray(imresize(piece[..., -1], upscaler.scale_pair))
        big_alpha = big_alpha[: colour.shape[0], : colour.shape[1], None]
        return np.concatenate([colour, big_alpha], axis=-1)

    def run_uint8(piece):
        # Each tile becomes uint8 at once (the same values as rounding the whole image): the
        # output is assembled at 1 byte a value, not as float copies of the whole result.
        return np.asarray(to_uint8(np.asarray(run(piece), np.float64) * 255.0))

    out = run_tiled(run_uint8, x, upscaler.scale_pair, tile=tile, margin=margin)
    return out[..., 0] if out.shape[-1] == 1 else out


def fill_transparent(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``colour`` (H, W, C) with every pixel of ``alpha`` 0 given the colour of the nearest pixel
    (Euclidean distance) whose alpha is not 0; unchanged when no pixel, or every pixel, is
    transparent. What a transparent pixel holds is invisible, but an upscaler mixes it into its
    visible neighbours: black there would darken the upscaled edge."""
    from scipy import ndimage

    transparent = np.asarray(alpha) == 0
    if not transparent.any() or transparent.all():
        return colour
    nearest = ndimage.distance_transform_edt(
        transparent, return_distances=False, return_indices=True
    )
    return colour[nearest[0], nearest[1]]


OUTPUT_FORMATS = ("png", "jpg", "webp", "same")
"""``tfsr.upscale --format``: the output files' kind; "same" keeps the input's where it can be
written (PNG, JPEG, WebP, BMP), else PNG."""


def _output_ending(src: str, fmt: str) -> str:
    if fmt == "same":
        ending = os.path.splitext(src)[1].lower()
        return ending if ending in WRITE_EXTENSIONS else ".png"
    return "." + fmt


def plan_outputs(inputs: list[str], out_dir: str, fmt: str = "png") -> list[tuple[str, str]]:
    """``(input file, output file)`` pairs for files and folders given on the command line.

    Each output is ``out_dir/NAME.EXT`` (a folder's images keep their path below it), EXT from
    ``fmt``, one of :data:`OUTPUT_FORMATS`.

    A folder's images inside ``out_dir`` (an output folder within the input folder, as
    ``--out=photos/up`` for ``photos/``) are not inputs: they are an earlier run's outputs.

    Raises:
        FileNotFoundError: an input that does not exist.
        ValueError: no image found, two inputs with the same output, an output that is an input
            (by path, or an existing file that is the same file: a case-insensitive file
            system), or an ``out_dir`` that is a file.
    """
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}: expected one of {OUTPUT_FORMATS}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"the output folder {out_dir!r} is a file")
    pairs = []
    out_real = os.path.realpath(out_dir)
    for item in inputs:
        if os.path.isdir(item):
            root = os.path.normpath(item)
            # An output folder strictly inside this folder holds an earlier run's outputs.
            root_real = os.path.realpath(root)
            nested_out = out_real != root_real and _is_within(out_real, root_real)
            for path in list_images(root, extensions=UPSCALE_EXTENSIONS):
                if nested_out and _is_within(os.path.realpath(path), out_real):
                    continue
                rel = os.path.splitext(os.path.relpath(path, root))[0]
                pairs.append((path, os.path.join(out_dir, rel + _output_ending(path, fmt))))
        elif os.path.isfile(item):
            stem = os.path.splitext(os.path.basename(item))[0]
            pairs.append((item, os.path.join(out_dir, stem + _output_ending(item, fmt))))
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
    # An output that is an input exists; being the same file (device and inode) covers links,
    # other spellings of the path and case-folding file systems alike.
    inputs = {_file_id(src) for src, _ in pairs}
    for _, dst in pairs:
        if os.path.exists(dst) and _file_id(dst) in inputs:
            raise ValueError(f"output {dst!r} is an input image; choose another --out")
    return pairs


def _is_within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _file_id(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def check_outputs_free(pairs: list[tuple[str, str]], overwrite: bool) -> None:
    """Raises FileExistsError when some output exists and not ``overwrite``."""
    if not overwrite:
        existing = [dst for _, dst in pairs if os.path.exists(dst)]
        if existing:
            raise FileExistsError(
                f"{len(existing)} output file(s) exist, e.g. {existing[0]!r}; use --overwrite"
            )


# What one image can raise without the others being affected: unreadable or unwritable files
# (ImageReadError is a ValueError), an image the model cannot take (a model of fixed size,
# ValueError), and the runtimes' own errors (TensorFlow's OpError, LiteRT's RuntimeError, out of
# memory on a huge image).
PER_IMAGE_ERRORS = (ValueError, OSError, RuntimeError, MemoryError, tf.errors.OpError)


def one_line(error: BaseException) -> str:
    """The first line of ``error``'s message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def upscale_files(
    upscaler,
    pairs,
    *,
    overwrite=False,
    tile=DEFAULT_TILE,
    margin=DEFAULT_MARGIN,
    quality=95,
):
    """Upscales every pair; returns the list of ``(input, error message)`` that failed.

    The output's kind follows its file name (:func:`tfsr.data.io.write_image`; ``quality`` for
    JPEG and WebP); an image with transparency cannot go to JPEG (it fails).

    Inputs are read with their EXIF orientation applied (a phone photo comes out upright); an
    embedded ICC colour profile is carried to the output where it still describes it (RGB or
    grey); of an animation (GIF, APNG, WebP), the first frame is upscaled, with a warning. An
    image that fails is reported and the others go on.

    Raises:
        FileExistsError: some output exists and not ``overwrite`` (checked before any work).
    """
    check_outputs_free(pairs, overwrite)
    failures = []
    for src, dst in tqdm(pairs, desc="upscaling", unit="image", disable=len(pairs) < 2):
        try:
            # (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) or (H, W, 4); alpha only where
            # some pixel is not opaque for grey files.
            image = read_image(src, keep_alpha=True, keep_grey=True, exif_rotate=True)
            profile = read_icc_profile(src)
            if is_animation(src):
                warnings.warn(
                    f"{src} is an animation: only its first frame is upscaled", stacklevel=2
                )
            if image.ndim == 3 and image.shape[-1] == 4 and (image[..., 3] == 255).all():
                image = image[..., :3]  # opaque: nothing to keep
            if has_alpha_channel(image) and not holds_alpha(dst):
                raise ValueError(
                    f"it has transparency, which {dst!r} cannot hold (use png or webp)"
                )
            result = upscale_image(upscaler, image, tile=tile, margin=margin)
            os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
            write_image(dst, result, overwrite=overwrite, quality=quality, icc_profile=profile)
        except PER_IMAGE_ERRORS as error:
            failures.append((src, one_line(error)))
    return failures
