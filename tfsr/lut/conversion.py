"""Transfer a trained LUT-convertible net to look-up tables, and fine-tune the tables.

The command line is :mod:`tfsr.lut.transfer`:

    python train.py --model=rclut_x4 --scale=4 --train_data=../shared/data/train \
        --val_data=../shared/data/val/Set5 --out_dir=runs/rclut_x4
    python -m tfsr.lut.transfer --run=runs/rclut_x4 --out=rclut_x4.npz --finetune_steps=2000
    python -m tfsr.evaluate --model=rclut_x4.npz --data=../shared/data/val/Set5 --scale=4

The transfer samples every :class:`tfsr.lut.LutUnit` on the 17**4 grid (interval 16) into an int8
table of ``scale**2`` columns, and every :class:`tfsr.lut.RcModule` at the 256 levels into its
1-D tables (exact: an RC mapping sees one 8-bit input). Fine-tuning (MuLUT) trains the table
entries of the resulting :class:`tfsr.lut.LutModel` on the run's training data, through the same
interpolation, then rounds them back to int8.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.atomic_file import check_output_path
from tfsr.checks import int_at_least
from tfsr.lut.lut_file import LutTables, save_lut_file
from tfsr.lut.lut_model import LutModel
from tfsr.lut.networks import LutNet, find_lut_net
from tfsr.ops.lut_interp import lut_side
from tfsr.progress import step_bar
from tfsr.run_files import run_model_path


def transfer(net: LutNet, interval: int = 16) -> LutTables:
    """Samples a trained :class:`LutNet` into the tables of a :class:`LutModel`.

    ``interval`` is a power of two from 4 (65**4 points per table, 17 million) to 128; 16 (17**4)
    is the papers' choice. Intervals 1 and 2 (257**4 and 129**4 points, gigabytes per table) are
    refused (:func:`tfsr.ops.lut_interp.lut_side`).
    """
    if not isinstance(net, LutNet):
        raise ValueError(f"transfer needs a tfsr.lut.LutNet, got {type(net).__name__}")
    lut_side(interval)
    if not net.built:
        net(tf.zeros((1, 4, 4, 1)))
    tables = LutTables(stages=net.stages, interval=interval)
    for s, stage in enumerate(net.stages):
        for p_number, p in enumerate(stage["patterns"]):
            i = net.slot(s, p_number)
            tables.luts[f"lut_{s}_{p}"] = net.units[i].table(interval).numpy()
            if net.rc_modules[i] is not None:
                tables.rcs[f"rc_{s}_{p}"] = net.rc_modules[i].mapping_table().numpy()
    tables.check()
    return tables


def finetune(
    model: LutModel,
    dataset: tf.data.Dataset,
    steps: int,
    lr: float = 0.05,
    rc_lr: float = 5e-4,
    decay: bool = True,
    progress: bool = False,
) -> list[float]:
    """Trains the tables of ``model`` for ``steps`` batches of ``(lr, hr)`` with L1 loss (Adam).

    Args:
        model: the LUT model; its float32 tables are updated in place.
        dataset: yields ``(lr, hr)`` batches, (N, h, w, 1) and (N, rh, rw, 1) in [0, 1].
        steps: number of batches.
        lr: Adam learning rate of the 4-D tables, whose entries are in 8-bit levels (Adam moves
            an entry by about ``lr`` levels a step).
        rc_lr: Adam learning rate of the RC 1-D tables (pre-tanh values of order 1).
        decay: cosine-decay both learning rates to 0 over ``steps`` (else constant).
        progress: show a progress bar with the running loss on stderr.

    Returns:
        The loss of every step. The tables stay float32; :meth:`LutModel.to_tables` rounds.
    """
    steps = int_at_least("steps", steps, 0)

    def rate(peak):
        return keras.optimizers.schedules.CosineDecay(peak, max(steps, 1)) if decay else peak

    groups = [
        (keras.optimizers.Adam(rate(lr)), list(model.luts)),
        (keras.optimizers.Adam(rate(rc_lr)), [v for v in model.rcs if v is not None]),
    ]
    groups = [(opt, variables) for opt, variables in groups if variables]
    for opt, variables in groups:
        opt.build(variables)  # slots made now: the step's first call then traces only once

    # No autograph: the model has no tensor-dependent Python control flow, and converting its
    # functions was a third of the (seconds-long) trace.
    @tf.function(autograph=False)
    def step(lr_batch, hr_batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(hr_batch - model(lr_batch, training=True)))
        grads = tape.gradient(loss, [v for _, variables in groups for v in variables])
        start = 0
        for opt, variables in groups:
            part = grads[start : start + len(variables)]
            opt.apply_gradients(zip(part, variables, strict=True))
            start += len(variables)
        return loss

    losses = []
    bar = step_bar(steps, "LUT fine-tuning", enabled=progress)
    with bar:
        for lr_batch, hr_batch in dataset.take(steps):
            losses.append(float(step(lr_batch, hr_batch)))
            bar.update(1)
            if len(losses) % 50 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.5f}")
    return losses


def load_run_net(run_dir: str, log=print) -> LutNet:
    """The trained net of a ``train.py`` run folder: its ``model.keras`` when the run finished,
    else the net restored from its latest checkpoint (to look at a run still training)."""
    from tfsr.inference import load_keras_model

    path = run_model_path(run_dir)
    if path is not None:
        model = load_keras_model(path)
    elif os.path.isdir(os.path.join(run_dir, "checkpoints")):
        from tfsr.training.snapshot import load_run_model

        _, model, step = load_run_model(run_dir)
        path = f"{run_dir} (checkpoint of step {step})"
        if log is not None:
            log(f"{run_dir} has no model.keras (not finished): using its checkpoint of step {step}")
    else:
        raise FileNotFoundError(
            f"{run_dir!r} has neither a model.keras nor checkpoints: is it a train.py run?"
        )
    try:
        return find_lut_net(model)
    except ValueError as e:
        raise ValueError(f"{path}: {e}; train a LUT-convertible model (srlut/mulut/rclut)") from e


def transfer_run(
    run_dir: str,
    out: str,
    finetune_steps: int = 0,
    lr: float = 0.05,
    rc_lr: float = 5e-4,
    interval: int = 16,
    progress: bool = False,
) -> LutTables:
    """Transfer (and optionally fine-tune on the run's training data) and save ``out``.

    Raises:
        FileNotFoundError, IsADirectoryError: no run at ``run_dir``; ``out`` in a missing folder
            or a folder itself (checked before the work).
        ValueError: not a LUT run; fine-tuning a run without its saved configuration.
    """
    check_output_path(out)
    net = load_run_net(run_dir)
    tables = transfer(net, interval)
    if finetune_steps:
        from tfsr.training.config import load_saved_config
        from tfsr.training.data import training_dataset

        config = load_saved_config(run_dir)
        if config is None:
            raise ValueError(f"{run_dir} has no saved training config: cannot fine-tune")
        model = LutModel.from_tables(tables)
        finetune(model, training_dataset(config), finetune_steps, lr, rc_lr, progress=progress)
        tables = model.to_tables()
    save_lut_file(out, tables)
    return tables
