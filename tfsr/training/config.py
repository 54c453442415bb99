"""Training configuration: one dataclass, saved beside the checkpoints, checked on resume."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from tfsr.atomic_file import atomic_output
from tfsr.checks import shrink_factors

# Fields that decide the variables in a checkpoint (model architecture, optimizer wrapping). A
# checkpoint written under other values cannot be resumed: `check_resumable` raises.
ARCHITECTURE_FIELDS = ("model", "scale", "activation", "expanded_filters", "mixed_precision")
# Fields that decide what the run computes from here on; changing them on resume is allowed
# (for example to train longer) but reported.
RUN_FIELDS = (
    "train_data",
    "scale_augment",
    "batch_size",
    "patch_size",
    "lr",
    "lr_schedule",
    "warmup_steps",
    "loss",
    "seed",
    "steps",
    "jit_compile",
)

CONFIG_FILENAME = "train_config.json"


class ConfigMismatchError(ValueError):
    """An ``out_dir`` holds a checkpoint of a different configuration."""


def restore_matching(checkpoint, path: str, mismatch: str):
    """Restores ``checkpoint`` (a ``tf.train.Checkpoint``) from ``path``, asserting that every
    object it tracks was in the file; returns the restore status.

    Raises:
        ConfigMismatchError: ``"{mismatch}: {first line of TensorFlow's error}"`` when the file
            lacks some of the objects or holds other shapes.
    """
    import tensorflow as tf

    try:
        status = checkpoint.restore(path)
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
        raise ConfigMismatchError(f"{mismatch}: {str(error).splitlines()[0]}") from error
    return status


@dataclass
class TrainConfig:
    """Everything a training run depends on. ``python train.py --helpfull`` documents the flags.

    Attributes:
        model: model name from ``tfsr.models.registry.model_names()`` (for example ``"sesr_m5"``).
        scale: upscaling factor.
        train_data: ``"embedded"`` (photos bundled with scikit-image), ``"div2k"`` (tfds, needs
            internet) or an image folder.
        scale_augment: factors in (0, 1): every training image also enters the set shrunk by each
            (MATLAB bicubic), e.g. ``(0.9, 0.8, 0.7, 0.6)``; empty for none.
        val_data: evaluation folder (``HR/`` + ``LR_bicubic/`` or HR images); empty means a few
            held-out images of ``train_data``.
        steps: optimisation steps in total (a resumed run continues up to this number).
        batch_size: patches per step (global, over all replicas).
        patch_size: LR patch side in pixels (the HR patch is ``patch_size * scale``).
        lr: peak learning rate.
        lr_schedule: ``"constant"``, ``"cosine"`` (to 1% of ``lr``) or ``"step"`` (halve at 50%
            and 75% of the steps); all with a linear warm-up over ``warmup_steps``.
        warmup_steps: linear warm-up length.
        loss: ``"l1"`` or ``"l2"``.
        activation: ``"prelu"`` or ``"relu"`` (ReLU for int8 deployment).
        expanded_filters: width p of the SESR blocks' expanded space; 0 for the model's own
            (``tfsr.models.sesr.TRAIN_EXPANDED_FILTERS``). Only SESR-family models take it.
        init_from: a checkpoint folder, saved model, shipped model name or collapsed SESR
            ``.npz`` whose compatible weights start this run
            (for example x4 from x2).
        out_dir: where checkpoints, TensorBoard logs and the final models go.
        strategy: ``"default"``, ``"mirrored"`` or ``"multi_worker"`` (tf.distribute). Multi-worker:
            one process per worker, each with its ``TF_CONFIG``, the same flags and ``out_dir`` on
            a shared filesystem; the chief (worker 0) writes checkpoints, logs, the model and the
            results; SIGINT / SIGTERM to any one worker stops all of them after the same step.
        seed: seeds the weights and the data order.
        mixed_precision: compute in float16 (GPU) or bfloat16 (CPU), variables in float32.
        checkpoint_every: steps between checkpoints (a SIGKILL loses at most this many).
        val_every: steps between validation PSNR measurements (0: only at the end).
        keep_checkpoints: how many checkpoints to keep.
        jit_compile: compile the training step with XLA (same results up to float rounding;
            on 2 CPU cores an rclut_x4 step takes about as long either way, 164 vs 161 ms,
            ``benchmarks.lut_training``).
    """

    model: str = "sesr_m5"
    scale: int = 2
    train_data: str = "embedded"
    scale_augment: tuple = ()
    val_data: str = ""
    steps: int = 2000
    batch_size: int = 16
    patch_size: int = 48
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    warmup_steps: int = 100
    loss: str = "l1"
    activation: str = "prelu"
    expanded_filters: int = 0
    init_from: str = ""
    out_dir: str = "runs/sesr_m5_x2"
    strategy: str = "default"
    seed: int = 0
    mixed_precision: bool = False
    checkpoint_every: int = 250
    val_every: int = 500
    keep_checkpoints: int = 3
    jit_compile: bool = False
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        # A list when read back from JSON.
        self.scale_augment = shrink_factors("scale_augment", self.scale_augment)
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first bad value."""
        checks = [
            (self.scale >= 1, f"scale must be >= 1, got {self.scale}"),
            (self.steps > 0, f"steps must be positive, got {self.steps}"),
            (self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}"),
            (self.patch_size >= 4, f"patch_size must be at least 4, got {self.patch_size}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (
                self.lr_schedule in ("constant", "cosine", "step"),
                f"lr_schedule must be constant, cosine or step, got {self.lr_schedule!r}",
            ),
            (self.loss in ("l1", "l2"), f"loss must be l1 or l2, got {self.loss!r}"),
            (
                self.activation in ("prelu", "relu"),
                f"activation must be prelu or relu, got {self.activation!r}",
            ),
            (
                self.strategy in ("default", "mirrored", "multi_worker"),
                f"strategy must be default, mirrored or multi_worker, got {self.strategy!r}",
            ),
            (
                self.expanded_filters >= 0,
                f"expanded_filters must be >= 0 (0: the model's own), got {self.expanded_filters}",
            ),
            (self.checkpoint_every > 0, "checkpoint_every must be positive"),
            (self.val_every >= 0, "val_every must be >= 0"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.keep_checkpoints > 0, "keep_checkpoints must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def save(self, out_dir: str) -> None:
        """Writes ``train_config.json`` into ``out_dir`` atomically."""
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, CONFIG_FILENAME)
        with atomic_output(path) as tmp, open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)


def load_saved_config(out_dir: str) -> TrainConfig | None:
    """The configuration saved in ``out_dir``, or None for a new run."""
    path = os.path.join(out_dir, CONFIG_FILENAME)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return TrainConfig.from_dict(json.load(f))


def _built(config: TrainConfig, name: str):
    """The value of architecture field ``name`` as the model is built: ``expanded_filters`` 0 (the
    model's own width) is ``TRAIN_EXPANDED_FILTERS``, so a run saved with 0 resumes with the
    explicit width and back."""
    value = getattr(config, name)
    if name == "expanded_filters":
        from tfsr.models.sesr import training_width

        return training_width(value)
    return value


def check_resumable(
    saved: TrainConfig, requested: TrainConfig, ignored: tuple[str, ...] = ()
) -> list[str]:
    """Compares a saved configuration with the requested one before resuming.

    Args:
        saved, requested: the configurations.
        ignored: architecture fields the model does not depend on (``scale`` for an
            arbitrary-scale model); they may differ.

    Returns:
        Human-readable notes on changed run fields (allowed).

    Raises:
        ConfigMismatchError: an architecture field differs; the message names every such field.
    """
    bad = [
        f"{name}: checkpoint has {getattr(saved, name)!r}, requested {getattr(requested, name)!r}"
        for name in ARCHITECTURE_FIELDS
        if name not in ignored and _built(saved, name) != _built(requested, name)
    ]
    if bad:
        raise ConfigMismatchError(
            f"{requested.out_dir} holds a checkpoint of a different configuration ("
            + "; ".join(bad)
            + "). Use another --out_dir, or the same values to resume."
        )
    return [
        f"{name} changed from {getattr(saved, name)!r} to {getattr(requested, name)!r}"
        for name in RUN_FIELDS
        if getattr(saved, name) != getattr(requested, name)
    ]


def take_saved_values(config: TrainConfig, saved: TrainConfig, given: set[str]) -> list[str]:
    """For a resume: the saved value of every run and architecture field (but ``model``), and of
    the validation and checkpoint settings, whose flag was not given, set on ``config``; so that
    ``train.py --model=M --out_dir=RUN`` resumes RUN as it was started instead of with the
    default data, steps and schedule.

    Args:
        config: the requested configuration (changed in place).
        saved: the run's saved configuration.
        given: names of the fields whose flags were given (``--epochs`` gives ``steps``).

    Returns:
        ``"name=value"`` of each field taken, for a note.
    """
    taken = []
    for name in (*ARCHITECTURE_FIELDS, *RUN_FIELDS, "val_data", "val_every", "checkpoint_every"):
        if name == "model" or name in given:
            continue
        value = getattr(saved, name)
        if value != getattr(config, name):
            setattr(config, name, value)
            taken.append(f"{name}={value!r}")
    return taken
