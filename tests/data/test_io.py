"""Tests for tfsr.data.io: listing, reading (grey, palette, 16-bit, alpha, corrupt) and writing."""

import os

import numpy as np
import pytest
from PIL import Image

from tfsr.data.io import (
    TIFF_EXTENSIONS,
    WRITE_EXTENSIONS,
    ImageReadError,
    holds_alpha,
    is_animation,
    list_images,
    read_icc_profile,
    read_image,
    write_image,
)


def _rgb(h=5, w=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------ list_images


def test_list_images_sorted_recursive_case_insensitive(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ["b.PNG", "a.jpg", "sub/c.JpEg", "sub/d.bmp", "e.webp", ".hidden/x.png"]:
        (tmp_path / name).write_bytes(b"")
    for name in ["notes.txt", "._a.png", "f.tif", "g.TIFF", "h.gif"]:
        (tmp_path / name).write_bytes(b"")
    rel = [os.path.relpath(p, tmp_path) for p in list_images(tmp_path)]
    images = ["a.jpg", "b.PNG", "e.webp", "h.gif"]
    assert rel == [*images, os.path.join("sub", "c.JpEg"), os.path.join("sub", "d.bmp")]
    flat = [os.path.basename(p) for p in list_images(tmp_path, recursive=False)]
    assert flat == images
    # TIFF on request (tf.io.decode_image, the uncached training pipeline, cannot read it).
    tiffs = list_images(tmp_path, recursive=False, extensions=TIFF_EXTENSIONS)
    assert [os.path.basename(p) for p in tiffs] == ["f.tif", "g.TIFF"]


def test_list_images_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "only.txt").write_text("x")
    with pytest.raises(ValueError, match=f"no image files.*{tmp_path.name}"):
        list_images(tmp_path)
    with pytest.raises(NotADirectoryError, match="only.txt"):
        list_images(tmp_path / "only.txt")


# ------------------------------------------------------------------------------------- read_image


def test_read_rgb_png_round_trip(tmp_path):
    rgb = _rgb()
    Image.fromarray(rgb).save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, rgb)


def test_read_grey_gives_equal_channels(tmp_path):
    grey = _rgb()[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_read_rgba_drops_or_keeps_alpha(tmp_path):
    rgba = np.concatenate([_rgb(), _rgb(seed=1)[..., :1]], axis=-1)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[..., :3])
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", keep_alpha=True), rgba)
    Image.fromarray(_rgb()).save(tmp_path / "opaque.png")
    kept = read_image(tmp_path / "opaque.png", keep_alpha=True)
    assert kept.shape == (5, 7, 4) and np.all(kept[..., 3] == 255)


def test_read_palette_and_grey_alpha(tmp_path):
    palette_image = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette_image.save(tmp_path / "p.png")
    expected = np.asarray(palette_image.convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), expected)
    la = np.stack([_rgb()[..., 0], _rgb(seed=3)[..., 0]], axis=-1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png", keep_alpha=True)
    np.testing.assert_array_equal(out[..., :3], np.repeat(la[..., :1], 3, axis=-1))
    np.testing.assert_array_equal(out[..., 3], la[..., 1])


def test_read_16_bit_grey_keeps_high_byte(tmp_path):
    values = np.array([[0, 255, 256, 65535], [1000, 30000, 40000, 65280]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I;16")
    out = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[..., 0], [[0, 0, 1, 255], [3, 117, 156, 255]])
    np.testing.assert_array_equal(out[..., 2], out[..., 0])


def test_read_32_bit_integer_grey_by_its_range(tmp_path):
    small = np.array([[0, 7, 200, 255]], dtype=np.int32)  # 8-bit values stored in 32 bits
    Image.fromarray(small).save(tmp_path / "small.tif")
    assert Image.open(tmp_path / "small.tif").mode == "I"
    np.testing.assert_array_equal(read_image(tmp_path / "small.tif", keep_grey=True), small)
    wide = np.array([[0, 256, 65535, 40000]], dtype=np.int32)
    Image.fromarray(wide).save(tmp_path / "wide.tif")
    np.testing.assert_array_equal(
        read_image(tmp_path / "wide.tif", keep_grey=True), [[0, 1, 255, 156]]
    )


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_read_png_colour_key_transparency_as_alpha(tmp_path, mode):
    values = np.array([[7, 8], [9, 7]], dtype=np.uint8)
    image = Image.fromarray(values) if mode == "L" else Image.fromarray(np.stack([values] * 3, -1))
    key = 7 if mode == "L" else (7, 7, 7)
    image.save(tmp_path / "key.png", transparency=key)
    assert Image.open(tmp_path / "key.png").mode == mode
    out = read_image(tmp_path / "key.png", keep_alpha=True, keep_grey=True)
    assert out.shape == (2, 2, 2 if mode == "L" else 4)  # grey and alpha, or RGBA
    np.testing.assert_array_equal(out[..., -1], [[0, 255], [255, 0]])
    np.testing.assert_array_equal(out[..., 0], values)
    assert read_image(tmp_path / "key.png").shape == (2, 2, 3)  # dropped without keep_alpha


def test_exif_orientation_applied_only_when_asked(tmp_path):
    stored = _rgb(4, 6)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer rotates 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    np.testing.assert_array_equal(read_image(tmp_path / "phone.png"), stored)
    upright = read_image(tmp_path / "phone.png", exif_rotate=True)
    np.testing.assert_array_equal(upright, np.rot90(stored, k=-1))


def test_read_jpeg_and_bmp(tmp_path):
    rgb = _rgb(16, 16)
    Image.fromarray(rgb).save(tmp_path / "x.bmp")
    np.testing.assert_array_equal(read_image(tmp_path / "x.bmp"), rgb)
    Image.fromarray(rgb).save(tmp_path / "x.jpg", quality=95)
    # Pillow's own decode of the same file: read_image adds nothing.
    np.testing.assert_array_equal(
        read_image(tmp_path / "x.jpg"), np.asarray(Image.open(tmp_path / "x.jpg"))
    )
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    cmyk = read_image(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (16, 16, 3) and cmyk.dtype == np.uint8


def test_read_corrupt_and_truncated_files_raise_naming_them(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"this is not a png")
    with pytest.raises(ImageReadError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    assert issubclass(ImageReadError, ValueError)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")


# ------------------------------------------------------------------------------------ write_image


@pytest.mark.parametrize("name", ["x.png", "x.bmp", "x.webp", "X.PNG"])
def test_write_lossless_round_trip(tmp_path, name):
    rgb = _rgb()
    write_image(tmp_path / name, rgb, quality=100)  # quality 100: lossless WebP
    np.testing.assert_array_equal(read_image(tmp_path / name), rgb)


def _smooth(h=32, w=32):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([4 * y + 40, 3 * x + 60, 2 * (x + y) + 20], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("name", ["x.jpg", "x.jpeg", "x.webp"])
def test_write_lossy(tmp_path, name):
    write_image(tmp_path / name, _smooth(), quality=90)
    assert np.abs(read_image(tmp_path / name).astype(int) - _smooth()).mean() < 2.0


def test_write_float_rounds_half_away_from_zero_and_clips(tmp_path):
    # 0.5 / 255 -> 0.5 -> 1 (round half away from zero); 2.5 / 255 -> 3; out of range clipped.
    values = np.array([[0.5, 2.5, 1.49, -0.3, 300.0, 127.5]]) / 255.0
    write_image(tmp_path / "f.png", values)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png")[..., 0], [[1, 3, 1, 0, 255, 128]])


def test_write_grey_shapes_and_alpha(tmp_path):
    grey = _rgb()[..., 0]
    write_image(tmp_path / "g.png", grey[..., None])
    assert Image.open(tmp_path / "g.png").mode == "L"
    np.testing.assert_array_equal(read_image(tmp_path / "g.png")[..., 1], grey)
    rgba = np.concatenate([_rgb(), np.full((5, 7, 1), 9, np.uint8)], axis=-1)
    write_image(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png", keep_alpha=True), rgba)


def test_write_overwrite_false_refuses_and_keeps_old_file(tmp_path):
    path = tmp_path / "x.png"
    write_image(path, _rgb(seed=1))
    write_image(path, _rgb(seed=2))  # overwrite=True by default
    np.testing.assert_array_equal(read_image(path), _rgb(seed=2))
    with pytest.raises(FileExistsError, match="x.png"):
        write_image(path, _rgb(seed=3), overwrite=False)
    np.testing.assert_array_equal(read_image(path), _rgb(seed=2))
    write_image(tmp_path / "new.png", _rgb(seed=3), overwrite=False)
    np.testing.assert_array_equal(read_image(tmp_path / "new.png"), _rgb(seed=3))
    assert sorted(os.listdir(tmp_path)) == ["new.png", "x.png"]  # no temporary files left


def test_write_failure_leaves_no_file(tmp_path, monkeypatch):
    def broken_save(self, fp, format=None, **params):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(tmp_path / "x.png", _rgb())
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ending", WRITE_EXTENSIONS + tuple(e.upper() for e in WRITE_EXTENSIONS))
def test_holds_alpha_says_what_write_image_accepts(tmp_path, ending):
    path = tmp_path / ("x" + ending)
    write_image(path, _rgb())  # every listed ending is writable
    rgba = np.zeros((5, 7, 4), np.uint8)
    if holds_alpha(path):
        write_image(path, rgba)
        with Image.open(path) as image:
            assert "A" in image.getbands()
    else:
        with pytest.raises(ValueError, match="cannot store an alpha channel"):
            write_image(path, rgba)


def test_holds_alpha_by_ending(tmp_path):
    assert holds_alpha(tmp_path / "x.png") and holds_alpha("x.WEBP")
    assert not holds_alpha("x.jpeg") and not holds_alpha("x.bmp")
    with pytest.raises(ValueError, match="cannot choose an image format"):
        holds_alpha(tmp_path / "x.tiff")


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match=r"x\.tiff.*\.png"):
        write_image(tmp_path / "x.tiff", _rgb())
    with pytest.raises(ValueError, match=r"shape.*\(5, 7, 5\)"):
        write_image(tmp_path / "x.png", np.zeros((5, 7, 5), np.uint8))
    with pytest.raises(ValueError, match="JPEG cannot store an alpha channel"):
        write_image(tmp_path / "x.jpg", np.zeros((5, 7, 4), np.uint8))
    with pytest.raises(ValueError, match="BMP cannot store an alpha channel"):
        write_image(tmp_path / "x.bmp", np.zeros((5, 7, 2), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        write_image(tmp_path / "x.png", np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match=r"0\.\.255.*-1\.\.300"):
        write_image(tmp_path / "x.png", np.array([[-1, 300]]))
    with pytest.raises(ValueError, match="quality"):
        write_image(tmp_path / "x.jpg", _rgb(), quality=0)
    assert os.listdir(tmp_path) == []


def test_keep_grey_returns_the_grey_band(tmp_path):
    from PIL import Image

    grey = (np.arange(12 * 10) % 256).astype(np.uint8).reshape(12, 10)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "g.png"), keep_grey=True), grey)
    np.testing.assert_array_equal(
        read_image(str(tmp_path / "g.png"), keep_alpha=True, keep_grey=True), grey
    )
    assert read_image(str(tmp_path / "g.png")).shape == (12, 10, 3)
    alpha = np.full_like(grey, 7)
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(tmp_path / "la.png")
    assert read_image(str(tmp_path / "la.png"), keep_grey=True).shape == (12, 10)
    la = read_image(str(tmp_path / "la.png"), keep_alpha=True, keep_grey=True)
    np.testing.assert_array_equal(la, np.stack([grey, alpha], -1))
    write_image(tmp_path / "la_out.png", la)  # written back as an LA PNG
    assert Image.open(tmp_path / "la_out.png").mode == "LA"
    np.testing.assert_array_equal(
        read_image(str(tmp_path / "la_out.png"), keep_alpha=True, keep_grey=True), la
    )
    write_image(tmp_path / "la_out.webp", la, quality=100)  # WebP: as RGBA
    assert read_image(str(tmp_path / "la_out.webp"), keep_alpha=True).shape == (12, 10, 4)
    # An RGB file whose channels happen to be equal is still colour.
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "rgb.png")
    assert read_image(str(tmp_path / "rgb.png"), keep_grey=True).shape == (12, 10, 3)


def test_icc_profile_carried_where_its_colour_space_fits(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    grey = srgb[:16] + b"GRAY" + srgb[20:]  # only the header's colour space is looked at
    for name in ("a.png", "a.jpg", "a.webp"):
        write_image(tmp_path / name, _rgb(), icc_profile=srgb)
        assert read_icc_profile(tmp_path / name) == srgb, name
    write_image(tmp_path / "g.png", _rgb()[..., 0], icc_profile=grey)
    assert read_icc_profile(tmp_path / "g.png") == grey
    write_image(tmp_path / "mismatch.png", _rgb()[..., 0], icc_profile=srgb)
    write_image(tmp_path / "a.bmp", _rgb(), icc_profile=srgb)  # BMP holds none: left out
    write_image(tmp_path / "none.png", _rgb())
    for name in ("mismatch.png", "a.bmp", "none.png"):
        assert read_icc_profile(tmp_path / name) is None, name
    with pytest.raises(FileNotFoundError):
        read_icc_profile(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="bad.png"):
        read_icc_profile(tmp_path / "bad.png")


def test_is_animation(tmp_path):
    frames = [Image.fromarray(_rgb(seed=i)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "still.gif")
    frames[0].save(tmp_path / "pages.tif", save_all=True, append_images=frames[1:])
    assert is_animation(tmp_path / "anim.gif") and is_animation(tmp_path / "anim.png")
    assert not is_animation(tmp_path / "still.gif")
    assert not is_animation(tmp_path / "pages.tif")  # pages, not frames
    assert read_image(tmp_path / "anim.png").shape == (5, 7, 3)  # the first frame
    with pytest.raises(FileNotFoundError):
        is_animation(tmp_path / "none.gif")
