"""Tests for tfsr.quantization.qat: annotation, range calibration, QAT, saving and resuming."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.models.sesr import collapse_model, sesr
from tfsr.quantization import configs, qat


def tiny_sesr(activation="prelu", seed=0):
    keras.utils.set_random_seed(seed)
    return sesr(scale=2, num_filters=4, num_blocks=2, expanded_filters=8, activation=activation)


def lr_batch(seed=0, n=2, size=12):
    """LR images on the uint8 grid (as the real data), so input fake-quant is exact."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, size, size, 1)) / 255.0).astype(np.float32)


def quant_range(model, layer_name, part):
    layer = model.get_layer(layer_name)
    lo = [w for w in layer.weights if w.name.endswith(f"{part}_min:0")][0]
    hi = [w for w in layer.weights if w.name.endswith(f"{part}_max:0")][0]
    return float(lo.numpy().ravel()[0]), float(hi.numpy().ravel()[0])


def test_calibrated_range_is_mean_of_batch_ranges():
    inputs = keras.Input((None, None, 1))
    conv = keras.layers.Conv2D(2, 1, name="conv")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2), np.zeros(2)])
    q = qat.quantize_model(model)
    a = np.full((1, 4, 4, 1), 51 / 255, np.float32)
    a[0, 0, 0, 0] = 153 / 255  # batch range of the conv output: [-0.6, 0.6]
    b = np.full((1, 4, 4, 1), 102 / 255, np.float32)  # [-0.4, 0.4]
    assert qat.calibrate_ranges(q, [a, (b, None)]) == 2
    np.testing.assert_allclose(quant_range(q, "quant_conv", "output"), (-0.5, 0.5), atol=1e-6)
    input_quantizer = q.layers[1].name  # quantize_layer, quantize_layer_1, ...
    assert quant_range(q, input_quantizer, input_quantizer) == (0.0, 1.0)
    # The EMA decay is back to its training value.
    config = q.get_layer("quant_conv").quantize_config
    assert config.output_quantizer.ema_decay == 0.999
    # Frozen ranges are calibrated all the same, and stay frozen.
    qat.freeze_ranges(q)
    qat.calibrate_ranges(q, [b])
    np.testing.assert_allclose(quant_range(q, "quant_conv", "output"), (-0.4, 0.4), atol=1e-6)
    assert config.output_quantizer.frozen
    # A layer whose name contains "output" still has one output range and one kernel range.
    named = keras.Model(inputs, keras.layers.Conv2D(2, 1, name="output_conv")(inputs))
    wrapper = qat.quantize_model(named).get_layer("quant_output_conv")
    assert qat.range_vars(wrapper, "output")[0].name.endswith("/output_min:0")
    assert qat.range_vars(wrapper, "kernel")[0].name.endswith("/kernel_min:0")


def test_annotation_of_sesr():
    q = qat.quantize_model(collapse_model(tiny_sesr("relu")))
    by_name = {layer.name: layer for layer in q.layers}
    # A conv followed by a plain ReLU has no output range (TFLite fuses the pair).
    assert by_name["quant_block_1"].quantize_config.get_config()["quantize_output"] is False
    assert by_name["quant_first_block"].quantize_config.get_config()["quantize_output"] is True
    assert isinstance(by_name["quant_pixel_shuffle"].quantize_config, configs.NoOpQuantizeConfig)
    # The clip became an identity with a fixed [0, 1] range.
    assert by_name["quant_clip"].quantize_config.output_range == (0.0, 1.0)
    assert by_name["quant_clip"].layer.get_config()["activation"] == "linear"
    # The residual add before pixel shuffle and clip takes the clip's range: no second rounding,
    # no calibrated range below 1 cutting off bright pixels.
    assert by_name["quant_nearest_residual"].quantize_config.output_range == (0.0, 1.0)
    assert by_name["quant_long_residual"].quantize_config.output_range is None
    # Fixed ranges hold their values from the start (before any calibration or QAT step).
    assert quant_range(q, "quant_clip", "output") == (0.0, 1.0)
    assert quant_range(q, "quant_nearest_residual", "output") == (0.0, 1.0)


def test_qat_model_is_close_to_float_model():
    model = collapse_model(tiny_sesr())
    q = qat.quantize_model(model)
    qat.calibrate_ranges(q, [lr_batch(s) for s in range(3)])
    x = lr_batch(7)
    ref = model(x).numpy()
    out = q(x, training=False).numpy()
    assert out.shape == ref.shape == (2, 24, 24, 1)
    # Output on the 1/255 grid, clipped to [0, 1], within a few steps of the float model.
    np.testing.assert_allclose(out * 255, np.round(out * 255), atol=1e-3)
    assert out.min() >= 0 and out.max() <= 1
    # An untrained 4-feature network amplifies rounding; typical errors stay at a few steps.
    error = np.abs(out - np.clip(ref, 0, 1)) * 255
    assert np.median(error) < 2 and np.percentile(error, 90) < 5 and error.max() < 40


def test_collapsible_block_qat_matches_collapsed_conv_qat():
    model = tiny_sesr()
    q_blocks = qat.quantize_model(model)
    q_convs = qat.quantize_model(collapse_model(model))
    block = q_blocks.get_layer("quant_block_1").layer
    assert block.kernel_quantizer is configs.fake_quant_kernel_per_channel
    batches = [lr_batch(s) for s in range(2)]
    qat.calibrate_ranges(q_blocks, batches)
    qat.calibrate_ranges(q_convs, batches)
    x = lr_batch(9)
    a, b = q_blocks(x).numpy(), q_convs(x).numpy()
    # Same arithmetic up to float rounding of the collapse: rare one-step flips only.
    assert np.mean(np.abs(a - b) > 0.5 / 255) < 0.01
    assert np.abs(a - b).max() <= 2 / 255 + 1e-6


def test_unsupported_layer_raises():
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    with pytest.raises(ValueError, match="cannot quantize layer 'dense' of type Dense"):
        qat.quantize_model(model)


def test_calibrate_without_batches_raises():
    q = qat.quantize_model(collapse_model(tiny_sesr()))
    with pytest.raises(ValueError, match="at least one batch"):
        qat.calibrate_ranges(q, [])


def _dataset(n=8):
    lr = lr_batch(3, n=n, size=8)
    hr = np.repeat(np.repeat(lr, 2, axis=1), 2, axis=2)
    return tf.data.Dataset.from_tensor_slices((lr, hr)).batch(2).repeat()


def test_train_qat_lowers_loss_and_resumes(tmp_path):
    model = collapse_model(tiny_sesr())
    q = qat.quantize_model(model)
    qat.calibrate_ranges(q, [lr_batch(0, size=8)])
    lr, hr = next(iter(_dataset()))

    def l1(model):  # on one fixed batch, through the fake-quant nodes
        return float(tf.reduce_mean(tf.abs(model(lr, training=False) - hr)))

    loss_before = l1(q)
    first = qat.train_qat(q, _dataset(), 3, learning_rate=1e-3, checkpoint_dir=str(tmp_path))
    assert (first["steps"], first["resumed_from"]) == (3, 0) and np.isfinite(first["loss"])
    # A fresh QAT model resumes from the checkpoint: same weights, continues to step 5.
    q2 = qat.quantize_model(model)
    optimizer = keras.optimizers.Adam()
    _, step = qat.qat_checkpoint(q2, optimizer, str(tmp_path))
    assert int(step.numpy()) == 3
    for a, b in zip(q.weights, q2.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    second = qat.train_qat(q2, _dataset(), 40, learning_rate=1e-3, checkpoint_dir=str(tmp_path))
    assert second["resumed_from"] == 3 and second["steps"] == 40
    # The target (nearest x2 of the input) is easy: 40 steps must lower the loss clearly.
    assert l1(q2) < 0.8 * loss_before


def test_qat_checkpoint_of_another_model_is_refused(tmp_path):
    prelu = qat.quantize_model(collapse_model(tiny_sesr("prelu")))
    qat.calibrate_ranges(prelu, [lr_batch(0, size=8)])
    qat.train_qat(prelu, _dataset(), 2, checkpoint_dir=str(tmp_path))
    relu = qat.quantize_model(collapse_model(tiny_sesr("relu")))
    before = [w.numpy().copy() for w in relu.weights]
    with pytest.raises(ValueError, match="QAT checkpoint in .* is of a different model"):
        qat.train_qat(relu, _dataset(), 4, checkpoint_dir=str(tmp_path))
    for a, b in zip(before, relu.weights, strict=True):
        np.testing.assert_array_equal(a, b.numpy())  # nothing loaded


def test_qat_checkpoint_of_another_start_is_refused(tmp_path):
    # The same structure from other float weights (or calibration settings): before, the old
    # checkpoint was loaded over the new model and exported in its place.
    q = qat.quantize_model(collapse_model(tiny_sesr()))
    qat.calibrate_ranges(q, [lr_batch(0, size=8)])
    start = {"float_weights": qat.weights_digest(q), "range_percentile": 99.99}
    qat.train_qat(q, _dataset(), 2, checkpoint_dir=str(tmp_path), source=start)
    other = dict(start, float_weights="0" * 64)
    with pytest.raises(ValueError, match=r"made from another start \(float_weights differ\)"):
        qat.train_qat(q, _dataset(), 4, checkpoint_dir=str(tmp_path), source=other)
    resumed = qat.train_qat(q, _dataset(), 3, checkpoint_dir=str(tmp_path), source=dict(start))
    assert resumed["resumed_from"] == 2


def test_weights_digest_tells_weights_apart():
    model = collapse_model(tiny_sesr())
    digest = qat.weights_digest(model)
    assert digest == qat.weights_digest(model) and len(digest) == 64
    model.weights[0].assign_add(tf.ones_like(model.weights[0]) * 1e-6)
    assert qat.weights_digest(model) != digest


def test_resumed_qat_continues_the_batch_sequence(tmp_path):
    q = qat.quantize_model(collapse_model(tiny_sesr()))
    qat.calibrate_ranges(q, [lr_batch(0, size=8)])
    starts = []

    def batches(start):
        starts.append(start)
        return _dataset().skip(start)

    qat.train_qat(q, batches, 2, checkpoint_dir=str(tmp_path))
    qat.train_qat(q, batches, 5, checkpoint_dir=str(tmp_path))
    assert starts == [0, 2]


def test_qat_checkpoint_without_its_fingerprint_is_still_checked(tmp_path):
    relu = qat.quantize_model(collapse_model(tiny_sesr("relu")))
    qat.calibrate_ranges(relu, [lr_batch(0, size=8)])
    qat.train_qat(relu, _dataset(), 2, checkpoint_dir=str(tmp_path))
    os.remove(tmp_path / qat._FINGERPRINT_FILE)  # a folder from before the fingerprint
    prelu = qat.quantize_model(collapse_model(tiny_sesr("prelu")))  # more variables
    with pytest.raises(ValueError, match="QAT checkpoint in .* does not fit this model: "):
        qat.qat_checkpoint(prelu, keras.optimizers.Adam(), str(tmp_path))


def test_qat_model_h5_round_trip(tmp_path):
    q = qat.quantize_model(collapse_model(tiny_sesr()))
    qat.calibrate_ranges(q, [lr_batch(1)])
    path = str(tmp_path / "qat.h5")
    q.save(path)
    with configs.quantize_scope():
        restored = keras.models.load_model(path, compile=False)
    x = lr_batch(2)
    np.testing.assert_allclose(restored(x).numpy(), q(x).numpy(), atol=1e-6)


def test_train_qat_rejects_bad_steps():
    q = qat.quantize_model(collapse_model(tiny_sesr()))
    with pytest.raises(ValueError, match="steps must be a non-negative integer, got -1"):
        qat.train_qat(q, _dataset(), -1)


def _identity_conv_qat():
    inputs = keras.Input((None, None, 1))
    conv = keras.layers.Conv2D(1, 1, name="conv")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    return qat.quantize_model(model)


def test_percentile_calibration_clips_rare_extremes():
    q = _identity_conv_qat()
    # 10,000 values on [0, 0.2] and one outlier at 1.0.
    a = (np.arange(10_000, dtype=np.float32) % 52 / 255.0).reshape(1, 100, 100, 1)
    a[0, 0, 0, 0] = 1.0
    qat.calibrate_ranges(q, [a], percentile=99.9)
    low, high = quant_range(q, "quant_conv", "output")
    assert low == 0.0  # widened to hold 0
    np.testing.assert_allclose(high, np.percentile(a, 99.9), atol=1e-6)
    assert high < 0.21
    qat.calibrate_ranges(q, [a])  # mean min / max keeps the outlier
    assert quant_range(q, "quant_conv", "output")[1] == pytest.approx(1.0)
    config = q.get_layer("quant_conv").quantize_config
    assert config.output_quantizer.observer is None
    with pytest.raises(ValueError, match=r"percentile must be in \(50, 100\]"):
        qat.calibrate_ranges(q, [a], percentile=30)


def test_frozen_ranges_do_not_move_in_training():
    q = _identity_conv_qat()
    small = np.full((1, 4, 4, 1), 51 / 255, np.float32)
    qat.calibrate_ranges(q, [small], percentile=99.99)
    before = quant_range(q, "quant_conv", "output")
    qat.freeze_ranges(q)
    q(np.ones((1, 4, 4, 1), np.float32), training=True)
    assert quant_range(q, "quant_conv", "output") == before
    qat.freeze_ranges(q, False)
    q(np.ones((1, 4, 4, 1), np.float32), training=True)
    assert quant_range(q, "quant_conv", "output")[1] > before[1]
