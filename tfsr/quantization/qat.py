"""Quantization-aware training (tfmot, tf_keras) of tfsr inference models.

The flow, for a float model in inference form (a collapsed SESR: ``Conv2D``, ``PReLU``/``ReLU``,
``Add``, ``PixelShuffle``) or in collapsed-training form (``CollapsibleLinearBlock``)::

    qat = quantize_model(model)                 # fake-quant everywhere TFLite int8 rounds
    calibrate_ranges(qat, batches)              # activation ranges from data (post-training)
    train_qat(qat, dataset, steps=...)          # optional fine-tuning through the fake-quant
    convert(qat, "int8", ...)                   # tfsr.quantization.convert: no calibration pass

``calibrate_ranges`` alone is post-training quantisation (``--qat_steps=0``): the ranges are
percentiles of the calibration activations or the mean of the batches' min / max (the TFLite
converter's calibrator keeps the overall min / max instead, which one outlier batch widens), the
weights are quantised per channel from their own range, as the converter does; measured on small
patches instead of full 1080p frames (seconds and little memory instead of gigabytes).

Saving: ``.keras`` files of QAT models do not reload in tf_keras 2.21; :func:`qat_checkpoint`
keeps a ``tf.train.Checkpoint`` (model, optimizer, step) that a rerun resumes from, and
``qat.save("x.h5")`` reloads under :func:`tfsr.quantization.configs.quantize_scope`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
    default_8bit_quantize_scheme,
    default_8bit_transforms,
)
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (
    model_transformer,
)

from tfsr.checks import int_at_least
from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock
from tfsr.layers.pixel_shuffle import PixelShuffle
from tfsr.quantization import configs

_tfmot_q = tfmot.quantization.keras
_QuantizeLayer = quantize_layer.QuantizeLayer


class _InputOnlyLayout(_tfmot_q.QuantizeLayoutTransform):
    """Only tfmot's input QuantizeLayer; none of its fusing rewrites.

    tfmot's default layout transforms replace the QuantizeConfig of a Conv2D (or Add) followed by
    a ReLU with a no-op config, which would drop our kernel quantizer; the configs from
    :func:`quantize_config_for` already handle the fusion.
    """

    def apply(self, model, layer_quantize_map):
        return model_transformer.ModelTransformer(
            model,
            [default_8bit_transforms.InputLayerQuantize()],
            set(layer_quantize_map.keys()),
            layer_quantize_map,
        ).transform()


class _Scheme(default_8bit_quantize_scheme.Default8BitQuantizeScheme):
    def get_layout_transformer(self):
        return _InputOnlyLayout()


def _is_plain_relu(layer) -> bool:
    """A ReLU TFLite fuses into the preceding conv (no cap, no leak, no threshold)."""
    if not isinstance(layer, keras.layers.ReLU):
        return False
    return layer.max_value is None and not layer.negative_slope and not layer.threshold


def _is_clip(layer) -> bool:
    """A ``ReLU(max_value=m)``: a clip to [0, m]."""
    if not isinstance(layer, keras.layers.ReLU) or layer.max_value is None:
        return False
    return not layer.negative_slope and not layer.threshold


def _consumers(layer) -> list:
    return [node.outbound_layer for node in layer._outbound_nodes]


def _clip_range_downstream(layer) -> tuple[float, float] | None:
    """``(0, m)`` when ``layer``'s output reaches a clip ``ReLU(max_value=m)`` through nothing
    but pixel shuffles (which keep values): its int8 range should then be the clip's, so that
    the clip costs no second rounding and no calibrated range cuts off bright pixels."""
    consumers = _consumers(layer)
    while len(consumers) == 1 and isinstance(consumers[0], PixelShuffle):
        consumers = _consumers(consumers[0])
    if len(consumers) == 1 and _is_clip(consumers[0]):
        return (0.0, float(consumers[0].max_value))
    return None


def quantize_config_for(layer) -> _tfmot_q.QuantizeConfig | None:
    """The QuantizeConfig tfsr uses for ``layer``; None for an input layer.

    Raises:
        ValueError: a layer type with no int8 recipe (the message names it).
    """
    if isinstance(layer, keras.layers.InputLayer):
        return None
    fused_relu = bool(_consumers(layer)) and all(_is_plain_relu(c) for c in _consumers(layer))
    if isinstance(layer, CollapsibleLinearBlock):
        return configs.CollapsibleBlockQuantizeConfig(quantize_output=not fused_relu)
    if type(layer) is keras.layers.Conv2D:
        return configs.Conv2DQuantizeConfig(quantize_output=not fused_relu)
    if isinstance(layer, keras.layers.PReLU):
        return configs.PReLUQuantizeConfig()
    if isinstance(layer, PixelShuffle):
        return configs.NoOpQuantizeConfig()
    if _is_clip(layer):
        # A clip to [0, max] (replaced by an identity): the output range is exactly that, fixed.
        return configs.OutputQuantizeConfig(output_range=(0.0, float(layer.max_value)))
    if isinstance(layer, keras.layers.ReLU):
        return configs.OutputQuantizeConfig()
    if isinstance(layer, (keras.layers.Add, keras.layers.Concatenate)):
        return configs.OutputQuantizeConfig(output_range=_clip_range_downstream(layer))
    raise ValueError(
        f"cannot quantize layer {layer.name!r} of type {type(layer).__name__}: tfsr has int8 "
        "recipes for Conv2D, CollapsibleLinearBlock, PReLU, ReLU, Add, Concatenate and PixelShuffle"
    )


def quantize_model(model: keras.Model) -> keras.Model:
    """Returns a QAT copy of ``model`` (fake-quant nodes where TFLite int8 rounds).

    ``model`` is left unchanged; the copy starts from its weights. CollapsibleLinearBlocks must
    use ``collapsed_training=True`` (their kernel is fake-quantised through the hook).

    Raises:
        ValueError: a subclassed model or a layer with no int8 recipe.
    """
    if not isinstance(model, keras.Model) or not model._is_graph_network:
        raise ValueError(
            f"quantize_model needs a Functional or Sequential model, got {type(model).__name__}"
        )
    annotations = {layer.name: quantize_config_for(layer) for layer in model.layers}

    def annotate(layer):
        if _is_clip(layer):
            # Its fixed output range [0, max] clips: see configs.
            clone = keras.layers.Activation("linear", name=layer.name)
        else:
            clone = layer.__class__.from_config(layer.get_config())
        config = annotations.get(layer.name)
        if config is None:
            return clone
        return _tfmot_q.quantize_annotate_layer(clone, quantize_config=config)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    with configs.quantize_scope():
        qat = _tfmot_q.quantize_apply(annotated, scheme=_Scheme())
    _fix_input_range(qat)
    # Fixed ranges never learn (their decay is 1): set them now, so that QAT straight after this
    # trains with the clip it will be exported with, not tfmot's initial [-6, 6].
    _fix_output_ranges(qat)
    return qat


def _range_configs(qat_model: keras.Model) -> list[configs.OutputRangeConfig]:
    return [
        layer.quantize_config
        for layer in qat_model.layers
        if isinstance(layer, _tfmot_q.QuantizeWrapper)
        and isinstance(layer.quantize_config, configs.OutputRangeConfig)
    ]


def range_vars(layer, name_part: str = "") -> tuple[tf.Variable, tf.Variable]:
    """The (min, max) range variables of a quantized layer whose names hold ``name_part``
    (``"output"``: its output range; ``"kernel"``: its kernel quantizer's)."""

    def leaf(w):  # "quant_conv/output_min:0" -> "output_min:0"; layer names do not count
        return w.name.rsplit("/", 1)[-1]

    mins = [w for w in layer.weights if leaf(w).endswith("_min:0") and name_part in leaf(w)]
    maxs = [w for w in layer.weights if leaf(w).endswith("_max:0") and name_part in leaf(w)]
    if len(mins) != 1 or len(maxs) != 1:
        raise ValueError(
            f"{layer.name}: expected one min and one max range variable, got "
            f"{[w.name for w in layer.weights]}"
        )
    return mins[0], maxs[0]


def _fix_input_range(qat_model: keras.Model, low: float = 0.0, high: float = 1.0) -> None:
    """Images enter in [0, 1]: the input quantizer's range is exactly that (step 1/255)."""
    for layer in qat_model.layers:
        if isinstance(layer, _QuantizeLayer):
            lo, hi = range_vars(layer)
            lo.assign(low)
            hi.assign(high)


def _fix_output_ranges(qat_model: keras.Model) -> None:
    for layer in qat_model.layers:
        config = getattr(layer, "quantize_config", None)
        if isinstance(config, configs.OutputRangeConfig) and config.output_range is not None:
            lo, hi = range_vars(layer, "output")
            lo.assign(config.output_range[0])
            hi.assign(config.output_range[1])


def calibrate_ranges(
    qat_model: keras.Model,
    batches: Iterable,
    *,
    percentile: float | None = None,
    samples_per_batch: int = 1 << 16,
    seed: int = 0,
) -> int:
    """Sets every learnt activation range from calibration batches.

    Runs the model in training mode (eagerly). Without ``percentile`` each range is the mean
    batch min / max (the EMA decay of batch ``k`` is set to ``k / (k + 1)``, which makes the
    range the running mean of the batch ranges; then the decay is put back; the TFLite
    converter's own calibrator keeps the overall min / max instead). With ``percentile`` (for
    example 99.99) each range is the ``100 - percentile`` / ``percentile`` percentile of the
    activations (``samples_per_batch`` random values per batch and tensor), widened to hold 0:
    the rare extreme values of a trained SR network's features are clipped, and the int8 step of
    the bulk shrinks. Fixed ranges (the input, [0, 1]; a clip, [0, max]) are set exactly.
    Weights do not change (kernels are quantised from their own range).

    Args:
        qat_model: from :func:`quantize_model`.
        batches: LR batches ``(N, H, W, C)`` in [0, 1], or ``(lr, hr)`` pairs.
        percentile: None (mean min / max) or a percentile in (50, 100].
        samples_per_batch: values kept per batch and tensor for the percentiles.
        seed: seed of that sampling.

    Returns:
        The number of batches used.

    Raises:
        ValueError: ``batches`` is empty, or a percentile outside (50, 100].
    """
    if percentile is not None and not 50.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
    quantizers = [q for c in _range_configs(qat_model) for q in c.range_quantizers()]
    saved = [(q.ema_decay, q.frozen) for q in quantizers]
    rng = np.random.default_rng(seed)
    seen: dict[int, list[np.ndarray]] = {id(q): [] for q in quantizers}
    variables: dict[int, dict] = {}

    def observer_for(q):
        def observe(inputs, weights):
            values = np.asarray(inputs).ravel()
            if values.size > samples_per_batch:
                values = rng.choice(values, samples_per_batch, replace=False)
            seen[id(q)].append(values)
            variables[id(q)] = weights

        return observe

    count = 0
    try:
        for q in quantizers:
            q.observer = observer_for(q) if percentile is not None else None
            q.frozen = False  # calibration sets frozen ranges too (they stay frozen after)
        for batch in batches:
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            for q in quantizers:
                q.ema_decay = count / (count + 1.0)
            qat_model(tf.convert_to_tensor(batch, tf.float32), training=True)
            count += 1
    finally:
        for q, (decay, frozen) in zip(quantizers, saved, strict=True):
            q.ema_decay, q.frozen = decay, frozen
            q.observer = None
    if count == 0:
        raise ValueError("calibrate_ranges needs at least one batch, got none")
    if percentile is not None:
        for q in quantizers:
            values = np.concatenate(seen[id(q)])
            low, high = np.percentile(values, [100.0 - float(percentile), float(percentile)])
            variables[id(q)]["min_var"].assign(min(0.0, float(low)))
            variables[id(q)]["max_var"].assign(max(0.0, float(high)))
    _fix_input_range(qat_model)
    _fix_output_ranges(qat_model)
    return count


def freeze_ranges(qat_model: keras.Model, frozen: bool = True) -> None:
    """Stops (or restarts) the moving-average updates of the learnt activation ranges.

    QAT after percentile calibration keeps those ranges and trains only the weights.
    """
    for config in _range_configs(qat_model):
        for q in config.range_quantizers():
            q.frozen = frozen


_FINGERPRINT_FILE = "qat_model.json"


def _fingerprint(qat_model: keras.Model) -> list:
    """The model's structure, independent of layer names (which differ between processes):
    every layer's class and the shapes of its weights, in order."""
    return [
        [type(layer).__name__, [list(w.shape) for w in layer.weights]] for layer in qat_model.layers
    ]


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of a model's weight values, in order: tells two models of one structure apart."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def qat_checkpoint(
    qat_model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    directory: str,
    source: dict | None = None,
) -> tuple[tf.train.CheckpointManager, tf.Variable]:
    """A checkpoint manager over (model, optimizer, step) in ``directory``; restores the latest.

    The folder also records the model's structure and ``source`` (``qat_model.json``): a
    checkpoint of another model (a PReLU run resumed with a ReLU model, another size) or of
    another ``source`` is refused rather than loaded in place of this one.

    Args:
        source: what the QAT starts from, JSON-able (``tfsr.quantization.export`` gives the float
            model's :func:`weights_digest` and the calibration settings); None: not checked.

    Returns:
        ``(manager, step)``: ``step`` is the number of QAT steps already done (0 when new).

    Raises:
        ValueError: ``directory`` holds the checkpoint of a different model or source.
    """
    import json
    import os

    from tfsr.atomic_file import atomic_output

    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="qat_step")
    checkpoint = tf.train.Checkpoint(model=qat_model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
    fingerprint = {"layers": _fingerprint(qat_model), "source": source}
    path = os.path.join(directory, _FINGERPRINT_FILE)
    if manager.latest_checkpoint:
        if os.path.exists(path):
            with open(path) as f:
                saved = json.load(f)
            if not isinstance(saved, dict) or saved.get("layers") != fingerprint["layers"]:
                raise ValueError(
                    f"the QAT checkpoint in {directory!r} is of a different model (layers or "
                    "weight shapes differ); use another --qat_dir or remove that folder"
                )
            if saved.get("source") != source:
                before, now = saved.get("source") or {}, source or {}
                differ = sorted(k for k in {*before, *now} if before.get(k) != now.get(k))
                raise ValueError(
                    f"the QAT checkpoint in {directory!r} was made from another start ("
                    f"{', '.join(differ) or 'source'} differ); use another --qat_dir or remove "
                    "that folder"
                )
        try:  # every variable of the model must be in the checkpoint
            tf.train.Checkpoint(model=qat_model).restore(
                manager.latest_checkpoint
            ).expect_partial().assert_existing_objects_matched()
        except AssertionError as error:
            raise ValueError(
                f"the QAT checkpoint in {directory!r} does not fit this model: {error}"
            ) from error
        # The optimizer's slots are created, and then restored, at its first step.
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
    else:
        os.makedirs(directory, exist_ok=True)
        with atomic_output(path) as tmp, open(tmp, "w") as f:
            json.dump(fingerprint, f)
    return manager, step


def train_qat(
    qat_model: keras.Model,
    dataset: tf.data.Dataset | Callable[[int], tf.data.Dataset],
    steps: int,
    *,
    learning_rate: float = 5e-5,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 500,
    source: dict | None = None,
    log=None,
) -> dict:
    """Fine-tunes ``qat_model`` through its fake-quant nodes with an L1 loss and Adam.

    Args:
        qat_model: from :func:`quantize_model`, best after :func:`calibrate_ranges`.
        dataset: ``(lr, hr)`` batches in [0, 1] (``tfsr.data.sr_patches``), repeated; or
            ``dataset(start)``, those batches from batch ``start`` on, so that a resumed run
            continues the sequence (``sr_patches(..., start_step=start)``).
        steps: total QAT steps (a resumed run continues up to this number).
        learning_rate: Adam step size, cosine-decayed to 1% over ``steps``.
        checkpoint_dir: where to keep a resumable checkpoint (None: none).
        checkpoint_every: steps between checkpoints.
        source: what the run starts from, checked on resume (:func:`qat_checkpoint`).
        log: optional ``log(step, loss)`` called every 100 steps.

    Returns:
        ``{"steps": done in total, "resumed_from": step at start, "loss": last mean L1}``.
    """
    int_at_least("steps", steps, 0)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(int(steps), 1), alpha=0.01)
    optimizer = keras.optimizers.Adam(schedule)
    manager, step = (None, tf.Variable(0, dtype=tf.int64))
    if checkpoint_dir:
        manager, step = qat_checkpoint(qat_model, optimizer, checkpoint_dir, source)
    start = int(step.numpy())
    if callable(dataset):
        dataset = dataset(start)

    @tf.function
    def train_step(lr, hr):
        with tf.GradientTape() as tape:
            sr = qat_model(lr, training=True)
            loss = tf.reduce_mean(tf.abs(sr - hr))
        variables = qat_model.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    losses = []
    for lr, hr in dataset.take(max(int(steps) - start, 0)):
        losses.append(float(train_step(lr, hr)))
        step.assign_add(1)
        done = int(step.numpy())
        if log is not None and done % 100 == 0:
            log(done, float(np.mean(losses[-100:])))
        if manager is not None and (done % checkpoint_every == 0 or done == steps):
            manager.save(checkpoint_number=done)
    _fix_output_ranges(qat_model)
    return {
        "steps": int(step.numpy()),
        "resumed_from": start,
        "loss": float(np.mean(losses[-100:])) if losses else None,
    }
