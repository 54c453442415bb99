"""Upscaling real images: any size (tiled), RGB, grey or with alpha. Library side of
``python -m tfsr.upscale``.

- RGB: a Y-only model runs on Y (BT.601); Cb and Cr are upscaled with MATLAB bicubic.
- Grey: the model runs on the grey values as its Y (as the evaluation protocol does).
- Alpha: kept, upscaled with bicubic.
- Large images are cut into ``tile`` x ``tile`` LR tiles that overlap by ``margin`` pixels on every
  side; each tile's margin is dropped after upscaling. When ``margin`` is at least the model's
  receptive-field radius (9 LR pixels for SESR-M5, 15 for SESR-XL; 2 for bicubic), the tiled result
  equals the whole-image result. Tiling needs an integer scale on both axes; other scales run on
  the whole image.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from tfsr.data.imresize import imresize, to_uint8
from tfsr.data.io import ImageReadError, list_images, read_image, write_image
from tfsr.inference import Upscaler

DEFAULT_TILE = 512
DEFAULT_MARGIN = 16


def _tiles(length: int, tile: int):
    for start in range(0, length, tile):
        yield start, min(start + tile, length)


def run_tiled(
    run: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    scale: tuple[float, float],
    *,
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
) -> np.ndarray:
    """Applies ``run`` ((h, w, C) -> (s_v h, s_h w, C')) to ``image`` tile by tile.

    Args:
        run: the upscaling function for one piece.
        image: (H, W, C) float array.
        scale: (s_v, s_h); tiling only when both are integers, else one call on the whole image.
        tile: LR tile side; images no larger than this in both sides run whole.
        margin: LR pixels of context on each side of a tile, dropped from the result.
    """
    if tile <= 0 or margin < 0:
        raise ValueError(f"tile must be positive and margin >= 0, got tile={tile}, margin={margin}")
    h, w = image.shape[:2]
    sv, sh = scale
    integer = float(sv).is_integer() and float(sh).is_integer()
    if not integer or (h <= tile and w <= tile):
        return run(image)
    sv, sh = int(sv), int(sh)
    out = None
    for y0, y1 in _tiles(h, tile):
        for x0, x1 in _tiles(w, tile):
            py0, py1 = max(y0 - margin, 0), min(y1 + margin, h)
            px0, px1 = max(x0 - margin, 0), min(x1 + margin, w)
            piece = run(image[py0:py1, px0:px1])  # (sv * (py1 - py0), sh * (px1 - px0), C')
            if out is None:
                out = np.empty((h * sv, w * sh, piece.shape[-1]), piece.dtype)
            oy, ox = (y0 - py0) * sv, (x0 - px0) * sh
            out[y0 * sv : y1 * sv, x0 * sh : x1 * sh] = piece[
                oy : oy + (y1 - y0) * sv, ox : ox + (x1 - x0) * sh
            ]
    return out


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
        image: uint8 (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA.
        tile, margin: see :func:`run_tiled`.

    Returns:
        uint8 image of the same kind, (round(s_v H), round(s_h W)[, C]) pixels for integer scales
        (the model decides for others).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3, 4))):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {image.shape}")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    alpha = None
    if image.ndim == 3 and image.shape[-1] == 4:
        image, alpha = image[..., :3], image[..., 3]

    x = image.astype(np.float32) / 255.0
    if image.ndim == 2:
        if upscaler.channels == 3:  # an RGB model: run on R = G = B, keep one channel

            def run(piece):
                return upscaler.upscale_rgb(np.repeat(piece, 3, axis=-1))[..., :1]

        else:
            run = upscaler.upscale_y
        out = run_tiled(run, x[..., None], upscaler.scale_pair, tile=tile, margin=margin)[..., 0]
    else:
        out = run_tiled(upscaler.upscale_rgb, x, upscaler.scale_pair, tile=tile, margin=margin)
    out = np.asarray(to_uint8(np.asarray(out, np.float64) * 255.0))
    if alpha is not None:
        big_alpha = imresize(alpha, output_size=out.shape[:2])
        out = np.concatenate([out, np.asarray(big_alpha)[..., None]], axis=-1)
    return out


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
    for _, dst in pairs:
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
            image = read_image(src, keep_alpha=True, keep_grey=True)
            if image.ndim == 3 and (image[..., 3] == 255).all():
                image = image[..., :3]  # opaque: nothing to keep
            result = upscale_image(upscaler, image, tile=tile, margin=margin)
            os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
            write_image(dst, result, overwrite=overwrite)
        except (ImageReadError, OSError) as error:
            failures.append((src, str(error)))
    return failures
