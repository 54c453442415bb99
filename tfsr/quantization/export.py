"""Export a trained tfsr model to TFLite, quantised, and check the file's quality afterwards.

Library side of ``export.py``. :func:`export_model` loads the model (:func:`load_model`), turns it
into its deployable float form with the export handler of its family (:func:`export_handler_for`),
for int8 builds the QAT copy, sets its ranges on calibration patches and optionally fine-tunes it
(:mod:`tfsr.quantization.qat`), converts (:mod:`tfsr.quantization.convert`), refuses any
non-builtin op, writes the file atomically and evaluates float vs TFLite PSNR.

Measured choices (Set5 / Set14 int8 loss against float at 1920x1080, ``python export.py
--model=NAME --out=X.tflite --qat_steps=N --train_data=../shared/data/train
--val_data=../shared/data/val/Set5,../shared/data/val/Set14``):

- QAT runs on the collapsed form (plain ``Conv2D``): same function as the collapsed-training form
  (``CollapsibleLinearBlock`` with its ``kernel_quantizer`` hook, also supported and tested equal),
  fewer variables, and the only form shipped ``.npz`` models have.
- The residual add before pixel shuffle and clip takes the clip's fixed [0, 1] range
  (:func:`tfsr.quantization.qat.quantize_config_for`): a calibrated range ended at 0.95 (bright
  pixels clipped) and the clip requantised once more. sesr_m5_relu_x2, calibration only:
  -0.178 / -0.100 -> -0.147 / -0.091.
- Trained models (sesr_m5_x2, 60k steps; sesr_m5_relu_x2): mean min / max ranges lose 0.278 /
  0.120 dB (PReLU), as a few extreme feature values set the per-tensor steps; ranges from the
  99.99th percentile of the calibration activations are the starting point. A fake-quant study
  on the ReLU model (Set5 -0.148 in all) put kernel rounding alone at -0.094 and the
  activations alone at -0.114 dB, these mostly the signed first, long-residual and last tensors.
- Reconstruction (:mod:`tfsr.quantization.reconstruct`, the default): activation ranges searched
  and kernels refitted and re-rounded against the float model's outputs on 8 calibration
  batches. sesr_m5_relu_x2: -0.089 / -0.046 (the whole export's time and memory: README);
  sesr_m5_x2 (PReLU; the 60k-step model before its scale-augmented fine-tune): -0.123 / -0.063 (the
  shipped, fine-tuned one: -0.132 / -0.074, README). QAT afterwards (2000 steps at 1e-5,
  ranges frozen) does not add to it on these models: ReLU -0.093 / -0.052, PReLU -0.121 /
  -0.063; nor did QAT with a float-model distillation loss (lr 1e-5: unchanged; 1e-4: worse). So the default is no QAT
  (``DEFAULT_QAT_STEPS = 0``); ``qat_steps`` still runs it (a briefly trained model gains: the
  2000-step embedded-photo PReLU model went from -0.100 to +0.053 dB on Set5 with 2000 QAT
  steps at 5e-5, as QAT also goes on training it).
- Int8 file at 1920x1080: about 20 KB after shortening tensor names (README: measured sizes).
- The fixed 1920x1080 int8 file evaluates on Set5-size images through the interpreter's
  ``resize_tensor_input`` (bit-identical to a dynamic-size copy); the dynamic copy in
  :func:`verify` is only a fallback.
- LiteRT runs int8 PRELU outside XNNPACK: an int8 PReLU model is several times slower than the
  ReLU variant (``train.py --activation=relu``, the paper's int8 choice); see
  ``benchmarks/tflite_latency.py``.

Model families other than SESR add themselves with :func:`register_export_handler`: a test on
the loaded model and the function that makes its TFLite-ready float form (for example baking a
custom op's filters in as constants). Registered here besides SESR:

- ``sesr_dysample``: the blocks collapsed, DySample kept (it converts to builtins).
- ``meta_sesr`` (arbitrary scale, inputs ``[lr, scale]``): exported at one scale (``scale`` or
  ``scale_v`` / ``scale_h``, required) by :func:`tfsr.models.meta_sesr.fixed_scale_meta_sesr`:
  the filters Pos2Weight predicts for that scale baked into a
  :class:`~tfsr.layers.FixedScaleMetaUpscale` (a strided conv + phase shuffle; the custom op and
  its pure-TF twin, whose index arithmetic is float64 / int64 for dynamic sizes, need Flex ops).

tfmot has no QAT recipe for DySample or the fixed-scale meta-upscale, so those families are
quantised by the TFLite converter's post-training calibration (``ExportHandler.int8 ==
"converter"``): a dynamic-size function calibrated on LR patches of about 64x64
(:func:`representative_patches`), then the file's input fixed to ``input_hw`` in the flatbuffer
and checked to run there (:func:`tfsr.quantization.convert.set_input_size`); ``qat_steps`` is
refused for them.
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.atomic_file import check_output_path
from tfsr.checks import int_at_least
from tfsr.quantization import convert as _convert
from tfsr.quantization import qat

DEFAULT_INPUT_HW = (1080, 1920)
# Measured on sesr_m5_x2 at 60k steps (before the shipped scale-augmented fine-tune), Set5 /
# Set14 int8 loss at 1080p, before reconstruction: mean min / max ranges -0.278 / -0.120 dB;
# 99.99th percentiles -0.183 / -0.094 (99.999th: -0.223 / -0.104). The percentile ranges are
# where the reconstruction starts.
DEFAULT_RANGE_PERCENTILE = 99.99
DEFAULT_QAT_LR = 1e-5
# QAT after reconstruction adds nothing on the shipped models (see the module docstring).
DEFAULT_QAT_STEPS = 0
# Batches (of 16 LR patches of 64x64) the reconstruction searches ranges and refits kernels on:
# on sesr_m5_relu_x2, 8 batches take ~55 s and give what 16 give (Set5 -0.088..-0.091 dB).
RECONSTRUCT_BATCHES = 8


# ---------------------------------------------------------------------------------------------
# Export handlers, one per model family.


@dataclass(frozen=True)
class ExportHandler:
    """How to export one family of models.

    Attributes:
        name: short name ("sesr").
        matches: ``matches(model) -> bool``: this handler exports ``model``.
        prepare: ``prepare(model) -> keras.Model``: the float model to convert (and to quantise),
            built only from layers TFLite supports (and, for ``int8="qat"``,
            :func:`tfsr.quantization.qat.quantize_config_for`); for an arbitrary-scale family,
            ``prepare(model, (scale_v, scale_h)) -> keras.Model``, the single-input model at
            that scale.
        description: one line for error messages.
        arbitrary_scale: the family takes the scale as an input; export needs one.
        int8: how int8 files are made: "qat" (tfmot fake-quant copy, calibrated and optionally
            fine-tuned, :func:`quantize_for_export`) or "converter" (the TFLite converter's
            post-training calibration on LR patches,
            :func:`tfsr.quantization.convert.convert_calibrated`).
    """

    name: str
    matches: Callable[[keras.Model], bool]
    prepare: Callable[..., keras.Model]
    description: str = ""
    arbitrary_scale: bool = False
    int8: str = "qat"


_HANDLERS: list[ExportHandler] = []


def register_export_handler(handler: ExportHandler) -> None:
    """Adds (or replaces, by name) an export handler; handlers are asked in registration order."""
    for i, existing in enumerate(_HANDLERS):
        if existing.name == handler.name:
            _HANDLERS[i] = handler
            return
    _HANDLERS.append(handler)


def export_handler_for(model: keras.Model) -> ExportHandler:
    """The first handler that matches ``model``.

    Raises:
        ValueError: no handler does (the message lists the layer types and the handlers).
    """
    for handler in _HANDLERS:
        if handler.matches(model):
            return handler
    types = sorted({type(layer).__name__ for layer in model.layers})
    known = "; ".join(f"{h.name}: {h.description}" for h in _HANDLERS)
    raise ValueError(
        f"no exporter for model {model.name!r} (layers: {', '.join(types)}); known: {known}"
    )


def _collapsed(model: keras.Model) -> keras.Model:
    """``model`` with its collapsible linear blocks collapsed to plain convolutions (if any)."""
    from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock
    from tfsr.models.sesr import collapse_model

    if any(isinstance(layer, CollapsibleLinearBlock) for layer in model.layers):
        return collapse_model(model)
    return model


def _sesr_handler() -> ExportHandler:
    from tfsr.layers.collapsible_linear_block import CollapsibleLinearBlock
    from tfsr.layers.pixel_shuffle import PixelShuffle

    allowed = (
        keras.layers.InputLayer,
        keras.layers.Conv2D,
        keras.layers.PReLU,
        keras.layers.ReLU,
        keras.layers.Add,
        keras.layers.Concatenate,
        CollapsibleLinearBlock,
        PixelShuffle,
    )

    def matches(model):
        return (
            getattr(model, "_is_graph_network", False)
            and all(type(layer) in allowed for layer in model.layers)
            and any(isinstance(layer, PixelShuffle) for layer in model.layers)
        )

    # QAT on the collapsed form: the plain Conv2D network computes the same function with
    # 13.5K instead of ~400K variables for M5, and shipped models exist only in this form.
    return ExportHandler(
        "sesr",
        matches,
        _collapsed,
        "convolutions, PReLU/ReLU, additions and pixel shuffle (SESR, collapsed or not)",
    )


def _sesr_dysample_handler() -> ExportHandler:
    from tfsr.layers.dysample import DySample

    def matches(model):
        return (
            getattr(model, "_is_graph_network", False)
            and len(model.inputs) == 1
            and any(isinstance(layer, DySample) for layer in model.layers)
        )

    return ExportHandler(
        "sesr_dysample",
        matches,
        _collapsed,
        "an SESR body with a DySample upsampler (int8 by converter calibration)",
        int8="converter",
    )


def _meta_sesr_handler() -> ExportHandler:
    from tfsr.layers.meta_upscale import MetaUpscale
    from tfsr.models.meta_sesr import fixed_scale_meta_sesr, is_arbitrary_scale

    def matches(model):
        return is_arbitrary_scale(model) and any(
            isinstance(layer, MetaUpscale) for layer in model.layers
        )

    return ExportHandler(
        "meta_sesr",
        matches,
        fixed_scale_meta_sesr,
        "Meta-SESR (inputs [lr, scale]), exported at one --scale with its filters baked in",
        arbitrary_scale=True,
        int8="converter",
    )


register_export_handler(_sesr_handler())
register_export_handler(_sesr_dysample_handler())
register_export_handler(_meta_sesr_handler())


# ---------------------------------------------------------------------------------------------
# Loading.


def load_model(spec: str) -> keras.Model:
    """Loads the model to export: :func:`tfsr.inference.load_keras_spec` (a shipped name, a
    ``.keras`` / ``.h5`` file or SavedModel folder, a collapsed SESR ``.npz`` or a training run
    folder holding ``model.keras``), with the same errors."""
    from tfsr.inference import load_keras_spec

    return load_keras_spec(spec)


def model_scale(model: keras.Model) -> float:
    """The model's upscaling factor, from one call on a small probe (or its static shapes)."""
    from tfsr.inference import KerasUpscaler

    upscaler = KerasUpscaler(model, None, name=model.name)
    return upscaler.scale


# ---------------------------------------------------------------------------------------------
# Export.


def default_val_data() -> list[str] | str:
    """``../shared/data/val/Set5`` when present, else the held-out embedded photo."""
    from tfsr.data.sources import source_from_spec
    from tfsr.testing import shared_data_dir

    set5 = os.path.join(shared_data_dir(), "val", "Set5")
    if os.path.isdir(set5):
        return set5
    return list(source_from_spec("embedded").paths[-1:])


def calibration_dataset(
    train_data: str,
    scale,
    *,
    patch_size: int = 64,
    batch_size: int = 16,
    channels: str = "y",
    start_step: int = 0,
):
    """``(lr, hr)`` patch batches of ``train_data`` for range calibration and QAT (seed 0), of
    ``channels`` ("y" or "rgb"), from batch ``start_step`` of that sequence on.

    With ``"embedded"``, the last photo is left out (it is the default held-out validation image).
    """
    import dataclasses

    from tfsr.data.pipeline import sr_patches
    from tfsr.data.sources import source_from_spec

    source = source_from_spec(train_data)
    if train_data == "embedded":
        source = dataclasses.replace(source, paths=source.paths[:-1])
    return sr_patches(
        source,
        scale,
        lr_patch_size=patch_size,
        batch_size=batch_size,
        seed=0,
        augment=True,
        channels=channels,
        start_step=start_step,
    )


def calibration_patch_size(scale, target: int = 64) -> int:
    """The LR patch side nearest above ``target`` that is a multiple of every scale's denominator.

    Example:
        >>> calibration_patch_size(2), calibration_patch_size(2.5), calibration_patch_size(1.3)
        (64, 64, 70)
    """
    from tfsr.data.imresize import scale_pair, scale_ratio

    q = math.lcm(*(scale_ratio(s)[1] for s in scale_pair(scale)))
    return q * max(1, math.ceil(target / q))


def representative_patches(
    train_data: str, scale, batches: int
) -> Callable[[], Iterator[np.ndarray]]:
    """The converter's representative dataset: a ramp, then ``batches * 16`` LR patches, each
    (1, h, w, C).

    Patches of about 64x64 from :func:`calibration_dataset` (seed 0): calibration on full frames
    would cost gigabytes, and the ranges of a convolutional network do not depend on the size.
    The first sample is a ramp from 0 to 1: training patches are studio-range luma (16/255 to
    235/255), and the converter's min / max calibration would otherwise give the input (and the
    output) a range that clips full-range images such as grey ones, with a step that no longer
    puts uint8 pixels on int8 levels.
    """
    int_at_least("calibration_batches", batches)
    data = calibration_dataset(train_data, scale, patch_size=calibration_patch_size(scale))

    def generate():
        first = True
        for lr, _ in data.take(batches):
            lr = lr.numpy()
            if first:
                _, h, w, c = lr.shape
                ramp = np.linspace(0.0, 1.0, h * w, dtype=np.float32).reshape(1, h, w, 1)
                yield np.repeat(ramp, c, axis=-1)
                first = False
            for patch in lr:
                yield patch[None]

    return generate


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def quantize_for_export(
    model: keras.Model,
    scale,
    *,
    train_data: str = "embedded",
    calibration_batches: int = 16,
    range_percentile: float | None = DEFAULT_RANGE_PERCENTILE,
    reconstruct: bool = True,
    qat_steps: int = 0,
    qat_dir: str | None = None,
    learning_rate: float = DEFAULT_QAT_LR,
    log: Callable[[str], None] = print,
) -> keras.Model:
    """The QAT copy of ``model`` with calibrated (and, with ``qat_steps``, trained) ranges.

    ``range_percentile`` (None: mean batch min / max) sets the activation ranges from
    percentiles; ``reconstruct`` then searches them and re-rounds the kernels against the
    float model's outputs on the first ``RECONSTRUCT_BATCHES`` calibration batches
    (:func:`tfsr.quantization.reconstruct.reconstruct`); with either, QAT keeps the ranges
    (:func:`tfsr.quantization.qat.freeze_ranges`) and trains the weights only. Calibration patches
    have the model's input channels (Y, or RGB for an RGB model).

    With ``qat_dir`` holding a checkpoint, calibration and reconstruction are skipped (their
    results are in it) and QAT continues the same patch sequence; a checkpoint made from other
    float weights or other settings is refused (ValueError).
    """
    from tfsr.quantization import reconstruct as _reconstruct

    qat_model = qat.quantize_model(model)
    channels = "rgb" if model.inputs[0].shape[-1] == 3 else "y"

    def data(start: int = 0):
        return calibration_dataset(train_data, scale, channels=channels, start_step=start)

    # What the QAT checkpoint starts from: a rerun with other weights or settings is refused.
    source = {
        "float_weights": qat.weights_digest(model),
        "train_data": os.path.realpath(train_data) if os.path.isdir(train_data) else train_data,
        "calibration_batches": calibration_batches,
        "range_percentile": range_percentile,
        "reconstruct": reconstruct,
        "learning_rate": learning_rate,
    }
    resuming = bool(qat_steps and qat_dir and tf.train.latest_checkpoint(qat_dir))
    if resuming:  # the calibrated and reconstructed model is in the checkpoint
        log(f"resuming QAT from {qat_dir} (calibration and reconstruction are in it)")
    else:
        calibration = list(data().take(calibration_batches))  # reconstruction reuses them
        used = qat.calibrate_ranges(qat_model, calibration, percentile=range_percentile)
        how = f"{range_percentile:g}th percentiles" if range_percentile else "mean min / max"
        log(f"calibrated activation ranges ({how}) on {used} batches of {train_data}")
        if reconstruct:
            start = time.perf_counter()
            batches = calibration[:RECONSTRUCT_BATCHES]
            errors = _reconstruct.reconstruct(qat_model, model, batches)
            log(
                "reconstruction (ranges searched, kernels re-rounded) on "
                f"{len(batches)} batches, {time.perf_counter() - start:.0f} s: output MSE vs "
                f"float {errors['error_before']:.3g} -> {errors['error_after']:.3g}"
            )
    if range_percentile or reconstruct:
        qat.freeze_ranges(qat_model)
    if qat_steps:
        result = qat.train_qat(
            qat_model,
            data,
            qat_steps,
            learning_rate=learning_rate,
            checkpoint_dir=qat_dir,
            source=source,
            log=lambda step, loss: log(f"QAT step {step}/{qat_steps}: L1 {loss:.5f}"),
        )
        log(f"QAT: {result['steps']} steps (resumed from {result['resumed_from']})")
    return qat_model


def verify(
    float_model: keras.Model,
    tflite_path: str,
    content_dynamic: Callable[[], bytes],
    val_data: str | Sequence[str] | list,
    scale,
    model_scale=None,
) -> list[dict]:
    """Float vs TFLite PSNR on each validation set.

    The TFLite file is run at each image's size through ``resize_tensor_input``; if the
    interpreter refuses (a model whose shapes are baked in), a dynamic-size copy from
    ``content_dynamic()`` (the same quantisation parameters) is evaluated instead.

    ``model_scale`` is the float model's own scale when known (skips its probe, which cannot
    measure scales such as 1.3 exactly on a small image).

    Returns:
        ``[{dataset, float_psnr, tflite_psnr, drop_db, runner}]``.
    """
    import tempfile

    from tfsr.evaluation import evaluate
    from tfsr.inference import KerasUpscaler, TFLiteUpscaler

    sets = [val_data] if isinstance(val_data, str) or not _is_list_of_sets(val_data) else val_data
    float_upscaler = KerasUpscaler(float_model, scale, name="float", model_scale=model_scale)
    rows = []
    dynamic_path = None
    try:
        for data in sets:
            reference = evaluate(float_upscaler, data, scale)
            runner = "resized input"
            try:
                result = evaluate(TFLiteUpscaler(tflite_path, scale), data, scale)
            except ValueError:
                if dynamic_path is None:
                    fd, dynamic_path = tempfile.mkstemp(suffix=".tflite")
                    with os.fdopen(fd, "wb") as f:
                        f.write(content_dynamic())
                result = evaluate(TFLiteUpscaler(dynamic_path, scale), data, scale)
                runner = "dynamic-size copy"
            rows.append(
                {
                    "dataset": reference["dataset"],
                    "float_psnr": reference["psnr"],
                    "tflite_psnr": result["psnr"],
                    "drop_db": reference["psnr"] - result["psnr"],
                    "runner": runner,
                }
            )
    finally:
        if dynamic_path is not None:
            os.remove(dynamic_path)
    return rows


def _check_val_data(val_data) -> None:
    """Every validation entry exists (a folder, or an HR image file); names the one missing."""
    entries = [val_data] if isinstance(val_data, (str, os.PathLike)) else list(val_data)
    for entry in entries:
        if not os.path.exists(entry):
            raise FileNotFoundError(f"validation data {str(entry)!r} does not exist")


def _is_list_of_sets(val_data) -> bool:
    """A list of folders (several sets) rather than a list of HR image files (one set)."""
    return all(os.path.isdir(v) for v in val_data)


def _format_scale(scale) -> str:
    """ "x2", "x2.5" or "x1.5x3" for a scale or a (vertical, horizontal) pair."""
    from tfsr.data.imresize import scale_name

    return f"x{scale_name(scale)}"


def _requested_scale(scale, scale_v, scale_h):
    """None or the requested (scale_v, scale_h) pair, checked."""
    from tfsr.data.imresize import scale_pair
    from tfsr.inference import scale_from_flags

    requested = scale_from_flags(scale, scale_v, scale_h)
    return None if requested is None else scale_pair(requested)


def _check_input_fits_scale(input_hw, scale) -> None:
    """A fixed input side must be a multiple of its scale's denominator (2.5: even), or the
    output is not exactly ``scale`` times the input and the file runs at another scale."""
    from tfsr.data.imresize import scale_pair, scale_ratio

    if input_hw is None:
        return
    for flag, side, axis_scale in zip(
        ("--input_height", "--input_width"), input_hw, scale_pair(scale), strict=True
    ):
        q = scale_ratio(axis_scale)[1]
        if side % q:
            raise ValueError(
                f"{flag}={side} is not a multiple of {q}, the denominator of scale "
                f"{axis_scale:g}: the output would not be {axis_scale:g} times the input "
                f"(try {side - side % q or q} or {side - side % q + q})"
            )


def export_model(
    spec: str,
    out: str,
    *,
    quantize: str = "int8",
    input_hw: tuple[int, int] | None = DEFAULT_INPUT_HW,
    io_dtype: str = "int8",
    qat_steps: int | None = 0,
    train_data: str = "embedded",
    calibration_batches: int = 16,
    range_percentile: float | None = None,
    reconstruct: bool | None = None,
    qat_dir: str | None = None,
    learning_rate: float = DEFAULT_QAT_LR,
    val_data=None,
    scale=None,
    scale_v=None,
    scale_h=None,
    log: Callable[[str], None] = print,
) -> dict:
    """Loads ``spec``, converts it to ``out`` (.tflite, written atomically) and verifies it.

    Args:
        spec: see :func:`load_model`.
        out: the ``.tflite`` path (its folder must exist).
        quantize: "int8", "float16", "dynamic" or "none".
        input_hw: fixed (H, W) of the exported input; None for a dynamic size.
        io_dtype: "int8", "uint8" or "float32" (int8 / uint8 only with ``quantize="int8"``).
        qat_steps: QAT fine-tuning steps after calibration (0: post-training quantisation;
            None: the family's default, ``DEFAULT_QAT_STEPS`` for SESR int8 and 0 otherwise).
            QAT exists for SESR models only; other families are calibrated by the converter.
        train_data: images for calibration and QAT ("embedded", "div2k" or a folder).
        calibration_batches: batches of 16 LR patches of 64x64 for the activation ranges.
        range_percentile: SESR int8: activation ranges from this percentile of the calibration
            activations (0: the mean batch min / max; None: ``DEFAULT_RANGE_PERCENTILE``); see
            :func:`quantize_for_export` (where None, not 0, means the mean min / max).
        reconstruct: SESR int8: after calibration, search the ranges and re-round the kernels
            against the float model's outputs (:mod:`tfsr.quantization.reconstruct`; None: on).
            These two are SESR int8 settings: giving either (not None) for another export
            (another ``quantize``, or a family the converter calibrates) is a ValueError.
        qat_dir: checkpoint folder that makes QAT resumable (None: no checkpoints).
        learning_rate: QAT step size.
        val_data: a validation folder, a list of folders, or a list of HR files; None for
            :func:`default_val_data`; ``[]`` skips verification.
        scale: the scale to export an arbitrary-scale model (Meta-SESR) at (required for those;
            for a fixed-scale model, checked against its own).
        scale_v, scale_h: a vertical / horizontal scale instead (each defaults to ``scale``).
        log: where progress lines go.

    Returns:
        A report: model, handler, scale, quantize, io_dtype, input shape, bytes, ops,
        conversion seconds, peak memory of the process and the verification rows.

    Raises:
        FileNotFoundError, ValueError: bad model spec, configuration, scale or size (an input
            side that is not a multiple of its scale's denominator), clear messages.
        IsADirectoryError: ``out`` is a folder.
    """
    from tfsr.data.imresize import scale_pair

    if not str(out).lower().endswith(".tflite"):
        raise ValueError(f"the output file must end in .tflite, got {out!r}")
    check_output_path(out)
    _convert.check_modes(quantize, io_dtype, flag="--")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"--qat_lr must be a positive number, got {learning_rate}")
    if range_percentile and not 50.0 < range_percentile <= 100.0:
        raise ValueError(f"--range_percentile must be 0 or in (50, 100], got {range_percentile}")
    if qat_steps and quantize != "int8":
        raise ValueError(f"--qat_steps={qat_steps} needs --quantize=int8, got {quantize}")
    int_at_least("--calibration_batches", calibration_batches)
    if qat_steps is not None:
        int_at_least("--qat_steps", qat_steps, 0)
    if val_data is None:
        val_data = default_val_data()
    _check_val_data(val_data)  # before the conversion, not after it
    requested = _requested_scale(scale, scale_v, scale_h)
    model = load_model(spec)
    from tfsr.lut.lut_model import LutModel

    if isinstance(model, LutModel):
        raise ValueError(
            f"{spec} is look-up tables: they run from their .npz (python -m tfsr.evaluate / "
            "tfsr.upscale --model=THAT.npz); there is no TFLite export of LUT models"
        )
    handler = export_handler_for(model)
    sesr_int8 = quantize == "int8" and handler.int8 == "qat"
    if qat_steps is None:
        qat_steps = DEFAULT_QAT_STEPS if sesr_int8 else 0
    given = [
        f"--{name}"
        for name, value in (("range_percentile", range_percentile), ("reconstruct", reconstruct))
        if value is not None
    ]
    if given and not sesr_int8:
        raise ValueError(
            f"{', '.join(given)}: only read by the int8 export of SESR models, not by "
            f"--quantize={quantize} of a {handler.name} model"
        )
    if range_percentile is None:
        range_percentile = DEFAULT_RANGE_PERCENTILE
    if reconstruct is None:
        reconstruct = True
    if qat_steps and handler.int8 != "qat":
        raise ValueError(
            f"--qat_steps={qat_steps}: QAT is for SESR models; {handler.name} models are "
            "quantised by the TFLite converter's post-training calibration (use --qat_steps=0)"
        )
    known_scale = None
    if handler.arbitrary_scale:
        if requested is None:
            raise ValueError(
                f"model {spec} ({handler.name}) upscales by any scale: give the scale to export "
                "it at (--scale, or --scale_v and --scale_h)"
            )
        float_model = handler.prepare(model, requested)
        known_scale = requested
        scale = requested[0] if requested[0] == requested[1] else requested
    else:
        float_model = handler.prepare(model)
    _convert.input_signature(float_model, input_hw)  # a size the model cannot take fails here
    if not handler.arbitrary_scale:
        scale = model_scale(float_model)
        if requested is not None and not np.allclose(scale_pair(scale), requested, rtol=1e-6):
            raise ValueError(
                f"model {spec} upscales by {_format_scale(scale)} only, but "
                f"{_format_scale(requested)} was asked for"
            )
    _check_input_fits_scale(input_hw, scale)
    shown = _format_scale(scale)
    log(f"model {spec}: {handler.name}, {shown}, {float_model.count_params()} parameters")

    to_convert = float_model
    dynamic = None  # a non-SESR family's file before its input size is fixed
    patch = calibration_patch_size(scale)
    if quantize == "int8" and handler.int8 == "converter":
        start = time.perf_counter()
        dynamic = _convert.convert_calibrated(
            float_model,
            representative_patches(train_data, scale, calibration_batches),
            io_dtype=io_dtype,
        )
        # The file's input size is set afterwards (and checked to run there); without one, a
        # patch-sized input (a multiple of the scale's denominators: its shapes state its
        # scale), resizable like any other.
        content = _convert.set_input_size(dynamic, input_hw or (patch, patch))
        seconds = time.perf_counter() - start
        log(f"calibrated activation ranges (converter) on {calibration_batches} batches")
    else:
        if quantize == "int8":
            to_convert = quantize_for_export(
                float_model,
                scale,
                train_data=train_data,
                calibration_batches=calibration_batches,
                range_percentile=range_percentile or None,
                reconstruct=reconstruct,
                qat_steps=qat_steps,
                qat_dir=qat_dir,
                learning_rate=learning_rate,
                log=log,
            )
        start = time.perf_counter()
        if handler.int8 == "qat":
            content = _convert.convert(to_convert, quantize, input_hw=input_hw, io_dtype=io_dtype)
        else:
            # As for int8: converted with a dynamic size, then the input fixed, so that the file
            # still runs at other sizes (a fixed-size conversion folds every shape).
            dynamic = _convert.convert(to_convert, quantize, input_hw=None, io_dtype=io_dtype)
            content = _convert.set_input_size(dynamic, input_hw or (patch, patch))
        seconds = time.perf_counter() - start
    bad = _convert.non_builtin_ops(content)
    if bad:
        raise ValueError(f"the converted model has non-builtin ops {bad}; not written")
    _convert.write_atomic(content, out)
    if input_hw:
        size = f"{input_hw[0]}x{input_hw[1]}"
    elif dynamic is not None:  # a converter-path file: sized to a patch, resizable
        size = f"{patch}x{patch} (resizable)"
    else:
        size = "any size"
    log(f"wrote {out}: {len(content)} bytes, {quantize}, input {size}, {seconds:.1f} s")

    report = {
        "model": spec,
        "handler": handler.name,
        "scale": scale if np.isscalar(scale) else list(scale),
        "quantize": quantize,
        "io_dtype": io_dtype,
        "input_hw": list(input_hw) if input_hw else None,
        "bytes": len(content),
        "ops": sorted(set(_convert.tflite_ops(content))),
        "conversion_s": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "qat_steps": qat_steps if quantize == "int8" else 0,
        "reconstruct": bool(reconstruct and sesr_int8),
        "verification": [],
    }

    def content_dynamic():
        if dynamic is not None:  # sized so that its shapes state its scale
            return _convert.set_input_size(dynamic, (patch, patch))
        return _convert.convert(to_convert, quantize, input_hw=None, io_dtype=io_dtype)

    if len(val_data):
        report["verification"] = verify(
            float_model, out, content_dynamic, val_data, scale, model_scale=known_scale
        )
        for row in report["verification"]:
            log(
                f"{row['dataset']}: float {row['float_psnr']:.3f} dB, TFLite "
                f"{row['tflite_psnr']:.3f} dB ({-row['drop_db']:+.3f} dB, {row['runner']})"
            )
    report["peak_rss_mb"] = max(report["peak_rss_mb"], _peak_rss_mb())
    return report
