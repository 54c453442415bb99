import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfsr.models import collapse_model
from tfsr.models.registry import get_model_spec, model_names
from tfsr.models.sesr_dysample import sesr_dysample
from tfsr.training import TrainConfig, train


def _randomise(model, seed=0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.05, w.shape).astype(np.float32))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_and_collapse(scale):
    model = sesr_dysample(scale=scale, variant="m3", dynamic_scope=True)
    _randomise(model)
    x = np.random.default_rng(1).uniform(0, 1, (2, 7, 9, 1)).astype(np.float32)
    y = model(x).numpy()
    assert y.shape == (2, 7 * scale, 9 * scale, 1)
    assert y.min() >= 0 and y.max() <= 1
    np.testing.assert_allclose(collapse_model(model)(x).numpy(), y, atol=1e-5)


def test_untrained_network_is_near_bilinear():
    x = np.random.default_rng(2).uniform(0.2, 0.8, (1, 12, 12, 1)).astype(np.float32)
    bilinear = tf.image.resize(x, (24, 24), "bilinear").numpy()
    nearest = tf.image.resize(x, (24, 24), "nearest").numpy()
    # The last block is small at initialisation but not zero: near, not equal. How near depends
    # on the draw (0.011 to 0.10 mean absolute difference over 12 seeds, against 0.069 between
    # nearest and bilinear here), so several seeded draws are checked: unseeded, the result hung
    # on the random draws of the tests that ran before (it failed in CI at 0.057 < 0.05).
    errors = []
    for seed in range(6):
        keras.utils.set_random_seed(seed)
        model = sesr_dysample(scale=2, variant="m3")
        errors.append(np.abs(model(x).numpy() - bilinear).mean())
    assert np.median(errors) < np.abs(nearest - bilinear).mean() and max(errors) < 0.15, errors


def test_bad_configuration():
    with pytest.raises(ValueError, match="scale must be one of"):
        sesr_dysample(scale=5)
    with pytest.raises(ValueError, match="unknown SESR variant 'm9'"):
        sesr_dysample(variant="m9")
    assert sesr_dysample(scale=2, variant="M3").name == "sesr_dysample_m3_x2"  # as sesr_model


def test_registered_and_trainable(tmp_path):
    assert "sesr_dysample" in model_names()
    assert get_model_spec("sesr_dysample").build(scale=2).output_shape == (None, None, None, 1)
    config = TrainConfig(
        model="sesr_dysample",
        steps=3,
        batch_size=2,
        patch_size=8,
        val_every=0,
        out_dir=str(tmp_path / "run"),
    )
    result = train(config, progress=False)
    assert result.completed and np.isfinite(result.metrics["psnr"])


def test_tflite_float_uses_builtin_ops_only():
    model = collapse_model(sesr_dysample(scale=2, variant="m3"))
    _randomise(model, seed=3)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [tf.function(model).get_concrete_function(tf.TensorSpec((1, 16, 16, 1), tf.float32))],
        model,
    )
    flat = converter.convert()
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flat)
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any("FLEX" in op.upper() or "CUSTOM" in op.upper() for op in ops), ops
    x = np.random.default_rng(4).uniform(0, 1, (1, 16, 16, 1)).astype(np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model(x).numpy(), atol=1e-5)
