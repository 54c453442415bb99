"""Training an arbitrary-scale model (meta_sesr): one random scale per batch, one trace."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfsr import evaluation
from tfsr.inference import BicubicUpscaler, load_upscaler
from tfsr.training import TrainConfig, Trainer, train
from tfsr.training.data import split_sources, train_scales, training_dataset, validation_scales

TINY = dict(
    model="meta_sesr",
    batch_size=2,
    patch_size=10,
    lr=1e-3,
    lr_schedule="constant",
    warmup_steps=0,
    val_every=0,
)


def _config(tmp_path, **kw):
    return TrainConfig(**{**TINY, "out_dir": str(tmp_path / "run"), **kw})


def test_dataset_has_one_scale_per_batch(tmp_path):
    config = _config(tmp_path)
    assert len(train_scales(config)) == 36 and (2.0, 4.0) in train_scales(config)
    assert validation_scales(config) == (2, 3, 4)
    for (lr, scale), hr in training_dataset(config).take(3):
        sv, sh = scale.numpy()[0]
        np.testing.assert_array_equal(scale.numpy(), [[sv, sh]] * 2)
        assert lr.shape == (2, 10, 10, 1)
        assert hr.shape == (2, round(10 * sv), round(10 * sh), 1)


def test_tiny_run_trains_validates_and_saves(tmp_path):
    config = _config(tmp_path, steps=4, checkpoint_every=4)
    result = train(config, progress=False)
    assert result.completed and result.step == 4
    metrics = result.metrics
    assert set(metrics["per_scale"]) == {"x2", "x3", "x4"}
    # Each scale's figures are those of the standard evaluation of the saved model and of
    # bicubic on the held-out images.
    _, held_out = split_sources(config)
    saved = os.path.join(config.out_dir, "model.keras")
    for scale in (2, 3, 4):
        values = metrics["per_scale"][f"x{scale}"]
        model = evaluation.evaluate(load_upscaler(saved, scale), held_out, scale)
        bicubic = evaluation.evaluate(BicubicUpscaler(scale), held_out, scale)
        assert values["psnr"] == pytest.approx(model["psnr"], abs=1e-6)
        assert values["bicubic_psnr"] == pytest.approx(bicubic["psnr"], abs=1e-9)
    np.testing.assert_allclose(
        metrics["psnr"], np.mean([v["psnr"] for v in metrics["per_scale"].values()]), rtol=1e-9
    )
    with open(os.path.join(config.out_dir, "results.json")) as f:
        assert json.load(f)["step"] == 4
    trainer = Trainer(config)
    assert trainer.resumed_from == 4
    # The model ignores --scale: a resume naming another one is no mismatch.
    assert Trainer(_config(tmp_path, steps=4, scale=3)).resumed_from == 4


def test_train_step_is_traced_once(tmp_path):
    trainer = Trainer(_config(tmp_path, steps=3))
    distributed = trainer.strategy.experimental_distribute_dataset(trainer.dataset())
    step = trainer.make_train_step(distributed.element_spec)
    sizes = set()
    batches = iter(distributed)
    for _ in range(3):
        batch = next(batches)
        loss, stop_any = step(batch, tf.constant(0.0))
        assert not bool(stop_any)
        loss = float(loss)
        assert np.isfinite(loss)
        sizes.add(tuple(batch[1].shape[1:3]))
    assert len(sizes) > 1  # several HR sizes ...
    assert step.experimental_get_tracing_count() == 1  # ... one trace
    assert int(trainer.step.numpy()) == 3


def test_patch_size_must_fit_the_scales(tmp_path):
    with pytest.raises(ValueError, match="patch"):
        next(iter(training_dataset(_config(tmp_path, patch_size=8))))
