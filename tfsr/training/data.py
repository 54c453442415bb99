"""Data for a training run: patches from ``train_data``, validation on ``val_data``.

With no ``val_data``, the last images of the training source are held out for validation
(one of the six embedded photos; 5% of a folder, at most 10) and not trained on.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from tfsr.data.pipeline import sr_patches
from tfsr.data.sources import ImageSource, source_from_spec
from tfsr.training.config import TrainConfig

PATCHES_PER_IMAGE = 16


def _held_out_count(source: ImageSource) -> int:
    return min(10, max(1, math.ceil(0.05 * len(source))))


def split_sources(config: TrainConfig) -> tuple[ImageSource, list[str] | str]:
    """The training source and the validation data (a folder, or held-out HR paths)."""
    source = source_from_spec(config.train_data)
    if config.val_data:
        return source, config.val_data
    n = _held_out_count(source)
    if len(source) <= n:
        raise ValueError(
            f"--train_data={config.train_data} has {len(source)} image(s): too few to hold "
            "some out for validation; give --val_data"
        )
    train = dataclasses.replace(source, paths=source.paths[:-n])
    return train, list(source.paths[-n:])


def training_dataset(config: TrainConfig, start_step: int = 0) -> tf.data.Dataset:
    """Batches ``start_step``, ``start_step + 1``, ... of the run's fixed sequence of batches."""
    train, _ = split_sources(config)
    return sr_patches(
        train,
        config.scale,
        lr_patch_size=config.patch_size,
        batch_size=config.batch_size,
        channels="y",
        seed=config.seed,
        patches_per_image=PATCHES_PER_IMAGE,
        start_step=start_step,
    )


def steps_for_epochs(config: TrainConfig, epochs: int) -> int:
    """Steps in ``epochs`` passes (each image visited ``PATCHES_PER_IMAGE`` times a pass)."""
    train, _ = split_sources(config)
    return max(1, math.ceil(epochs * len(train) * PATCHES_PER_IMAGE / config.batch_size))


def _evaluate(upscaler, config: TrainConfig) -> dict:
    from tfsr.evaluation import evaluate

    _, val = split_sources(config)
    return evaluate(upscaler, val, config.scale)


def validation_metrics(model, config: TrainConfig) -> dict:
    """Mean Y PSNR/SSIM of an in-memory model on the run's validation data."""
    from tfsr.inference import KerasUpscaler

    return _evaluate(KerasUpscaler(model, config.scale, name=config.model), config)


def final_evaluation(model, config: TrainConfig) -> dict:
    """Validation PSNR/SSIM of the model next to bicubic's, for the end-of-run summary."""
    from tfsr.inference import BicubicUpscaler

    ours = validation_metrics(model, config)
    bicubic = _evaluate(BicubicUpscaler(config.scale), config)
    return {
        "dataset": ours["dataset"],
        "images": ours["images"],
        "psnr": ours["psnr"],
        "ssim": ours["ssim"],
        "bicubic_psnr": bicubic["psnr"],
        "bicubic_ssim": bicubic["ssim"],
    }
