"""The standard SR evaluation protocol: PSNR / SSIM on Y over benchmark folders.

Library side of ``python -m tfsr.evaluate`` (the script in :mod:`tfsr.evaluate` only parses
flags). A data folder is either a benchmark folder, with ``HR/`` and (optionally)
``LR_bicubic/X{s}/`` holding ``{name}x{s}.png``, or a plain folder of HR images; :func:`evaluate`
also takes a list of HR image files. Given LR files are used as they are; otherwise LR is made
from HR: cropped to a multiple of the scale (``modcrop``), MATLAB-bicubic downscaled and rounded
to uint8 (the way the LR files were made).

The protocol (``../shared/data/README.md``): models with a Y input, and bicubic, run on Y of the
LR image and their output is rounded to uint8; RGB models run on RGB, rounded to uint8, and Y is
taken from the result (from a grey image's, its grey value: see :func:`super_resolve`). PSNR
and SSIM are measured on Y after cropping ``crop_border`` pixels (default: the scale, rounded
up) from every side; a single-channel (grey) image is its own Y, as
in the scripts that produced the published tables (see :mod:`tfsr.metrics`).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from tfsr import metrics
from tfsr.data import io
from tfsr.data.color import grey_to_rgb, rgb_to_grey
from tfsr.data.imresize import imresize, modcrop, scale_name, scale_pair, to_uint8
from tfsr.inference import Upscaler


def read_eval_image(path: str) -> np.ndarray:
    """uint8 (H, W, 3), or (H, W) for a single-channel (grey) file.

    Grey files stay single-channel so that they are measured on their own values, not on the
    luma of R = G = B (see :mod:`tfsr.metrics`).
    """
    return io.read_image(path, keep_grey=True)


def find_pairs(data_dir: str, scale: float) -> tuple[list[tuple[str, str, str | None]], str]:
    """The images of a data folder, and where their LR comes from.

    Returns:
        ``([(name, hr_path, lr_path or None), ...], lr_source)``, lr_source ``"files"`` (the
        folder's ``LR_bicubic/X{s}``) or ``"bicubic"`` (made from HR).

    Raises:
        FileNotFoundError: no such folder, or an LR file missing from ``LR_bicubic/X{s}``.
        ValueError: no image in it.
    """
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data folder {data_dir!r} does not exist")
    hr_dir = os.path.join(data_dir, "HR")
    if not os.path.isdir(hr_dir):
        hr_dir = data_dir
    s = scale_name(scale)
    lr_dir = os.path.join(data_dir, "LR_bicubic", f"X{s}")
    sv, sh = scale_pair(scale)
    # Benchmark LR files exist for equal scales only; other pairs make LR from HR.
    has_lr = sv == sh and hr_dir != data_dir and os.path.isdir(lr_dir)
    pairs = []
    for hr_path in io.list_images(hr_dir, recursive=False):
        name = os.path.splitext(os.path.basename(hr_path))[0]
        lr_path = None
        if has_lr:
            lr_path = os.path.join(lr_dir, f"{name}x{s}.png")
            if not os.path.exists(lr_path):
                raise FileNotFoundError(f"LR file {lr_path!r} for {hr_path!r} does not exist")
        pairs.append((name, hr_path, lr_path))
    return pairs, ("files" if has_lr else "bicubic")


def _dataset_name(data_dir: str) -> str:
    """The folder's name; for a folder named HR, its parent's (``Set5/HR`` -> ``Set5``)."""
    path = os.path.normpath(os.path.abspath(data_dir))
    name = os.path.basename(path)
    return os.path.basename(os.path.dirname(path)) if name == "HR" else name


def _file_pairs(paths: Sequence[str]) -> list[tuple[str, str, None]]:
    """``(name, hr_path, None)`` for a list of HR files; missing files and an empty list raise."""
    if not paths:
        raise ValueError("no HR image files given to evaluate")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"HR image {path!r} does not exist")
    return [(os.path.splitext(os.path.basename(p))[0], p, None) for p in paths]


def super_resolve(upscaler: Upscaler, lr: np.ndarray) -> np.ndarray:
    """SR of a uint8 LR image, in the form the metrics take.

    Returns:
        uint8 Y (sH, sW) for Y-input models and bicubic (grey LR is used as Y as it is),
        uint8 RGB (sH, sW, 3) for RGB models; for a grey LR, an RGB model's (rounded) output
        made grey again: 0.299 R + 0.587 G + 0.114 B, rounded. That is BT.601 Y on the full
        0..255 scale, the scale a grey image is measured on (Y's own 16..235 would shrink the
        errors and add 1.3 dB).
    """
    if upscaler.channels == 3:
        rgb = to_uint8(upscaler.upscale_rgb(grey_to_rgb(lr) / 255.0) * 255.0)
        if lr.ndim == 3:
            return rgb
        return to_uint8(rgb_to_grey(rgb / 255.0)[..., 0] * 255.0)
    y = metrics.y_channel(lr) / 255.0
    return to_uint8(upscaler.upscale_y(y)[..., 0] * 255.0)


def evaluate(
    upscaler: Upscaler,
    data_dir: str | Sequence[str],
    scale: float,
    *,
    crop_border: int | None = None,
    progress: bool = False,
) -> dict:
    """PSNR and SSIM (Y) of ``upscaler`` on one data folder.

    Args:
        upscaler: from :func:`tfsr.inference.load_upscaler`.
        data_dir: a benchmark folder (``HR/``, ``LR_bicubic/X{s}/``), a folder of HR images, or
            a list of HR image files (their LR made on the fly; dataset name "held-out").
        scale: the scale factor, or a (vertical, horizontal) pair (names the LR folder; LR made
            on the fly is downscaled by it; pairs of different scales always make LR from HR).
        crop_border: pixels removed from every side; default ``ceil`` of the larger scale.
        progress: show a tqdm progress bar on stderr.

    Returns:
        ``{model, dataset, data_dir, scale, crop_border, lr_source, psnr, ssim, images,
        per_image: [{name, psnr, ssim}]}``; psnr and ssim are means over the images.

    Raises:
        FileNotFoundError, ValueError: a missing folder or file, no images, an SR output whose
            size is not the HR size.
    """
    sv, sh = scale_pair(scale)
    crop = math.ceil(max(sv, sh)) if crop_border is None else int(crop_border)
    if isinstance(data_dir, (str, os.PathLike)):
        pairs, lr_source = find_pairs(data_dir, scale)
        dataset = _dataset_name(data_dir)
    else:
        pairs, lr_source, dataset = _file_pairs(data_dir), "bicubic", "held-out"
        data_dir = os.path.commonpath([hr for _, hr, _ in pairs])
    per_image = []
    for name, hr_path, lr_path in tqdm(
        pairs, desc=dataset, disable=not progress, leave=False, file=sys.stderr
    ):
        hr = modcrop(read_eval_image(hr_path), scale)
        lr = read_eval_image(lr_path) if lr_path else imresize(hr, (1.0 / sv, 1.0 / sh))
        if lr.ndim != hr.ndim:  # a grey one is measured on its grey values, a colour one on Y
            kinds = {2: "grey", 3: "colour"}
            raise ValueError(
                f"{name}: the LR file {lr_path!r} is {kinds[lr.ndim]} but the HR file "
                f"{hr_path!r} is {kinds[hr.ndim]}; both must be the same kind"
            )
        sr = super_resolve(upscaler, lr)
        if sr.shape[:2] != hr.shape[:2]:
            raise ValueError(
                f"{name}: SR output is {sr.shape[0]}x{sr.shape[1]} but HR (cropped to a "
                f"multiple of the scale) is {hr.shape[0]}x{hr.shape[1]}"
            )
        per_image.append(
            {
                "name": name,
                "psnr": metrics.psnr(sr, hr, crop),
                "ssim": metrics.ssim(sr, hr, crop),
            }
        )
    return {
        "model": upscaler.name,
        "dataset": dataset,
        "data_dir": data_dir,
        "scale": sv if sv == sh else [sv, sh],
        "crop_border": crop,
        "lr_source": lr_source,
        "psnr": float(np.mean([r["psnr"] for r in per_image])),
        "ssim": float(np.mean([r["ssim"] for r in per_image])),
        "images": len(per_image),
        "per_image": per_image,
    }


def format_result(result: dict) -> str:
    """Per-image lines and the mean, as a small table."""
    width = max([len(r["name"]) for r in result["per_image"]] + [len("mean")])
    lines = [
        f"{result['dataset']} x{scale_name(result['scale'])} ({result['model']}, "
        f"LR: {result['lr_source']}, crop {result['crop_border']})",
        f"  {'image':<{width}}  {'PSNR':>7}  {'SSIM':>6}",
    ]
    for r in result["per_image"]:
        lines.append(f"  {r['name']:<{width}}  {r['psnr']:7.3f}  {r['ssim']:.4f}")
    lines.append(f"  {'mean':<{width}}  {result['psnr']:7.3f}  {result['ssim']:.4f}")
    return "\n".join(lines)
