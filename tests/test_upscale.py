"""tfsr.upscaling and python -m tfsr.upscale: tiling exactness, image kinds, safety, errors."""

import os

import numpy as np
import pytest
from PIL import Image

from tests.cli import run_python
from tfsr.data import imresize
from tfsr.data.io import read_icc_profile, read_image, write_image
from tfsr.inference import BicubicUpscaler, KerasUpscaler, Upscaler, load_upscaler
from tfsr.models import collapse_model, meta_sesr, sesr_model
from tfsr.upscaling import (
    fill_transparent,
    plan_outputs,
    run_tiled,
    upscale_files,
    upscale_image,
)


@pytest.fixture(scope="module")
def sesr_upscaler():
    model = sesr_model("m5", scale=2)
    rng = np.random.default_rng(0)
    for w in model.weights:  # random, non-trivial weights
        w.assign(rng.normal(0, 0.05, w.shape).astype(np.float32))
    return KerasUpscaler(collapse_model(model), 2, name="sesr")


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(yy / 7.0)[..., None] * np.cos(xx / 5.0)[..., None]
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def test_tiled_equals_whole_for_sesr_and_bicubic(sesr_upscaler):
    image = _photo(70, 90)
    for upscaler in (sesr_upscaler, BicubicUpscaler(2)):
        whole = upscale_image(upscaler, image, tile=1000)
        tiled = upscale_image(upscaler, image, tile=32, margin=16)
        assert whole.shape == (140, 180, 3)
        # M5's receptive radius is 9 < 16: float differences only, at most one uint8 step
        # (a rounding tie), and almost everywhere none.
        diff = np.abs(whole.astype(int) - tiled.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_too_small_margin_changes_tiled_result(sesr_upscaler):
    image = _photo(64, 64, seed=3)
    whole = upscale_image(sesr_upscaler, image, tile=1000)
    tiled = upscale_image(sesr_upscaler, image, tile=16, margin=2)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() > 1


def test_run_tiled_places_pieces():
    image = np.arange(30 * 50, dtype=np.float32).reshape(30, 50, 1)

    def nearest3(x):
        return np.repeat(np.repeat(x, 3, axis=0), 3, axis=1)

    np.testing.assert_array_equal(
        run_tiled(nearest3, image, (3, 3), tile=7, margin=2), nearest3(image)
    )
    with pytest.raises(ValueError, match="tile must be positive"):
        run_tiled(nearest3, image, (3, 3), tile=0)


@pytest.mark.parametrize("scale", [(2.5, 2.5), (1.5, 3.0), (4 / 3, 2.7)])
def test_run_tiled_non_integer_scales_equal_whole_image(scale):
    # MATLAB bicubic at a fractional scale: every output pixel has its own phase, so a tile
    # whose grid were shifted against the whole image's would differ everywhere.
    image = np.random.default_rng(1).random((43, 61, 1))
    for h, w in [(43, 61), (40, 60)]:  # sizes that are and are not multiples of q

        def run(piece):
            return np.asarray(imresize(piece, scale))

        whole = run(image[:h, :w])
        tiled = run_tiled(run, image[:h, :w], scale, tile=8, margin=4)
        assert tiled.shape == whole.shape
        np.testing.assert_allclose(tiled, whole, atol=1e-12)


@pytest.mark.parametrize("scale", [2.5, (1.5, 2.7)])
def test_tiled_meta_sesr_equals_whole_at_non_integer_scales(scale):
    model = meta_sesr(num_blocks=2, expanded_filters=16, hidden_units=16)
    rng = np.random.default_rng(2)
    for w in model.weights:  # random, non-trivial weights (the Pos2Weight MLP starts at zero)
        w.assign(rng.normal(0, 0.1, w.shape).astype(np.float32))
    upscaler = KerasUpscaler(model, scale, name="meta")
    image = _photo(37, 45, seed=4)
    whole = upscale_image(upscaler, image, tile=1000)
    tiled = upscale_image(upscaler, image, tile=12, margin=8)  # receptive radius 2 + 1 < 8
    assert tiled.shape == whole.shape
    diff = np.abs(whole.astype(int) - tiled.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_exported_form_of_meta_sesr_pads_like_the_arbitrary_scale_model():
    """The single-input form ``export.py`` converts (a fixed-scale Meta-SESR) gets the same
    padding to a whole output size as the two-input model, tiles included."""
    from tfsr.models.meta_sesr import fixed_scale_meta_sesr

    model = meta_sesr(num_blocks=2, expanded_filters=16, hidden_units=16)
    rng = np.random.default_rng(3)
    for w in model.weights:
        w.assign(rng.normal(0, 0.1, w.shape).astype(np.float32))
    any_scale = KerasUpscaler(model, 2.5, name="meta")
    fixed = KerasUpscaler(fixed_scale_meta_sesr(model, 2.5), 2.5, name="meta_x2.5")
    y = rng.uniform(0, 1, (45, 53, 1)).astype(np.float32)  # 45, 53: not multiples of 2
    np.testing.assert_allclose(fixed.upscale_y(y), any_scale.upscale_y(y), atol=1e-5)
    image = _photo(37, 45, seed=5)
    whole = upscale_image(fixed, image, tile=1000)
    diff = np.abs(whole.astype(int) - upscale_image(fixed, image, tile=12, margin=8).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_meta_sesr_at_a_fraction_tiles_like_the_whole():
    model = meta_sesr(num_blocks=1, expanded_filters=8, hidden_units=8)
    rng = np.random.default_rng(4)
    for w in model.weights:
        w.assign(rng.normal(0, 0.1, w.shape).astype(np.float32))
    up = KerasUpscaler(model, 4 / 3, name="meta")  # 4/3, as --scale=4/3 gives it
    image = _photo(27, 25, seed=6)
    whole = upscale_image(up, image, tile=1000)
    assert whole.shape == (36, 33, 3)  # floor(4/3 * 25) = 33
    diff = np.abs(whole.astype(int) - upscale_image(up, image, tile=9, margin=6).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_run_tiled_irrational_scale_runs_whole():
    calls = []

    def run(piece):
        calls.append(piece.shape)
        return piece

    with pytest.warns(UserWarning, match="no ratio p/q with q <= 100: the 50x50 image runs whole"):
        run_tiled(run, np.zeros((50, 50, 1)), (np.pi, 2.0), tile=8)
    with pytest.warns(UserWarning, match="give a scale such as 4/3 as a fraction"):
        run_tiled(run, np.zeros((50, 50, 1)), (1.333, 1.333), tile=8)  # 1333/1000
    assert calls == [(50, 50, 1)] * 2


def test_grey_stays_grey_and_alpha_is_kept(sesr_upscaler):
    grey = _photo(20, 24)[..., 0]
    out = upscale_image(sesr_upscaler, grey)
    assert out.shape == (40, 48) and out.dtype == np.uint8
    rgba = np.concatenate([_photo(20, 24), np.full((20, 24, 1), 77, np.uint8)], axis=-1)
    out = upscale_image(sesr_upscaler, rgba)
    assert out.shape == (40, 48, 4)
    assert (out[..., 3] == 77).all()  # bicubic of a constant is the constant
    # Grey with alpha: the grey path (the same pixels as without alpha), alpha beside it.
    la = np.stack([grey, np.full_like(grey, 77)], axis=-1)
    out = upscale_image(sesr_upscaler, la)
    assert out.shape == (40, 48, 2) and (out[..., 1] == 77).all()
    np.testing.assert_array_equal(out[..., 0], upscale_image(sesr_upscaler, grey))
    with pytest.raises(ValueError, match="expected a uint8 image"):
        upscale_image(sesr_upscaler, grey.astype(np.float32))


def test_transparent_colour_does_not_bleed_into_the_visible_edge(sesr_upscaler):
    # A red disc on transparent black: upscaled straight, black would darken every edge pixel.
    yy, xx = np.mgrid[:16, :16]
    image = np.zeros((16, 16, 4), np.uint8)
    image[(yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 30] = (200, 40, 0, 255)
    for name in ("bicubic", "sesr_m5_x2"):
        out = upscale_image(load_upscaler(name, 2), image)
        visible = out[..., 3] > 0
        assert (out[..., 3] < 255).any() and visible.any()  # a soft edge exists
        # The colour plane is flat now: bicubic keeps it exactly, the model within rounding.
        assert np.abs(out[visible][:, :3].astype(int) - (200, 40, 0)).max() <= 1, name
    # Alpha goes through the tiles too: tiled equals whole.
    rgba = np.concatenate([_photo(40, 52), np.zeros((40, 52, 1), np.uint8)], axis=-1)
    rgba[5:30, 8:44, 3] = 255
    rgba[12:20, 15:30, 3] = 90
    whole = upscale_image(sesr_upscaler, rgba, tile=1000)
    tiled = upscale_image(sesr_upscaler, rgba, tile=16, margin=16)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_fill_transparent():
    colour = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    alpha = np.array([[0, 255, 0, 0], [0, 0, 0, 9]], np.uint8)
    filled = fill_transparent(colour, alpha)
    # Each transparent pixel takes its nearest visible pixel's colour; visible ones keep theirs.
    nearest = [[(0, 1), (0, 1), (0, 1), (1, 3)], [(0, 1), (0, 1), (1, 3), (1, 3)]]
    for i in range(2):
        for j in range(4):
            np.testing.assert_array_equal(filled[i, j], colour[nearest[i][j]])
    for alpha in (np.zeros((2, 4)), np.full((2, 4), 255)):  # nothing to take from, or to fill
        np.testing.assert_array_equal(fill_transparent(colour, alpha), colour)


class _TintedNearest(Upscaler):
    """An RGB 'model': nearest x2, each channel scaled differently (its output is not grey)."""

    channels = 3

    def _predict(self, image):
        return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1) * np.float32([1.0, 0.5, 0.25])


def test_rgb_model_output_on_grey_is_made_grey_with_full_range_luma():
    grey = _photo(6, 8)[..., 0]
    out = upscale_image(_TintedNearest(2, "tinted"), grey)
    luma = 0.299 * 1.0 + 0.587 * 0.5 + 0.114 * 0.25  # of (v, v/2, v/4)
    expected = np.floor(np.repeat(np.repeat(grey, 2, 0), 2, 1) * luma + 0.5)
    np.testing.assert_array_equal(out, expected)


class _FixedSize(Upscaler):
    """A model that takes 8x8 inputs only (as a fixed-size export does)."""

    def _predict(self, image):
        if image.shape[:2] != (8, 8):
            raise ValueError(f"takes 8x8 inputs only, got {image.shape[0]}x{image.shape[1]}")
        return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)


def test_upscale_files_goes_on_after_an_image_the_model_cannot_take(tmp_path):
    for name, (h, w) in {"a": (8, 8), "b": (5, 6), "c": (8, 8)}.items():
        write_image(str(tmp_path / f"{name}.png"), _photo(h, w))
    pairs = plan_outputs([str(tmp_path)], str(tmp_path / "out"))
    failures = upscale_files(_FixedSize(2, "fixed"), pairs)
    assert [(os.path.basename(src), msg) for src, msg in failures] == [
        ("b.png", "takes 8x8 inputs only, got 5x6")
    ]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "c.png"]


def test_upscale_files_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90 degrees clockwise
    Image.fromarray(_photo(4, 6)).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    pairs = plan_outputs([str(tmp_path / "phone.jpg")], str(tmp_path / "out"))
    assert upscale_files(BicubicUpscaler(2), pairs) == []
    assert read_image(str(tmp_path / "out" / "phone.png")).shape == (12, 8, 3)


def test_upscale_files_keeps_the_colour_profile(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_image(tmp_path / "wide.png", _photo(4, 6), icc_profile=srgb)
    pairs = plan_outputs([str(tmp_path / "wide.png")], str(tmp_path / "out"))
    assert upscale_files(BicubicUpscaler(2), pairs) == []
    assert read_icc_profile(tmp_path / "out" / "wide.png") == srgb


def test_plan_outputs(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_image(str(folder / "a.jpg"), _photo(8, 8))
    write_image(str(folder / "sub" / "b.png"), _photo(8, 8))
    pairs = plan_outputs([str(folder)], str(tmp_path / "out"))
    assert sorted(os.path.relpath(d, tmp_path) for _, d in pairs) == [
        os.path.join("out", "a.png"),
        os.path.join("out", "sub", "b.png"),
    ]
    with pytest.raises(ValueError, match="is an input image"):
        plan_outputs([str(folder / "sub" / "b.png")], str(folder / "sub"))
    # An output folder inside the input folder: its images (an earlier run's) are not inputs.
    inside = plan_outputs([str(folder)], str(folder / "up"))
    (folder / "up").mkdir()
    write_image(str(folder / "up" / "a.png"), _photo(8, 8))
    assert plan_outputs([str(folder)], str(folder / "up")) == inside
    # --out the input folder itself, or above it: its images are inputs as ever.
    (tmp_path / "photos").mkdir()
    write_image(str(tmp_path / "photos" / "p.jpg"), _photo(8, 8))
    Image.fromarray(_photo(8, 8)).save(tmp_path / "photos" / "t.tif")  # TIFF files are listed
    for out in (tmp_path / "photos", tmp_path):
        pairs = plan_outputs([str(tmp_path / "photos")], str(out))
        assert [os.path.relpath(d, out) for _, d in pairs] == ["p.png", "t.png"]
    assert [os.path.relpath(s, folder) for s, _ in inside] == [
        "a.jpg",
        os.path.join("sub", "b.png"),
    ]
    write_image(str(tmp_path / "a.png"), _photo(8, 8))
    with pytest.raises(ValueError, match="would both be written to"):
        plan_outputs([str(folder / "a.jpg"), str(tmp_path / "a.png")], str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plan_outputs([str(tmp_path / "nothing.png")], str(tmp_path / "out"))
    with pytest.raises(ValueError, match="output folder .* is a file"):
        plan_outputs([str(folder / "a.jpg")], str(tmp_path / "a.png"))
    (folder / "c.gif").write_bytes(b"")
    same = plan_outputs([str(folder)], str(tmp_path / "out"), fmt="same")
    endings = {os.path.relpath(s, folder): os.path.relpath(d, tmp_path / "out") for s, d in same}
    assert endings["a.jpg"] == "a.jpg" and endings["c.gif"] == "c.png"  # no GIF writer: PNG
    webp = plan_outputs([str(folder / "a.jpg")], str(tmp_path / "out"), fmt="webp")
    assert webp[0][1] == os.path.join(str(tmp_path / "out"), "a.webp")
    with pytest.raises(ValueError, match="unknown output format 'tiff'"):
        plan_outputs([str(folder / "a.jpg")], str(tmp_path / "out"), fmt="tiff")
    (folder / "c.gif").unlink()
    # An existing output that is an input under another name (a hard link here; a case-folding
    # file system gives the same).
    (tmp_path / "linked").mkdir()
    os.link(folder / "a.jpg", tmp_path / "linked" / "a.png")
    with pytest.raises(ValueError, match="linked/a.png' is an input image"):
        plan_outputs([str(folder / "a.jpg")], str(tmp_path / "linked"))


def test_upscale_files_reports_bad_files_and_refuses_to_overwrite(tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    write_image(str(good), _photo(10, 12))
    bad.write_bytes(b"not an image")
    pairs = plan_outputs([str(good), str(bad)], str(tmp_path / "out"))
    failures = upscale_files(BicubicUpscaler(3), pairs)
    assert [os.path.basename(src) for src, _ in failures] == ["bad.png"]
    assert "cannot read image" in failures[0][1]
    assert read_image(str(tmp_path / "out" / "good.png")).shape == (30, 36, 3)
    with pytest.raises(FileExistsError, match="use --overwrite"):
        upscale_files(BicubicUpscaler(3), pairs[:1])
    assert upscale_files(BicubicUpscaler(3), pairs[:1], overwrite=True) == []
    frames = [Image.fromarray(_photo(6, 6, seed=i)) for i in range(2)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    pairs = plan_outputs([str(tmp_path / "anim.gif")], str(tmp_path / "out"))
    with pytest.warns(UserWarning, match="anim.gif is an animation: only its first frame"):
        assert upscale_files(BicubicUpscaler(2), pairs) == []
    # Transparency to JPEG: refused before the upscale, by name; opaque RGBA goes.
    rgba = np.concatenate([_photo(6, 6), np.full((6, 6, 1), 255, np.uint8)], axis=-1)
    write_image(tmp_path / "opaque.png", rgba)
    rgba[0, 0, 3] = 10
    write_image(tmp_path / "clear.png", rgba)
    inputs = [str(tmp_path / "opaque.png"), str(tmp_path / "clear.png")]
    failures = upscale_files(BicubicUpscaler(2), plan_outputs(inputs, str(tmp_path / "j"), "jpg"))
    assert failures == [
        (
            inputs[1],
            f"it has transparency, which {str(tmp_path / 'j' / 'clear.jpg')!r} cannot hold (use png or webp)",
        )
    ]
    assert os.listdir(tmp_path / "j") == ["opaque.jpg"]


def test_cli(tmp_path):
    write_image(str(tmp_path / "x.png"), _photo(10, 10))
    run = ["-m", "tfsr.upscale", "--model=bicubic", "--scale=2"]
    ok = run_python(*run, str(tmp_path / "x.png"), f"--out={tmp_path / 'o'}")
    assert ok.returncode == 0, ok.stderr
    assert read_image(str(tmp_path / "o" / "x.png")).shape == (20, 20, 3)
    same = run_python(*run, str(tmp_path / "x.png"), f"--out={tmp_path}")
    assert same.returncode != 0
    assert "is an input image" in same.stderr and "Traceback" not in same.stderr
    # Existing outputs are refused before the model loads (a missing model file is not reached).
    again = run_python(
        "-m",
        "tfsr.upscale",
        "--model=missing.keras",
        str(tmp_path / "x.png"),
        f"--out={tmp_path / 'o'}",
    )
    assert again.returncode != 0 and "use --overwrite" in again.stderr, again.stderr
    zero = run_python(*run, "--tile=0", str(tmp_path / "x.png"), f"--out={tmp_path / 'z'}")
    assert zero.returncode != 0 and "--tile" in zero.stderr and "Traceback" not in zero.stderr
    # Other output kinds, a fraction for the scale.
    jpg = run_python(
        *run[:-1],
        "--scale=3/2",
        "--format=jpg",
        "--quality=80",
        str(tmp_path / "x.png"),
        f"--out={tmp_path / 'j'}",
    )
    assert jpg.returncode == 0, jpg.stderr
    with Image.open(tmp_path / "j" / "x.jpg") as image:
        assert image.format == "JPEG" and image.size == (15, 15)


def test_cli_takes_images_above_pillows_decompression_bomb_limit(tmp_path):
    # Pillow refuses images above twice MAX_IMAGE_PIXELS; the limit is lowered to 50 pixels here
    # so that a 20x20 image stands in for a gigapixel one, and tfsr.upscale's main must lift it.
    write_image(str(tmp_path / "x.png"), _photo(20, 20))
    argv = ["tfsr.upscale", "--model=bicubic", "--scale=2", str(tmp_path / "x.png")]
    argv.append(f"--out={tmp_path / 'o'}")
    script = (
        "import sys\n"
        "from absl import app\n"
        "from PIL import Image\n"
        "import tfsr.upscale\n"
        "Image.MAX_IMAGE_PIXELS = 50\n"
        f"sys.argv = {argv!r}\n"
        "app.run(tfsr.upscale.main)\n"
    )
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    assert read_image(str(tmp_path / "o" / "x.png")).shape == (40, 40, 3)
