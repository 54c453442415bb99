import numpy as np
import pytest

from tfsr.models.sesr import collapse_model, load_collapsed
from tfsr.training import TrainConfig, train
from tfsr.training.snapshot import load_run_model, main


def test_snapshot_of_a_run_equals_its_inference_model(tmp_path):
    run = str(tmp_path / "run")
    config = TrainConfig(
        model="sesr_m3",
        expanded_filters=16,
        steps=3,
        batch_size=2,
        patch_size=8,
        val_every=0,
        out_dir=run,
    )
    result = train(config, progress=False)
    loaded_config, model, step = load_run_model(run)
    assert step == 3 and loaded_config == config
    assert model.get_layer("block_1").expanded_filters == 16
    main(["snapshot", run, str(tmp_path / "m3.npz")])
    shipped = load_collapsed(str(tmp_path / "m3.npz"))
    x = np.random.default_rng(0).uniform(0, 1, (1, 9, 11, 1)).astype(np.float32)
    np.testing.assert_allclose(shipped(x), collapse_model(model)(x), atol=1e-6)
    assert result.inference_model_path.endswith("model.keras")


def test_snapshot_of_a_checkpoint_of_another_model_is_an_error(tmp_path):
    import json

    from tfsr.training import ConfigMismatchError

    run = str(tmp_path / "run")
    train(
        TrainConfig(model="sesr_m3", steps=1, batch_size=2, patch_size=8, val_every=0, out_dir=run),
        progress=False,
    )
    path = tmp_path / "run" / "train_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "model": "sesr_m5"}))
    with pytest.raises(ConfigMismatchError, match="does not hold the weights of 'sesr_m5'"):
        load_run_model(run)


def test_snapshot_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run_model(str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="no train_config.json"):
        load_run_model(str(tmp_path))
    with pytest.raises(SystemExit, match="usage"):
        main(["snapshot"])


def test_snapshot_of_a_sesr_dysample_run_is_a_keras_inference_model(tmp_path):
    import tf_keras as keras

    import tfsr.layers  # noqa: F401 - registers DySample for loading
    from tfsr.training.snapshot import write_snapshot

    run = str(tmp_path / "run")
    config = TrainConfig(
        model="sesr_dysample", steps=2, batch_size=2, patch_size=8, val_every=0, out_dir=run
    )
    train(config, progress=False)
    with pytest.raises(ValueError, match="shipped as .keras"):
        write_snapshot(run, str(tmp_path / "d.npz"))
    assert "step 2" in write_snapshot(run, str(tmp_path / "d.keras"))
    shipped = keras.models.load_model(str(tmp_path / "d.keras"), compile=False)
    _, model, _ = load_run_model(run)
    assert not any("CollapsibleLinearBlock" in type(layer).__name__ for layer in shipped.layers)
    x = np.random.default_rng(1).uniform(0, 1, (1, 9, 11, 1)).astype(np.float32)
    np.testing.assert_allclose(shipped(x), model(x), atol=1e-5)
