"""The training loop behind ``train.py``: checkpoints, resume, validation, final evaluation."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.atomic_file import atomic_output
from tfsr.models.registry import get_model_spec
from tfsr.progress import step_bar
from tfsr.run_files import RUN_MODEL_FILENAME
from tfsr.training.config import (
    TrainConfig,
    check_resumable,
    load_saved_config,
    restore_matching,
)
from tfsr.training.event_logs import drop_events_after
from tfsr.training.schedules import WarmupSchedule
from tfsr.training.signals import StopRequest

log = logging.getLogger("tfsr.training")

RESULTS_FILENAME = "results.json"
CHECKPOINT_DIR = "checkpoints"  # in a run folder
LOG_DIR = "logs"  # TensorBoard's, in a run folder


@dataclass
class TrainResult:
    """What a call of :func:`train` did."""

    step: int
    completed: bool
    stopped_by: str | None = None
    resumed_from: int = 0
    inference_model_path: str | None = None
    metrics: dict = field(default_factory=dict)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for ``--strategy``."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be default, mirrored or multi_worker, got {name!r}")


def worker_role(strategy: tf.distribute.Strategy) -> tuple[bool, str]:
    """``(is_chief, name)`` of this process in a multi-worker cluster (``TF_CONFIG``).

    The chief is the task of type "chief", or worker 0 when the cluster has none; a process
    outside any cluster is the chief. Only the chief writes into the run's folder.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type is None:
        return True, "chief"
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    chief = task_type == "chief" or (
        task_type == "worker" and task_id == 0 and "chief" not in cluster
    )
    return chief, f"{task_type} {task_id}"


def _set_precision(enabled: bool) -> None:
    if not enabled:
        keras.mixed_precision.set_global_policy("float32")
        return
    policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)


def _loss_fn(name: str):
    if name == "l1":
        return lambda hr, sr: tf.reduce_mean(tf.abs(hr - sr))
    return lambda hr, sr: tf.reduce_mean(tf.square(hr - sr))


def _load_init_weights(model: keras.Model, source: str) -> None:
    """Starts ``model`` from the compatible weights of a run folder (finished or still training),
    a saved model, a shipped model's name (``sesr_xl_x2``) or a collapsed SESR ``.npz``."""
    from tfsr.inference import load_keras_spec
    from tfsr.lut.lut_model import LutModel
    from tfsr.models.sesr import init_from

    try:
        if load_saved_config(source) is not None:  # a run folder, finished or not
            # Imported here: importing tfsr.training must not load the snapshot CLI module
            # (``python -m tfsr.training.snapshot`` would warn that it was already imported).
            from tfsr.training.snapshot import load_run_model

            _, donor, _ = load_run_model(source)
        else:
            donor = load_keras_spec(source)
    except (FileNotFoundError, ValueError) as error:
        kind = FileNotFoundError if isinstance(error, FileNotFoundError) else ValueError
        raise kind(f"--init_from={source}: {error}") from error
    if isinstance(donor, LutModel):
        raise ValueError(
            f"--init_from={source}: {source!r} is look-up tables, not a network to train from "
            "(tables are fine-tuned from their run: python -m tfsr.lut.transfer --run=RUN "
            "--finetune_steps=N)"
        )
    names = {layer.name for layer in model.layers if layer.weights}
    donor_names = {layer.name for layer in donor.layers if layer.weights}
    # Another family (an SESR starting sesr_dysample or meta_sesr): the shared body only.
    body_only = names != donor_names
    try:
        copied = init_from(model, donor, body_only=body_only)
    except ValueError as error:
        raise ValueError(f"--init_from={source}: {error}") from error
    left = sorted(names - set(copied))
    print(
        f"init_from {source}: copied {len(copied)} layers"
        + (f"; left initialised: {', '.join(left)}" if left else ""),
        flush=True,
    )


class Trainer:
    """Builds model, optimizer, data and checkpoint for a config, then runs steps.

    Split from :func:`train` so tests can drive single pieces (resume, mismatch errors).
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self.spec = get_model_spec(config.model)
        # Every worker restores the chief's checkpoints; the others write theirs (all workers
        # must save, the save reads distributed variables) to a folder deleted after each save.
        self.ckpt_dir = os.path.join(config.out_dir, CHECKPOINT_DIR)
        saved = load_saved_config(config.out_dir)
        # A run stopped before its first checkpoint left only its configuration: nothing to
        # resume, so any configuration may start afresh there.
        resumable = saved is not None and tf.train.latest_checkpoint(self.ckpt_dir) is not None
        # An arbitrary-scale model ignores --scale, so a resume may name another.
        ignored = ("scale",) if self.spec.multi_scale else ()
        self.notes = check_resumable(saved, config, ignored) if resumable else []
        if resumable and config.init_from:
            self.notes.append(
                f"--init_from={config.init_from} not used: the run resumes from its checkpoint"
            )

        _set_precision(config.mixed_precision)
        keras.utils.set_random_seed(config.seed)
        self.strategy = make_strategy(config.strategy)
        self.is_chief, self.role = worker_role(self.strategy)
        self.write_dir = (
            self.ckpt_dir
            if self.is_chief
            else os.path.join(config.out_dir, f"tmp_{self.role.replace(' ', '_')}")
        )
        with self.strategy.scope():
            self.model = self.spec.build_run_model(
                config.scale, config.activation, expanded_filters=config.expanded_filters
            )
            schedule = WarmupSchedule(
                config.lr, config.steps, config.warmup_steps, kind=config.lr_schedule
            )
            optimizer = keras.optimizers.Adam(learning_rate=schedule, amsgrad=True)
            if config.mixed_precision and keras.mixed_precision.global_policy().name.endswith(
                "float16"
            ):
                optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, step=self.step
        )
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.write_dir, max_to_keep=config.keep_checkpoints
        )
        self.resumed_from = self._restore_or_init()
        # The step of the last checkpoint this process wrote or restored (None: none yet); kept
        # here, not read back from the folder, so every worker decides the same way.
        self.saved_step = self.resumed_from if self.latest_checkpoint() else None
        if self.is_chief:
            config.save(config.out_dir)

    def latest_checkpoint(self) -> str | None:
        """The run's latest checkpoint (the chief's), or None."""
        return tf.train.latest_checkpoint(self.ckpt_dir)

    def _restore_or_init(self) -> int:
        latest = self.latest_checkpoint()
        if latest is None:
            if self.config.init_from:
                _load_init_weights(self.model, self.config.init_from)
            return 0
        restore_matching(
            self.checkpoint,
            latest,
            f"checkpoint {latest} does not match model {self.config.model!r} at scale "
            f"{self.config.scale}",
        )
        return int(self.step.numpy())

    def last_kept(self) -> str:
        """``"step N"`` of the run's latest checkpoint, or ``"none yet"`` (for messages)."""
        latest = self.latest_checkpoint()
        return f"step {latest.rsplit('-', 1)[1]}" if latest else "none yet"

    def save_checkpoint(self) -> str:
        """Writes a checkpoint for the current step (TF writes it under a temporary name and
        renames; the ``checkpoint`` index file is replaced atomically).

        Raises:
            FloatingPointError: a model weight or optimizer state is not finite (the last update
                diverged although the loss it was computed from was finite); nothing is written,
                so a rerun resumes from the last good checkpoint.
        """
        step = int(self.step.numpy())
        bad = [  # Adam's moments too: a checkpoint with an inf moment cannot be resumed from
            v.name
            for v in [*self.model.weights, *self.optimizer.variables]
            if v.dtype.is_floating and not bool(tf.reduce_all(tf.math.is_finite(v)))
        ]
        if bad:
            raise FloatingPointError(
                f"weights became non-finite by step {step} ({bad[0]}"
                + (f" and {len(bad) - 1} more" if len(bad) > 1 else "")
                + f"); nothing was saved (last checkpoint: {self.last_kept()}): rerun with a "
                "lower --lr to resume from before the divergence"
            )
        path = self.manager.save(checkpoint_number=step)
        self.saved_step = step
        if not self.is_chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)
            return os.path.join(self.ckpt_dir, os.path.basename(path))  # the chief's
        return path

    def dataset(self) -> tf.data.Dataset:
        """Training batches from the current step on (the order resumes where it stopped)."""
        from tfsr.training.data import training_dataset

        return training_dataset(self.config, start_step=int(self.step.numpy()))

    def make_train_step(self, element_spec=None):
        """The compiled training step, ``step(batch, stop) -> (loss, stop_any)``.

        ``stop`` is a float32 scalar, 1 when this process has been asked to stop; ``stop_any``
        is whether any replica of any worker had it (an all-reduce, like the loss's). A signal
        that reaches one worker of a cluster thus stops all of them after the same step, to
        checkpoint together: a worker that left alone would leave the others waiting in the
        next collective. ``element_spec`` (the distributed dataset's, for arbitrary-scale
        batches whose HR size varies) fixes the batch's input signature."""
        loss_fn = _loss_fn(self.config.loss)
        model, optimizer, strategy = self.model, self.optimizer, self.strategy
        replicas = strategy.num_replicas_in_sync
        scaled = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)

        def replica_step(lr, hr, stop):
            with tf.GradientTape() as tape:
                sr = tf.cast(model(lr, training=True), tf.float32)
                loss = loss_fn(hr, sr) / replicas
                scaled_loss = optimizer.get_scaled_loss(loss) if scaled else loss
            grads = tape.gradient(scaled_loss, model.trainable_variables)
            if scaled:
                grads = optimizer.get_unscaled_gradients(grads)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss, tf.identity(stop)

        def train_step(batch, stop):
            lr, hr = batch
            loss, stops = strategy.run(replica_step, args=(lr, hr, stop))
            self.step.assign_add(1)
            return (
                strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, stops, axis=None) > 0.0,
            )

        jit = self.config.jit_compile or None  # None: TensorFlow's default (no XLA on CPU)
        if element_spec is None:
            return tf.function(train_step, jit_compile=jit)
        # Arbitrary-scale batches: the HR size changes with every scale; one trace for all.
        signature = [element_spec, tf.TensorSpec([], tf.float32)]
        return tf.function(train_step, input_signature=signature, jit_compile=jit)

    def validate(self) -> dict:
        """Mean PSNR/SSIM of the current model on the validation data (inference form)."""
        from tfsr.training.data import validation_metrics

        return validation_metrics(self.spec.inference_model(self.model), self.config)


def _checkpoint_on_signal(trainer: Trainer, stop: StopRequest) -> None:
    """Writes the current step's checkpoint (once) and says so: called as soon as the signal is
    seen, before anything is torn down (a process manager may follow SIGTERM with SIGKILL)."""
    step = int(trainer.step.numpy())
    latest = trainer.latest_checkpoint()
    if trainer.saved_step != step:
        latest = trainer.save_checkpoint()
    print(f"\n{stop.signal_name}: checkpoint written to {latest}; rerun to resume.", flush=True)


def _stop(trainer: Trainer, stop: StopRequest, result: TrainResult) -> TrainResult:
    result.step, result.stopped_by = int(trainer.step.numpy()), stop.signal_name
    return result


def _run_steps(trainer: Trainer, stop: StopRequest, progress: bool) -> bool:
    """Trains up to ``config.steps``; returns False when a signal stopped it (checkpointed)."""
    config = trainer.config
    distributed = trainer.strategy.experimental_distribute_dataset(trainer.dataset())
    batches = iter(distributed)
    multi_scale = trainer.spec.multi_scale
    train_step = trainer.make_train_step(distributed.element_spec if multi_scale else None)
    bar = step_bar(
        config.steps,
        config.model if multi_scale else f"{config.model} x{config.scale}",
        enabled=progress,
        initial=int(trainer.step.numpy()),
    )
    # One process stops as soon as it sees the signal; the workers of a cluster stop when the
    # step after it tells all of them (see Trainer.make_train_step), never one alone.
    alone = config.strategy != "multi_worker"
    agreed = False
    window_start, window_steps, loss_sum = time.perf_counter(), 0, 0.0
    with bar:
        while int(trainer.step.numpy()) < config.steps:
            if agreed or (alone and stop.requested):
                _checkpoint_on_signal(trainer, stop)
                return False
            loss, stop_any = train_step(next(batches), tf.constant(float(stop.requested)))
            loss, agreed = float(loss), bool(stop_any)
            if agreed and not stop.requested:  # the signal reached another worker
                stop.requested, stop.signal_name = True, "another worker's signal"
            step = int(trainer.step.numpy())
            bar.update(1)
            window_steps += 1
            loss_sum += loss
            if not np.isfinite(loss):
                # The step has already written non-finite weights: save nothing, so that a rerun
                # resumes from the last checkpoint, from before the divergence.
                raise FloatingPointError(
                    f"loss became {loss} at step {step}; nothing was saved (last checkpoint: "
                    f"{trainer.last_kept()}): rerun with a lower --lr to resume from before the divergence"
                )
            if window_steps >= 20 or step == config.steps:
                elapsed = max(time.perf_counter() - window_start, 1e-9)
                rate = window_steps * config.batch_size / elapsed
                bar.set_postfix(
                    loss=f"{loss_sum / window_steps:.4f}", img_s=f"{rate:.0f}", refresh=False
                )
                tf.summary.scalar("train/loss", loss_sum / window_steps, step=step)
                tf.summary.scalar("train/images_per_s", rate, step=step)
                window_start, window_steps, loss_sum = time.perf_counter(), 0, 0.0
            if step % config.checkpoint_every == 0:
                trainer.save_checkpoint()
            due = config.val_every and step % config.val_every == 0 and step < config.steps
            if due and trainer.is_chief:
                metrics = trainer.validate()
                tf.summary.scalar("val/psnr", metrics["psnr"], step=step)
                bar.write(f"step {step}: validation PSNR {metrics['psnr']:.3f} dB")
        if trainer.saved_step != int(trainer.step.numpy()):
            trainer.save_checkpoint()
    return True


def train(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Trains (or resumes) the run in ``config.out_dir`` up to ``config.steps`` steps.

    Writes checkpoints every ``checkpoint_every`` steps and on SIGINT/SIGTERM (also when the
    signal comes while the run is still being set up), TensorBoard logs in ``out_dir/logs``, and
    at the end the inference model ``out_dir/model.keras`` and ``out_dir/results.json``
    (validation PSNR/SSIM of the model and of bicubic). The global Keras dtype policy is
    restored afterwards (``mixed_precision`` sets it for the run).
    """
    policy = keras.mixed_precision.global_policy()
    try:
        return _train(config, progress)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _train(config: TrainConfig, progress: bool) -> TrainResult:
    with StopRequest() as stop:
        trainer = Trainer(config)
        stop.reclaim()  # from TensorFlow's multi-worker runtime, which takes SIGTERM
        for note in trainer.notes:
            log.warning("resuming %s: %s", config.out_dir, note)
        start = trainer.resumed_from
        if start:
            print(f"Resuming {config.out_dir} from step {start}")
        result = TrainResult(step=start, completed=False, resumed_from=start)
        log_dir = os.path.join(config.out_dir, LOG_DIR)
        if start and trainer.is_chief:  # the steps after the checkpoint are logged again
            drop_events_after(log_dir, start)
        writer = (
            tf.summary.create_file_writer(log_dir)
            if trainer.is_chief
            else tf.summary.create_noop_writer()
        )
        with writer.as_default():
            if start < config.steps and not _run_steps(trainer, stop, progress):
                return _stop(trainer, stop, result)
            if stop.requested:  # during set-up, or after the last step
                _checkpoint_on_signal(trainer, stop)
                return _stop(trainer, stop, result)

    result.step = int(trainer.step.numpy())
    result.completed = True
    if not trainer.is_chief:  # the chief writes the model and the results
        return result
    inference = trainer.spec.inference_model(trainer.model)
    path = os.path.join(config.out_dir, RUN_MODEL_FILENAME)
    with atomic_output(path) as tmp:
        inference.save(tmp)
    result.inference_model_path = path

    from tfsr.training.data import final_evaluation

    result.metrics = final_evaluation(inference, config)
    with writer.as_default():
        tf.summary.scalar("val/psnr", result.metrics["psnr"], step=result.step)
    results_path = os.path.join(config.out_dir, RESULTS_FILENAME)
    with atomic_output(results_path) as tmp, open(tmp, "w") as f:
        json.dump({"step": result.step, **result.metrics}, f, indent=2)
    return result
