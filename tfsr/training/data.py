"""Data for a training run: patches from ``train_data``, validation on ``val_data``.

With no ``val_data``, the last images of the training source are held out for validation
(one of the six embedded photos; 5% of a folder, at most 10) and not trained on.
"""

from __future__ import annotations

import dataclasses
import math
import os

import tensorflow as tf

from tfsr.data.pipeline import count_training_images, multiscale_sr_patches, sr_patches
from tfsr.data.sources import ImageSource, source_from_spec
from tfsr.training.config import TrainConfig

PATCHES_PER_IMAGE = 16


def _held_out_count(source: ImageSource) -> int:
    return min(10, max(1, math.ceil(0.05 * len(source))))


def split_sources(config: TrainConfig) -> tuple[ImageSource, list[str] | str]:
    """The training source and the validation data (a folder, or held-out HR paths)."""
    source = source_from_spec(config.train_data)
    if config.val_data:
        if not os.path.exists(config.val_data):  # found at the start, not at step 500
            raise FileNotFoundError(f"--val_data={config.val_data} does not exist")
        return source, config.val_data
    n = _held_out_count(source)
    if len(source) <= n:
        raise ValueError(
            f"--train_data={config.train_data} has {len(source)} image(s): too few to hold "
            "some out for validation; give --val_data"
        )
    train = dataclasses.replace(source, paths=source.paths[:-n])
    return train, list(source.paths[-n:])


def train_scales(config: TrainConfig) -> tuple | None:
    """The scales an arbitrary-scale model trains on (one per batch), or None for a fixed-scale
    model (trained at ``config.scale``)."""
    from tfsr.models.registry import get_model_spec

    return get_model_spec(config.model).train_scales


def validation_scales(config: TrainConfig) -> tuple:
    """The scales validation measures: the model's ``validation_scales`` for an arbitrary-scale
    model, else ``(config.scale,)``."""
    from tfsr.models.registry import get_model_spec

    return get_model_spec(config.model).validation_scales or (config.scale,)


def training_dataset(config: TrainConfig, start_step: int = 0) -> tf.data.Dataset:
    """Batches ``start_step``, ``start_step + 1``, ... of the run's fixed sequence of batches.

    Fixed-scale models get ``(lr, hr)`` batches at ``config.scale``; arbitrary-scale models
    (a spec with ``train_scales``) get ``((lr, scale), hr)`` batches, one random scale per batch.
    """
    train, _ = split_sources(config)
    scales = train_scales(config)
    if scales is not None:
        return multiscale_sr_patches(
            train,
            list(scales),
            lr_patch_size=config.patch_size,
            batch_size=config.batch_size,
            channels="y",
            seed=config.seed,
            patches_per_image=PATCHES_PER_IMAGE,
            start_step=start_step,
            scale_augment=config.scale_augment,
        )
    return sr_patches(
        train,
        config.scale,
        lr_patch_size=config.patch_size,
        batch_size=config.batch_size,
        channels="y",
        seed=config.seed,
        patches_per_image=PATCHES_PER_IMAGE,
        start_step=start_step,
        scale_augment=config.scale_augment,
    )


def steps_for_epochs(config: TrainConfig, epochs: int) -> int:
    """Steps in ``epochs`` passes (each image, and each of its ``scale_augment`` copies, visited
    ``PATCHES_PER_IMAGE`` times a pass), counting only the images and copies the pipeline keeps
    (those at least one HR patch in size; reads the image headers). Images that turn out
    unreadable when decoded are still counted."""
    train, _ = split_sources(config)
    images = count_training_images(
        train,
        train_scales(config) or (config.scale,),
        lr_patch_size=config.patch_size,
        scale_augment=config.scale_augment,
    )
    return max(1, math.ceil(epochs * images * PATCHES_PER_IMAGE / config.batch_size))


def _evaluate(make_upscaler, config: TrainConfig) -> dict:
    """Metrics of ``make_upscaler(scale)`` at every validation scale.

    One scale: that scale's ``evaluate`` result. Several (arbitrary-scale models): ``psnr`` and
    ``ssim`` are the means over the scales, and ``per_scale`` maps ``"x{s}"`` to each scale's
    ``{psnr, ssim}``.
    """
    from tfsr.data.imresize import scale_name
    from tfsr.evaluation import evaluate

    _, val = split_sources(config)
    scales = validation_scales(config)
    results = {s: evaluate(make_upscaler(s), val, s) for s in scales}
    if len(scales) == 1:
        return results[scales[0]]
    first = results[scales[0]]
    return {
        "dataset": first["dataset"],
        "images": first["images"],
        "psnr": float(sum(r["psnr"] for r in results.values()) / len(scales)),
        "ssim": float(sum(r["ssim"] for r in results.values()) / len(scales)),
        "per_scale": {
            f"x{scale_name(s)}": {"psnr": r["psnr"], "ssim": r["ssim"]} for s, r in results.items()
        },
    }


def validation_metrics(model, config: TrainConfig) -> dict:
    """Mean Y PSNR/SSIM of an in-memory model on the run's validation data."""
    from tfsr.inference import KerasUpscaler

    return _evaluate(lambda s: KerasUpscaler(model, s, name=config.model), config)


def final_evaluation(model, config: TrainConfig) -> dict:
    """Validation PSNR/SSIM of the model next to bicubic's, for the end-of-run summary."""
    from tfsr.inference import BicubicUpscaler

    ours = validation_metrics(model, config)
    bicubic = _evaluate(BicubicUpscaler, config)
    result = {
        "dataset": ours["dataset"],
        "images": ours["images"],
        "psnr": ours["psnr"],
        "ssim": ours["ssim"],
        "bicubic_psnr": bicubic["psnr"],
        "bicubic_ssim": bicubic["ssim"],
    }
    if "per_scale" in ours:
        result["per_scale"] = {
            key: {
                **value,
                "bicubic_psnr": bicubic["per_scale"][key]["psnr"],
                "bicubic_ssim": bicubic["per_scale"][key]["ssim"],
            }
            for key, value in ours["per_scale"].items()
        }
    return result
