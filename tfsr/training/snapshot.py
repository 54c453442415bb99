"""The model of a training run folder, rebuilt from its configuration and latest checkpoint.

    python -m tfsr.training.snapshot runs/sesr_m5_x2 tfsr/models/weights/sesr_m5_x2.npz
    python -m tfsr.training.snapshot runs/sesr_dysample_x2 tfsr/models/weights/sesr_dysample_x2.keras

writes the inference form of the run's latest checkpoint (a run still training is fine:
checkpoints are written atomically): a plain SESR (``sesr_m5``, ``sesr_xl``, ...) as collapsed
weights in the ``.npz`` format of :func:`tfsr.models.sesr.save_collapsed`; any other family
(``sesr_dysample``, ``meta_sesr``) as a ``.keras`` file of its inference model (the family's
``to_inference``, which collapses the blocks).
"""

from __future__ import annotations

import os

import tensorflow as tf
import tf_keras as keras

from tfsr.atomic_file import atomic_output
from tfsr.models.registry import get_model_spec
from tfsr.training.config import TrainConfig, load_saved_config, restore_matching


def load_run_model(run_dir: str) -> tuple[TrainConfig, keras.Model, int]:
    """Builds the run's training model and restores its latest checkpoint.

    Returns:
        ``(config, model, step)``.

    Raises:
        FileNotFoundError: no such folder, or no ``train_config.json`` / checkpoint in it.
        ConfigMismatchError: the checkpoint does not hold that model's weights.
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
    model = get_model_spec(config.model).build_run_model(
        config.scale, config.activation, expanded_filters=config.expanded_filters
    )
    status = restore_matching(
        tf.train.Checkpoint(model=model),
        latest,
        f"{latest} does not hold the weights of {config.model!r} as its train_config.json "
        "describes it",
    )
    status.expect_partial()  # the optimizer's slots are not needed
    return config, model, int(latest.rsplit("-", 1)[1])


def write_snapshot(run_dir: str, out: str) -> str:
    """Writes the inference form of ``run_dir``'s latest checkpoint to ``out``; returns a summary.

    Raises:
        FileNotFoundError: see :func:`load_run_model`.
        ValueError: an output suffix that does not fit the run's family.
    """
    from tfsr.models.sesr import SESR_CONFIGS, save_collapsed

    config, model, step = load_run_model(run_dir)
    variant = config.model[len("sesr_") :] if config.model.startswith("sesr_") else ""
    if variant in SESR_CONFIGS:
        if not out.endswith(".npz"):
            raise ValueError(f"{config.model} runs are shipped as .npz, got {out!r}")
        save_collapsed(model, out, variant=variant, activation=config.activation)
    else:
        if not out.endswith(".keras"):
            raise ValueError(f"{config.model} runs are shipped as .keras, got {out!r}")
        inference = get_model_spec(config.model).inference_model(model)
        with atomic_output(out) as tmp:
            inference.save(tmp)
    return f"{out}: {config.model} x{config.scale}, step {step}"


def main(argv: list[str]) -> None:
    import sys

    if len(argv) != 3:
        sys.exit("usage: python -m tfsr.training.snapshot RUN_DIR OUT.npz|OUT.keras")
    try:
        print(write_snapshot(argv[1], argv[2]))
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"tfsr.training.snapshot: {error}")


if __name__ == "__main__":
    import sys

    main(sys.argv)
