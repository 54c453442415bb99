"""meta_sesr: SESR body + MetaUpscale + bilinear residual, one model for every scale."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.models import collapse_model, meta_sesr
from tfsr.models.meta_sesr import (
    ANISOTROPIC_SCALES,
    ISOTROPIC_SCALES,
    BilinearResizeLike,
    is_arbitrary_scale,
)
from tfsr.models.registry import get_model_spec, model_names


def _lr(shape=(1, 10, 12, 1), seed=0):
    return np.random.default_rng(seed).random(shape).astype("float32")


@pytest.fixture(scope="module")
def model():
    m = meta_sesr(num_blocks=2, expanded_filters=16, hidden_units=16, collapsed_training=False)
    # The Pos2Weight output layer starts at zero (the model starts as bilinear): randomise it so
    # that the body matters.
    filters = m.get_layer("meta_upscale").pos2weight.filters
    rng = np.random.default_rng(0)
    filters.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in filters.weights])
    return m


@pytest.mark.parametrize(
    "scale, hw",
    [((1.5, 1.5), (15, 18)), ((2, 2), (20, 24)), ((2.5, 2.5), (25, 30)), ((2, 3.5), (20, 42))],
)
def test_runs_at_any_scale(model, scale, hw):
    y = model([_lr(), np.array([scale], np.float32)]).numpy()
    assert y.shape == (1, *hw, 1)
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_untrained_model_is_clipped_bilinear():
    m = meta_sesr(num_blocks=1, expanded_filters=8, hidden_units=8)  # Pos2Weight output: zeros
    lr = _lr((2, 7, 9, 1), seed=1) * 1.2 - 0.1  # reaches outside [0, 1]: the clip shows
    y = m([lr, np.array([[2.3, 3.1]] * 2, np.float32)]).numpy()
    expect = np.clip(tf.image.resize(lr, (16, 27), method="bilinear").numpy(), 0, 1)
    np.testing.assert_allclose(y, expect, atol=1e-6)


def test_collapsed_model_matches_and_round_trips(model, tmp_path):
    collapsed = collapse_model(model)
    assert not any("CollapsibleLinearBlock" in type(layer).__name__ for layer in collapsed.layers)
    lr, scale = _lr(seed=2), np.array([[2.7, 1.9]], np.float32)
    expected = model([lr, scale]).numpy()
    bilinear = tf.image.resize(lr, expected.shape[1:3], method="bilinear").numpy()
    assert np.abs(expected - np.clip(bilinear, 0, 1)).max() > 1e-2  # the body matters
    np.testing.assert_allclose(collapsed([lr, scale]), expected, atol=1e-5)
    path = str(tmp_path / "meta.keras")
    collapsed.save(path)
    restored = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(restored([lr, scale]), collapsed([lr, scale]), atol=1e-6)
    assert is_arbitrary_scale(restored) and not is_arbitrary_scale(keras.Sequential([]))


def test_registered_for_training():
    names = model_names()
    assert "meta_sesr" in names and "sesr_m5" in names
    spec = get_model_spec("meta_sesr")
    assert spec.patch_size % 10 == 0
    assert spec.train_scales[:3] == (1.1, 1.2, 1.3) and spec.train_scales[29] == 4.0
    assert len(ISOTROPIC_SCALES) == 30 and (2.0, 4.0) in ANISOTROPIC_SCALES
    assert spec.validation_scales == (2, 3, 4)
    built = spec.build(scale=3, activation="relu")
    assert is_arbitrary_scale(built) and built.get_layer("relu_1") is not None


def test_bilinear_resize_like_shape():
    layer = BilinearResizeLike()
    assert layer.compute_output_shape([(None, 4, 4, 1), (None, 9, None, 3)]).as_list() == [
        None,
        9,
        None,
        1,
    ]


def test_bad_activation():
    with pytest.raises(ValueError, match="activation must be one of"):
        meta_sesr(activation="gelu")


@pytest.mark.parametrize("scale", [2.5, 1.7])
def test_evaluate_at_a_float_scale(tmp_path, scale):
    """evaluate() at a non-integer scale: HR modcropped to a multiple of p, LR made from it, SR
    of the HR size; the PSNR is that of clipped bilinear upsampling (zero meta filters)."""
    from tfsr import metrics
    from tfsr.data import io
    from tfsr.data.imresize import imresize, modcrop, to_uint8
    from tfsr.evaluation import evaluate
    from tfsr.inference import KerasUpscaler

    rng = np.random.default_rng(3)
    hr = (rng.random((23, 36, 3)) * 255).astype(np.uint8)
    io.write_image(str(tmp_path / "img.png"), hr)
    m = meta_sesr(num_blocks=1, expanded_filters=8, hidden_units=8)  # untrained: bilinear
    result = evaluate(KerasUpscaler(m, scale, name="meta"), str(tmp_path), scale)

    hr = modcrop(hr, scale)  # 2.5 = 5/2: 20 x 35; 1.7 = 17/10: 17 x 34
    lr_y = metrics.y_channel(imresize(hr, 1.0 / scale)) / 255.0
    sr = tf.image.resize(lr_y[None, ..., None].astype(np.float32), hr.shape[:2], "bilinear")
    sr = to_uint8(np.clip(sr[0, ..., 0].numpy(), 0, 1) * 255.0)
    crop = int(np.ceil(scale))
    assert result["images"] == 1 and result["scale"] == scale
    np.testing.assert_allclose(result["psnr"], metrics.psnr(sr, hr, crop), rtol=1e-9)
    np.testing.assert_allclose(result["ssim"], metrics.ssim(sr, hr, crop), rtol=1e-9)


def test_shipped_meta_sesr_runs_at_any_scale():
    from tfsr.inference import load_upscaler

    up = load_upscaler("meta_sesr", (1.5, 2.5))
    y = np.random.default_rng(0).uniform(0, 1, (10, 12)).astype(np.float32)
    assert up.upscale_y(y).shape == (15, 30, 1)
    with pytest.raises(ValueError, match="the scale of model meta_sesr is not known"):
        load_upscaler("meta_sesr")
