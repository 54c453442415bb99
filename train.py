"""Train a tfsr model.

    python train.py                      # SESR-M5 x2 on the embedded photos, a few minutes on CPU
    python train.py --model=sesr_xl --scale=2 --train_data=../shared/data/train \
        --val_data=../shared/data/val/Set5 --steps=300000 --out_dir=runs/sesr_xl_x2
    python train.py --model=meta_sesr --train_data=../shared/data/train \
        --val_data=../shared/data/val/Set5      # one random scale per batch, 1.1 to 4.0

Arbitrary-scale models (meta_sesr) ignore --scale: they train on their own scales (one per batch,
LR patches of 50 pixels unless --patch_size is given) and validate at x2, x3 and x4.

Rerunning with the same --out_dir resumes (model, optimizer, step and data order); flags not
given keep the run's own values (data, steps, schedule, ...), and --init_from is not used. SIGINT
or SIGTERM writes a checkpoint and stops (exit code 1); a second Ctrl-C, or one while a finished
run writes its model and final evaluation, stops at once (exit code 130; rerunning goes on from
the last checkpoint).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from absl import app, flags, logging  # noqa: E402

from tfsr.training.config import TrainConfig  # noqa: E402

_DEFAULTS = TrainConfig()

_MODEL = flags.DEFINE_string(
    "model",
    _DEFAULTS.model,
    "Model name (sesr_m5, sesr_xl, meta_sesr, rclut_x4, ...; a wrong one lists them).",
)
_SCALE = flags.DEFINE_integer(
    "scale", _DEFAULTS.scale, "Upscaling factor (ignored by arbitrary-scale models: meta_sesr)."
)
_TRAIN_DATA = flags.DEFINE_string(
    "train_data", _DEFAULTS.train_data, "'embedded', 'div2k' or an image folder."
)
_SCALE_AUGMENT = flags.DEFINE_list(
    "scale_augment",
    [],
    "Factors in (0, 1), e.g. 0.9,0.8,0.7,0.6: every training image also enters the set shrunk "
    "by each (MATLAB bicubic), the classic augmentation of the small 291 set.",
)
_VAL_DATA = flags.DEFINE_string(
    "val_data",
    _DEFAULTS.val_data,
    "Validation folder (HR/ + LR_bicubic/, or HR images). Empty: held-out training images.",
)
_STEPS = flags.DEFINE_integer("steps", _DEFAULTS.steps, "Total optimisation steps.")
_EPOCHS = flags.DEFINE_integer(
    "epochs",
    0,
    "If set, train this many epochs instead of --steps (see tfsr.training).",
    lower_bound=0,
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size, "Global batch size.")
_PATCH_SIZE = flags.DEFINE_integer(
    "patch_size",
    _DEFAULTS.patch_size,
    "LR patch side (pixels); arbitrary-scale models default to their own (meta_sesr: 50).",
)
_LR = flags.DEFINE_float("lr", _DEFAULTS.lr, "Peak learning rate (Adam, amsgrad).")
_LR_SCHEDULE = flags.DEFINE_enum(
    "lr_schedule", _DEFAULTS.lr_schedule, ["constant", "cosine", "step"], "Learning-rate schedule."
)
_WARMUP = flags.DEFINE_integer("warmup_steps", _DEFAULTS.warmup_steps, "Linear warm-up steps.")
_LOSS = flags.DEFINE_enum("loss", _DEFAULTS.loss, ["l1", "l2"], "Pixel loss.")
_ACTIVATION = flags.DEFINE_enum(
    "activation", _DEFAULTS.activation, ["prelu", "relu"], "Activation (relu for int8)."
)
_EXPANDED_FILTERS = flags.DEFINE_integer(
    "expanded_filters",
    0,
    "SESR models: width of the blocks' expanded space (0: 256; the paper's M11 and XL use 64).",
)
_INIT_FROM = flags.DEFINE_string(
    "init_from",
    "",
    "Run folder, saved model, shipped model name (sesr_m5_x2) or collapsed SESR .npz to start "
    "from (e.g. x4 from an x2 run, or fine-tuning a shipped model on your data).",
)
_OUT_DIR = flags.DEFINE_string(
    "out_dir",
    None,
    "Output folder (default runs/MODEL_xSCALE; runs/MODEL for arbitrary-scale models). Reuse "
    "it to resume.",
)
_STRATEGY = flags.DEFINE_enum(
    "strategy",
    "default",
    ["default", "mirrored", "multi_worker"],
    "tf.distribute strategy. multi_worker: one process per worker (TF_CONFIG), same flags and a "
    "shared --out_dir; worker 0 writes it.",
)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed for weights and data order.")
_MIXED_PRECISION = flags.DEFINE_bool(
    "mixed_precision", False, "float16 (GPU) / bfloat16 (CPU) compute, float32 variables."
)
_JIT_COMPILE = flags.DEFINE_bool(
    "jit_compile", False, "Compile the training step with XLA (faster for the LUT nets on CPU)."
)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", _DEFAULTS.checkpoint_every, "Steps between checkpoints."
)
_VAL_EVERY = flags.DEFINE_integer(
    "val_every", _DEFAULTS.val_every, "Steps between validation runs (0: only at the end)."
)


def _scale_augment() -> tuple[float, ...]:
    try:
        return tuple(float(f) for f in _SCALE_AUGMENT.value)
    except ValueError:
        raise ValueError(
            f"--scale_augment takes numbers in (0, 1), got {','.join(_SCALE_AUGMENT.value)}"
        ) from None


def config_from_flags() -> TrainConfig:
    import tensorflow as tf

    from tfsr.models.registry import get_model_spec
    from tfsr.training.config import load_saved_config, take_saved_values
    from tfsr.training.data import steps_for_epochs

    spec = get_model_spec(_MODEL.value)
    if flags.FLAGS["activation"].present and not spec.takes_activation:
        raise ValueError(f"model {_MODEL.value!r} has fixed activations; drop --activation")
    multi_scale = spec.multi_scale
    patch_size = _PATCH_SIZE.value
    if multi_scale and not flags.FLAGS["patch_size"].present:
        patch_size = spec.patch_size
    run_name = _MODEL.value if multi_scale else f"{_MODEL.value}_x{_SCALE.value}"
    out_dir = _OUT_DIR.value or os.path.join("runs", run_name)
    config = TrainConfig(
        model=_MODEL.value,
        scale=_SCALE.value,
        train_data=_TRAIN_DATA.value,
        scale_augment=_scale_augment(),
        val_data=_VAL_DATA.value,
        steps=_STEPS.value,
        batch_size=_BATCH_SIZE.value,
        patch_size=patch_size,
        lr=_LR.value,
        lr_schedule=_LR_SCHEDULE.value,
        warmup_steps=_WARMUP.value,
        loss=_LOSS.value,
        activation=_ACTIVATION.value,
        expanded_filters=_EXPANDED_FILTERS.value,
        init_from=_INIT_FROM.value,
        out_dir=out_dir,
        strategy=_STRATEGY.value,
        seed=_SEED.value,
        mixed_precision=_MIXED_PRECISION.value,
        jit_compile=_JIT_COMPILE.value,
        checkpoint_every=_CHECKPOINT_EVERY.value,
        val_every=_VAL_EVERY.value,
    )
    if _EPOCHS.value and flags.FLAGS["steps"].present:
        raise ValueError("give --steps or --epochs, not both")
    saved = load_saved_config(out_dir)
    if saved is not None and tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints")):
        given = {name for name in flags.FLAGS if flags.FLAGS[name].present}
        if _EPOCHS.value:
            given.add("steps")
        taken = take_saved_values(config, saved, given)
        if taken:
            print(f"resuming {out_dir} with its own {', '.join(taken)} (flags not given)")
    if _EPOCHS.value:  # of the data and batch size the run uses
        config.steps = steps_for_epochs(config, _EPOCHS.value)
    return config


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    from tfsr.training import run_from_config, user_errors

    try:
        config = config_from_flags()
    except user_errors() as e:  # --epochs reads the training data here
        sys.exit(f"train.py: {e}")
    sys.exit(run_from_config(config))


if __name__ == "__main__":
    app.run(main)
