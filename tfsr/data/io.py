"""Reading, writing and listing image files, as uint8 RGB arrays.

Every reader in tfsr goes through :func:`read_image`, so that a grey, palette, 16-bit or RGBA file
always arrives as the same thing: a ``uint8`` array of shape ``(H, W, 3)``. Pixel data are taken
as stored (no EXIF rotation, no colour management), like MATLAB's ``imread`` and
``tf.io.decode_image``, so that benchmark files read the same everywhere; ``exif_rotate=True``
(what ``tfsr.upscale`` uses for photographs) turns the pixels upright as viewers show them.

Example::

    from tfsr.data import io
    paths = io.list_images("../shared/data/val/Set5/HR")
    hr = io.read_image(paths[0])           # (H, W, 3) uint8
    io.write_image("/tmp/copy.png", hr)    # atomic; overwrite=False refuses to replace a file
"""

from __future__ import annotations

import os
import uuid

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")
"""File name endings (compared case-insensitively) that :func:`list_images` picks up by default:
kinds that both Pillow and ``tf.io.decode_image`` (the uncached training pipeline) decode."""

TIFF_EXTENSIONS = (".tif", ".tiff")
"""TIFF files: :func:`read_image` reads them, ``tf.io.decode_image`` does not (``tfsr.upscale``
lists them, training folders do not)."""

_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}
_NO_ALPHA_FORMATS = ("JPEG", "BMP")

WRITE_EXTENSIONS = tuple(_WRITE_FORMATS)
"""File name endings (lower case) that :func:`write_image` writes."""


def holds_alpha(path: str | os.PathLike) -> bool:
    """Whether :func:`write_image` can store an alpha channel in ``path`` (PNG, WebP: yes; JPEG,
    BMP: no), judged by its ending. Raises ``ValueError`` for an ending it cannot write."""
    return _write_format(os.fspath(path)) not in _NO_ALPHA_FORMATS


def has_alpha_channel(image) -> bool:
    """Whether an image array in this module's layout carries alpha: (H, W, 2) grey and alpha,
    or (H, W, 4) RGBA."""
    return image.ndim == 3 and image.shape[-1] in (2, 4)


def _write_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext not in _WRITE_FORMATS:
        raise ValueError(
            f"cannot choose an image format for {path!r}: expected one of "
            f"{', '.join(_WRITE_FORMATS)}"
        )
    return _WRITE_FORMATS[ext]


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded (corrupt, truncated or of an unsupported kind)."""


def list_images(
    folder: str | os.PathLike, recursive: bool = True, extensions=IMAGE_EXTENSIONS
) -> list[str]:
    """Paths of the image files in ``folder``, sorted.

    Picks files whose names end in one of ``extensions`` (any case). Hidden files and folders
    (names starting with ".", such as macOS ``._name.png`` forks) are left out.

    Args:
        folder: the folder to search.
        recursive: also search sub-folders (their files are sorted by path relative to
            ``folder``).
        extensions: lower-case file name endings, :data:`IMAGE_EXTENSIONS` by default.

    Returns:
        Non-empty list of file paths, each ``os.path.join(folder, relative_path)``.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        NotADirectoryError: ``folder`` is a file.
        ValueError: ``folder`` holds no image file.
    """
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise FileNotFoundError(f"image folder {folder!r} does not exist")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"expected a folder of images, got the file {folder!r}")
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        for name in files:
            if not name.startswith(".") and name.lower().endswith(tuple(extensions)):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    if not found:
        where = "in or below" if recursive else "in"
        raise ValueError(
            f"no image files ({', '.join(extensions)}) found {where} the folder {folder!r}"
        )
    return [os.path.join(folder, rel) for rel in sorted(found)]


def _grey_to_uint8(values: np.ndarray, mode: str, path: str) -> np.ndarray:
    """uint8 grey from a 16-bit (``I;16*``) or 32-bit integer (``I``) image.

    16-bit: the high byte, as Pillow does for 16-bit colour PNGs. 32-bit integer files carry no
    bit depth: values that all fit 0..255 are taken as 8-bit, others (up to 65535) as 16-bit.
    """
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ImageReadError(
            f"cannot read image {path!r}: integer pixel values outside 0..65535 "
            f"({values.min()}..{values.max()}) are not supported"
        )
    if mode == "I" and (not values.size or values.max() <= 255):
        return values.astype(np.uint8)
    return (values.astype(np.uint32) >> 8).astype(np.uint8)


def _pixels(image: Image.Image, path: str, keep_alpha: bool) -> np.ndarray:
    """(H, W, 3) or, with keep_alpha, (H, W, 4) uint8 array of a loaded PIL image."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        grey = _grey_to_uint8(np.asarray(image), mode, path)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        alpha = None
    elif mode == "F":
        raise ImageReadError(f"cannot read image {path!r}: floating-point images are not supported")
    else:
        # "transparency": a palette's transparent entries, or the colour key (tRNS) of an
        # L or RGB PNG.
        has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
        converted = np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
        rgb = converted[..., :3]
        alpha = converted[..., 3] if has_alpha else None
    if not keep_alpha:
        return np.ascontiguousarray(rgb)
    if alpha is None:
        alpha = np.full(rgb.shape[:2], 255, dtype=np.uint8)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def _is_grey(image: Image.Image) -> bool:
    """One grey colour band (alpha aside): L, LA, 1, I, I;16..."""
    return [b for b in image.getbands() if b != "A"] in (["L"], ["I"], ["1"])


def read_image(
    path: str | os.PathLike,
    *,
    keep_alpha: bool = False,
    keep_grey: bool = False,
    exif_rotate: bool = False,
) -> np.ndarray:
    """Decodes an image file into a uint8 RGB array.

    Grey images come back with R = G = B; palette images are expanded; 16-bit images keep their
    high byte (what Pillow and ``tf.io.decode_png`` do for 8-bit output); an alpha channel
    (or a PNG's transparent colour key) is dropped unless ``keep_alpha``.

    Args:
        path: the image file (PNG, JPEG, BMP, WebP, or anything else Pillow decodes).
        keep_alpha: return four channels, RGBA; images without alpha get an opaque (255) one.
        keep_grey: a file with one grey colour band comes back as (H, W), its own values (not
            R = G = B); with ``keep_alpha`` and some pixel not opaque, as (H, W, 2): grey and
            alpha.
        exif_rotate: apply the file's EXIF orientation (a phone photo stored sideways comes back
            upright, as image viewers show it). Off by default: benchmark pixels are read as
            stored.

    Returns:
        ``uint8`` array of shape (H, W, 3), or (H, W, 4) with ``keep_alpha``; with
        ``keep_grey``, a grey file gives (H, W), or (H, W, 2) (see above).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageReadError: the file cannot be decoded (corrupt, truncated, not an image); the message
            names the file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file {path!r} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            if exif_rotate:
                image = ImageOps.exif_transpose(image)
            pixels = _pixels(image, path, keep_alpha)
            grey = keep_grey and _is_grey(image)
    except ImageReadError:
        raise
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise ImageReadError(f"cannot read image {path!r}: {error}") from error
    if grey and (pixels.shape[-1] == 3 or (pixels[..., 3] == 255).all()):
        return np.ascontiguousarray(pixels[..., 0])
    if grey:  # and some pixel is not opaque
        return np.ascontiguousarray(pixels[..., [0, 3]])
    return pixels


def _from_header(path, read):
    """``read(image)`` of the opened (not decoded) image file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"image file {path!r} does not exist")
    try:
        with Image.open(path) as image:
            return read(image)
    except Exception as error:
        raise ImageReadError(f"cannot read image {path!r}: {error}") from error


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` of an image file, from its header (no pixel is decoded).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageReadError: the header cannot be parsed (the pixel data are not checked).
    """
    width, height = _from_header(path, lambda image: image.size)
    return height, width


def is_animation(path: str | os.PathLike) -> bool:
    """Whether an image file is an animation (GIF, APNG, WebP with several frames), of which
    :func:`read_image` reads the first frame; reads the header only. (Not a multi-page TIFF,
    nor a phone's MPO JPEG: a photo and its previews.)

    Raises:
        FileNotFoundError, ImageReadError: as :func:`read_image_size`.
    """
    return _from_header(
        path,
        lambda image: image.format in ("GIF", "PNG", "WEBP")
        and bool(getattr(image, "is_animated", False)),
    )


def read_icc_profile(path: str | os.PathLike) -> bytes | None:
    """The ICC colour profile embedded in an image file, or None; reads the header only.

    Raises:
        FileNotFoundError, ImageReadError: as :func:`read_image_size`.
    """
    return _from_header(path, lambda image: image.info.get("icc_profile")) or None


def _icc_fits(profile: bytes | None, mode: str) -> bool:
    """Whether an ICC profile describes images of this Pillow mode: its header's colour space
    (bytes 16..19) is RGB for RGB/RGBA, GRAY for L/LA (a CMYK photo's profile, say, does not
    describe the RGB pixels it was decoded to)."""
    if not profile or len(profile) < 20:
        return False
    space = {"RGB": b"RGB ", "RGBA": b"RGB ", "L": b"GRAY", "LA": b"GRAY"}.get(mode)
    return profile[16:20] == space


def _as_uint8(array) -> np.ndarray:
    from tfsr.data.imresize import to_uint8  # MATLAB rounding: one helper, one place.

    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ValueError(
                f"integer image values must lie in 0..255, got {array.min()}..{array.max()} "
                f"({array.dtype}); pass uint8, or float in [0, 1]"
            )
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError("float image contains NaN or infinity; expected values in [0, 1]")
        return np.asarray(to_uint8(np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0))
    raise ValueError(f"expected a uint8 or float image array, got dtype {array.dtype}")


def write_image(
    path: str | os.PathLike,
    array,
    *,
    overwrite: bool = True,
    quality: int = 95,
    icc_profile: bytes | None = None,
) -> None:
    """Writes an image file atomically, its format chosen by the file name ending.

    The image is written to a temporary file in the same folder and moved into place, so a reader
    never sees a half-written file and an interrupted write leaves no partial file behind.

    Args:
        path: destination, ending in .png, .jpg/.jpeg, .bmp or .webp (any case). Its folder must
            exist.
        array: (H, W), (H, W, 1), (H, W, 2) (grey and alpha), (H, W, 3) or (H, W, 4) image
            (NumPy array or eager tensor):
            ``uint8``, integers in 0..255, or float in [0, 1] (clipped, then scaled by 255 and
            rounded half away from zero, as MATLAB's ``im2uint8`` does).
        overwrite: replace an existing file. With False, an existing file raises
            ``FileExistsError`` and is left untouched (checked atomically where the file system
            supports hard links).
        quality: JPEG / WebP quality, 1..100; 100 makes WebP lossless (ignored for PNG and BMP,
            which are always lossless).
        icc_profile: an ICC colour profile to embed (say, :func:`read_icc_profile` of the
            source), in PNG, JPEG and WebP files, when its colour space is the written image's
            (RGB or grey); otherwise it is left out (BMP holds none).

    Raises:
        ValueError: unknown file ending, bad shape or dtype, alpha channel for JPEG/BMP.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = os.fspath(path)
    fmt = _write_format(path)
    pixels = _as_uint8(array)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] in (2, 3, 4))):
        raise ValueError(
            f"expected an image of shape (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4), "
            f"got {pixels.shape}"
        )
    if has_alpha_channel(pixels) and fmt in _NO_ALPHA_FORMATS:
        raise ValueError(f"{fmt} cannot store an alpha channel ({path!r}); use .png or .webp")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must lie in 1..100, got {quality}")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path!r} exists and overwrite=False")

    options = {}
    if fmt == "JPEG":
        options = {"quality": quality}
    elif fmt == "WEBP":
        options = {"lossless": True} if quality == 100 else {"quality": quality}
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    # os.open with 0o666 lets the umask decide the final permissions, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            image = Image.fromarray(np.ascontiguousarray(pixels))
            if image.mode == "LA" and fmt == "WEBP":  # WebP has no grey mode
                image = image.convert("RGBA")
            if fmt != "BMP" and _icc_fits(icc_profile, image.mode):
                options["icc_profile"] = icc_profile
            image.save(handle, format=fmt, **options)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _move_no_clobber(tmp: str, path: str) -> None:
    try:
        os.link(tmp, path)  # fails atomically when path exists
    except FileExistsError:
        raise FileExistsError(f"{path!r} exists and overwrite=False") from None
    except OSError:  # no hard links on this file system: check, then replace
        if os.path.exists(path):
            raise FileExistsError(f"{path!r} exists and overwrite=False") from None
        os.replace(tmp, path)
