"""The model of a training run folder, rebuilt from its configuration and latest checkpoint.

    python -m tfsr.training.snapshot runs/sesr_m5_x2 tfsr/models/weights/sesr_m5_x2.npz

writes the collapsed SESR weights of the run's latest checkpoint (a run still training is fine:
checkpoints are written atomically) in the shipped format (:func:`tfsr.models.sesr.save_collapsed`).
"""

from __future__ import annotations

import os

import tensorflow as tf
import tf_keras as keras

from tfsr.models.registry import get_model_spec
from tfsr.training.config import TrainConfig, load_saved_config


def load_run_model(run_dir: str) -> tuple[TrainConfig, keras.Model, int]:
    """Builds the run's training model and restores its latest checkpoint.

    Returns:
        ``(config, model, step)``.

    Raises:
        FileNotFoundError: no such folder, or no ``train_config.json`` / checkpoint in it.
    """
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run folder {run_dir!r} does not exist")
    config = load_saved_config(run_dir)
    if config is None:
        raise FileNotFoundError(f"{run_dir}: no train_config.json (not a training run folder)")
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint in {ckpt_dir}")
    model = get_model_spec(config.model).build(scale=config.scale, activation=config.activation)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return config, model, int(latest.rsplit("-", 1)[1])


def main(argv: list[str]) -> None:
    import sys

    from tfsr.models.sesr import save_collapsed

    if len(argv) != 3:
        sys.exit("usage: python -m tfsr.training.snapshot RUN_DIR OUT.npz")
    try:
        config, model, step = load_run_model(argv[1])
    except FileNotFoundError as error:
        sys.exit(f"tfsr.training.snapshot: {error}")
    if not config.model.startswith("sesr_"):
        sys.exit(f"tfsr.training.snapshot: {config.model} runs have no shipped format yet")
    save_collapsed(
        model, argv[2], variant=config.model[len("sesr_") :], activation=config.activation
    )
    print(f"{argv[2]}: {config.model} x{config.scale}, step {step}")


if __name__ == "__main__":
    import sys

    main(sys.argv)
