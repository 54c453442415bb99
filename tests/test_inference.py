"""Upscalers: bicubic, tf_keras files, SavedModel, TFLite, pretrained names, kinds."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr import inference
from tfsr.data import imresize, rgb_to_ycbcr, ycbcr_to_rgb
from tfsr.inference import (
    BicubicUpscaler,
    KerasUpscaler,
    Upscaler,
    load_upscaler,
    register_upscaler_kind,
)
from tfsr.layers import PixelShuffle
from tfsr.models.pretrained import _REGISTRY, PretrainedEntry


def _nearest_model(channels: int, size=None, factor: int = 2) -> keras.Model:
    """(N, H, W, C) -> (N, fH, fW, C), each pixel repeated: an SR model with a known output.

    A 1x1 convolution copying the input f*f times, then a pixel shuffle: resizes in TFLite.
    """
    inputs = keras.Input((size, size, channels))
    copies = keras.layers.Conv2D(channels * factor**2, 1, use_bias=False)
    x = PixelShuffle(factor)(copies(inputs))
    kernel = np.zeros((1, 1, channels, channels * factor**2), np.float32)
    for k in range(factor**2):
        kernel[0, 0, np.arange(channels), k * channels + np.arange(channels)] = 1.0
    copies.set_weights([kernel])
    return keras.Model(inputs, x)


def _nearest(x: np.ndarray, factor: int = 2) -> np.ndarray:
    return np.repeat(np.repeat(x, factor, axis=0), factor, axis=1)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return (
        rng.uniform(0, 1, (7, 9, 3)).astype(np.float32),
        rng.uniform(0, 1, (7, 9)).astype(np.float32),
    )


@pytest.fixture(scope="module")
def y_model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("models") / "y_x2.keras")
    _nearest_model(1).save(path)
    return path


def test_a_finished_run_folder_loads_its_model(images, y_model_path, tmp_path, monkeypatch):
    import shutil

    shutil.copy(y_model_path, tmp_path / "model.keras")
    up = load_upscaler(str(tmp_path), 2)
    assert isinstance(up, KerasUpscaler) and up.name == str(tmp_path)
    np.testing.assert_allclose(up.upscale_y(images[1])[..., 0], _nearest(images[1]), atol=1e-7)
    # A run folder named like a shipped model comes first (as for export.py and --init_from).
    (tmp_path / "sesr_m5_x2").mkdir()
    shutil.copy(y_model_path, tmp_path / "sesr_m5_x2" / "model.keras")
    monkeypatch.chdir(tmp_path)
    local = load_upscaler("sesr_m5_x2", 2)
    np.testing.assert_allclose(local.upscale_y(images[1])[..., 0], _nearest(images[1]), atol=1e-7)


def test_bicubic(images):
    rgb, y = images
    up = load_upscaler("bicubic", 2)
    assert isinstance(up, BicubicUpscaler) and up.channels is None and up.scale == 2
    np.testing.assert_array_equal(up.upscale_y(y), np.clip(imresize(y, 2), 0, 1)[..., None])
    np.testing.assert_array_equal(up.upscale_rgb(rgb), np.clip(imresize(rgb, 2), 0, 1))
    pair = load_upscaler("bicubic", (2, 1.5))
    assert pair.scale_pair == (2.0, 1.5)
    assert pair.upscale_rgb(rgb).shape == (14, 14, 3)  # ceil(1.5 * 9)
    assert repr(pair) == "BicubicUpscaler('bicubic', scale=2x1.5)"


def test_keras_y_model(images, y_model_path):
    rgb, y = images
    up = load_upscaler(y_model_path, 2)
    assert isinstance(up, KerasUpscaler) and up.channels == 1
    out = up.upscale_y(y)
    assert out.shape == (14, 18, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], _nearest(y), atol=1e-7)
    # RGB through a Y model: the model on Y, bicubic on Cb and Cr, back to RGB, clipped.
    ycbcr = rgb_to_ycbcr(rgb.astype(np.float64))  # as the upscaler computes it
    expected = ycbcr_to_rgb(
        np.concatenate([_nearest(ycbcr[..., :1]), imresize(ycbcr[..., 1:], 2)], axis=-1)
    )
    np.testing.assert_allclose(up.upscale_rgb(rgb), np.clip(expected, 0, 1), atol=1e-6)


def test_rgb_model_h5_and_savedmodel(images, tmp_path):
    rgb, _ = images
    model = _nearest_model(3)
    for path in (str(tmp_path / "rgb.h5"), str(tmp_path / "rgb_savedmodel")):
        model.save(path)
        up = load_upscaler(path, 2)
        assert up.channels == 3
        np.testing.assert_allclose(up.upscale_rgb(rgb), _nearest(rgb), atol=1e-7)
        with pytest.raises(ValueError, match="is an RGB model: use upscale_rgb"):
            up.upscale_y(rgb[..., 0])


def test_output_is_clipped():
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.UpSampling2D(2)(inputs) * 3.0 - 1.0)
    out = KerasUpscaler(model, 2, "scaled").upscale_y(np.array([[0.1, 0.5], [0.9, 0.3]]))
    np.testing.assert_allclose(out[::2, ::2, 0], [[0.0, 0.5], [1.0, 0.0]], atol=1e-6)


def test_nan_output_is_an_error_not_black_pixels():
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.UpSampling2D(2)(inputs) * float("nan"))
    with pytest.raises(ValueError, match="nan: the model's output holds NaN"):
        KerasUpscaler(model, 2, "nan").upscale_y(np.zeros((3, 4)))


def test_model_scale_is_checked(y_model_path):
    with pytest.raises(ValueError, match="upscales by 2, but scale 3 was asked for"):
        load_upscaler(y_model_path, 3)
    # A model with static shapes: its scale comes from them, and other sizes are refused.
    up = KerasUpscaler(_nearest_model(1, size=8, factor=3), 3, "static")
    assert up.upscale_y(np.zeros((8, 8))).shape == (24, 24, 1)
    with pytest.raises(ValueError, match="takes 8x8 inputs only, got an image of 5x6"):
        up.upscale_y(np.zeros((5, 6)))
    with pytest.raises(ValueError, match="upscales by 3, but scale 2 was asked for"):
        KerasUpscaler(_nearest_model(1, size=8, factor=3), 2, "static")


def _tflite_file(model, path, int8=False):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(4):
                yield [rng.uniform(0, 1, (1, 8, 8, 1)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with open(path, "wb") as f:
        f.write(converter.convert())
    return str(path)


def test_tflite_float_resizes_its_input(images, tmp_path):
    _, y = images
    inputs = keras.Input((8, 8, 1), batch_size=1)
    conv = keras.layers.Conv2D(4, 3, padding="same", kernel_initializer="glorot_uniform")
    model = keras.Model(inputs, tf.nn.depth_to_space(conv(inputs), 2))
    path = _tflite_file(model, tmp_path / "m.tflite")
    up = load_upscaler(path, 2)
    assert up.channels == 1
    for image in (y, y[:5, :6]):  # two sizes, neither the converted 8x8
        expected = np.clip(tf.nn.depth_to_space(conv(image[None, ..., None]), 2)[0], 0, 1)
        np.testing.assert_allclose(up.upscale_y(image), expected, atol=1e-5)
    with pytest.raises(ValueError, match="upscales by 2, but scale 4 was asked for"):
        load_upscaler(path, 4)


def test_tflite_int8_quantizes_and_dequantizes(images, tmp_path):
    _, y = images
    path = _tflite_file(_nearest_model(1, size=8), tmp_path / "q.tflite", int8=True)
    up = load_upscaler(path, 2)
    out = up.upscale_y(y)
    # Nearest upsampling survives int8 up to one quantization step (about 1/255 here).
    np.testing.assert_allclose(out[..., 0], _nearest(y), atol=1.5 / 255)


def test_fixed_size_tflite_is_refused_on_other_sizes(images, tmp_path):
    # UpSampling2D converts to a resize with a constant output size: the input resizes, the
    # output does not; the upscaler notices instead of returning a 16x16 image for 7x9.
    inputs = keras.Input((8, 8, 1), batch_size=1)
    model = keras.Model(inputs, keras.layers.UpSampling2D(2)(inputs))
    up = load_upscaler(_tflite_file(model, tmp_path / "fixed.tflite"), 2)
    assert up.upscale_y(np.zeros((8, 8))).shape == (16, 16, 1)
    with pytest.raises(ValueError, match="output 16x16 for a 7x9 input is not a x2 upscale"):
        up.upscale_y(images[1])


def test_pretrained_name(images, y_model_path, monkeypatch):
    entry = PretrainedEntry(
        name="test_nearest_x2", filename=os.path.abspath(y_model_path), scale=2, description=""
    )
    monkeypatch.setitem(_REGISTRY, entry.name, entry)
    up = load_upscaler("test_nearest_x2", 2)
    assert up.name == "test_nearest_x2" and up.channels == 1
    np.testing.assert_allclose(up.upscale_y(images[1])[..., 0], _nearest(images[1]), atol=1e-7)
    with pytest.raises(ValueError, match="model test_nearest_x2 upscales by 2, but scale 4"):
        load_upscaler("test_nearest_x2", 4)


def test_unknown_spec_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match=r"unknown model 'nope': expected 'bicubic'; .*\.tflite"):
        load_upscaler("nope", 2)
    with pytest.raises(FileNotFoundError, match="model file '.*missing.keras' does not exist"):
        load_upscaler(str(tmp_path / "missing.keras"), 2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_upscaler(str(tmp_path / "missing.tflite"), 2)
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="cannot load tf_keras model"):
        load_upscaler(str(bad), 2)
    import zipfile

    with zipfile.ZipFile(tmp_path / "partial.keras", "w") as partial:  # no config.json
        partial.writestr("metadata.json", "{}")
    with pytest.raises(ValueError, match="cannot load tf_keras model"):
        load_upscaler(str(tmp_path / "partial.keras"), 2)
    with pytest.raises(ValueError, match="scale must be positive and finite, got 0"):
        load_upscaler("bicubic", 0)
    with pytest.raises(ValueError, match="scale must be a number or a .vertical, horizontal"):
        load_upscaler("bicubic", (2, 3, 4))


@pytest.mark.parametrize("name", ["MISSING.KERAS", "Missing.H5", "MISSING.TFLITE", "Missing.Npz"])
def test_file_endings_in_any_case_are_model_files(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="does not exist"):  # not "unknown model"
        load_upscaler(str(tmp_path / name), 2)


def test_input_shape_errors(images):
    up = load_upscaler("bicubic", 2)
    with pytest.raises(ValueError, match=r"upscale_rgb expects \(H, W, 3\), got shape \(7, 9\)"):
        up.upscale_rgb(images[1])
    with pytest.raises(ValueError, match=r"upscale_y expects \(H, W\) or \(H, W, 1\)"):
        up.upscale_y(images[0])


def test_registering_a_kind(images, monkeypatch):
    monkeypatch.setattr(inference, "_KINDS", list(inference._KINDS))

    class Doubler(Upscaler):
        channels = 1

        def _predict(self, image):
            return _nearest(image) * 2

    register_upscaler_kind(
        "doubler", "'doubler'", lambda s: s == "doubler", lambda s, scale: Doubler(scale, s)
    )
    assert [k.name for k in inference.upscaler_kinds()][-1] == "doubler"
    out = load_upscaler("doubler", 2).upscale_y(images[1] / 4)
    np.testing.assert_allclose(out[..., 0], _nearest(images[1]) / 2, atol=1e-7)
    with pytest.raises(ValueError, match="'doubler'"):
        load_upscaler("something else", 2)


def test_scale_none_means_the_models_own_scale():
    from tfsr.inference import BicubicUpscaler, KerasUpscaler, load_upscaler
    from tfsr.models import sesr_model

    assert KerasUpscaler(sesr_model("m3", scale=3), None, name="m3").scale == 3.0
    with pytest.raises(ValueError, match="the scale of model bicubic is not known"):
        load_upscaler("bicubic")
    assert BicubicUpscaler(2).scale == 2
    fixed = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 3, padding="same")])
    with pytest.raises(ValueError, match="upscales by 1"):
        KerasUpscaler(fixed, 2, name="identity")


def _meta_bilinear_model():
    """A meta_sesr whose MetaUpscale predicts zero filters: output = clip(bilinear(lr))."""
    from tfsr.models import meta_sesr

    model = meta_sesr(num_blocks=1, expanded_filters=8, hidden_units=8)
    filters = model.get_layer("meta_upscale").pos2weight.filters
    filters.set_weights([np.zeros_like(w) for w in filters.get_weights()])
    return model


@pytest.mark.parametrize("scale, hw", [(2.5, (17, 22)), ((2.0, 3.5), (14, 31)), (1.3, (9, 11))])
def test_arbitrary_scale_keras_model(images, scale, hw):
    up = KerasUpscaler(_meta_bilinear_model(), scale, name="meta")
    assert up.arbitrary_scale and up.channels == 1
    y = images[1]
    out = up.upscale_y(y)
    assert out.shape == (*hw, 1)
    # Bilinear, half-pixel centres, sampling at exactly the scale (source (i + 0.5) / s - 0.5,
    # edge values beyond the border), even where s * size is not whole (17 x 2.5 = 42.5).
    expect = y.astype(np.float64)
    for axis, s in enumerate(np.broadcast_to(scale, 2)):
        src = (np.arange(hw[axis]) + 0.5) / s - 0.5
        lo = np.floor(src).astype(int)
        frac = (src - lo)[:, None] if axis == 0 else (src - lo)[None, :]
        n = expect.shape[axis]
        a = np.take(expect, np.clip(lo, 0, n - 1), axis=axis)
        b = np.take(expect, np.clip(lo + 1, 0, n - 1), axis=axis)
        expect = a + frac * (b - a)
    np.testing.assert_allclose(out[..., 0], np.clip(expect, 0, 1), atol=1e-5)
    assert up.upscale_rgb(np.zeros((7, 9, 3), np.float32)).shape == (*hw, 3)


def test_arbitrary_scale_model_needs_a_scale():
    with pytest.raises(ValueError, match="upscales by any scale: give the scale"):
        KerasUpscaler(_meta_bilinear_model(), None, name="meta")


def test_scale_from_flags():
    from tfsr.inference import scale_from_flags

    assert scale_from_flags(2.5) == 2.5
    assert scale_from_flags(None) is None
    assert scale_from_flags(None, 2.0, 3.5) == (2.0, 3.5)
    assert scale_from_flags(3.0, scale_h=1.5) == (3.0, 1.5)
    with pytest.raises(ValueError, match="give both --scale_v and --scale_h"):
        scale_from_flags(None, scale_v=2.0)


class _GridRecorder(inference.Upscaler):
    """Records the input sizes ``_on_whole_grid`` runs on; outputs floor(s * size) zeros."""

    channels = 1

    def __init__(self, scale):
        super().__init__(scale, name="recorder")
        self.seen = []

    def _predict(self, image):
        def run(x):
            self.seen.append(x.shape[:2])
            size = [int(n * s + 1e-9) for n, s in zip(x.shape[:2], self.scale_pair, strict=True)]
            return np.zeros((*size, 1), np.float32)

        return self._on_whole_grid(image, run)


@pytest.mark.parametrize(
    ("scale", "padded", "out"),
    [(2.5, (10, 12), (25, 27)), (4 / 3, (12, 12), (13, 14)), (1.333, (10, 11), (13, 14))],
)
def test_whole_grid_padding_only_for_short_ratios(scale, padded, out):
    # 2.5 = 5/2 and 4/3 pad to a multiple of q; 1.333 = 1333/1000 would pad a 10x11 image to
    # 1000x1000 (q above GRID_DENOMINATOR): it runs as it is.
    up = _GridRecorder(scale)
    assert up.upscale_y(np.zeros((10, 11, 1), np.float32)).shape == (*out, 1)
    assert up.seen == [padded]
