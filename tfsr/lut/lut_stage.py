"""One stage of a LUT model on an 8-bit image: the compiled op ``Tfsr>LutStage`` or its twin.

The compiled op runs a whole stage of the rule of :mod:`tfsr.lut.patterns` in one pass over the
image (every pattern, every rotation, the RC modules, interpolation, averaging, requantisation and
depth-to-space), in C++ on TensorFlow's intra-op threads. Its pure-TF twin
:func:`lut_stage_twin` is :func:`tfsr.lut.patterns.run_stage` with table units
(:func:`table_unit`): the fallback without the compiled library and the tests' oracle. Both give
identical outputs (integer interpolation sums, RC means added in window order, RC levels by
:func:`tfsr.lut.rc_module.rc_thresholds`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from tfsr.lut.patterns import PATTERNS, RC_WINDOWS, gather_pattern, run_stage
from tfsr.lut.rc_module import rc_read, rc_thresholds, table_slopes
from tfsr.ops import _loader
from tfsr.ops.lut_interp import lut_interp_4d_twin

__all__ = ["lut_stage", "lut_stage_twin", "table_unit"]


def table_unit(
    lut: tf.Tensor, rc: tf.Tensor | None, pattern: str, interval: int, differentiable: bool
) -> Callable[[tf.Tensor], tf.Tensor]:
    """One pattern's unit in table form: (N, H, W, 1) levels (float32) -> (N, H, W, scale**2).

    Args:
        lut: (L**4, scale**2) table, int8 (or float32 when ``differentiable``).
        rc: (window**2, 256) float32 RC tables, or None without an RC module.
        pattern: the pattern letter.
        interval: sampling interval of ``lut``.
        differentiable: interpolate at float levels, so that the gradient reaches the tables and
            the levels (fine-tuning); else at integer levels (the same values). Pure TF both ways.
    """

    def unit(levels):
        if rc is not None:
            # Fine-tuning: the table's finite-difference slopes carry the gradient to the levels
            # (the previous stage), as the MLP's slopes do in training.
            slopes = tf.stop_gradient(table_slopes(rc)) if differentiable else None
            levels = rc_read(rc, levels, RC_WINDOWS[pattern], slopes)
        index = gather_pattern(levels, pattern)  # (N, H, W, 4)
        # Pure TF either way: as the oracle of the compiled stage, the twin must not call the
        # compiled interpolation (it shares its simplex code with the compiled stage).
        if not differentiable:
            index = tf.cast(index, tf.int32)
        return lut_interp_4d_twin(index, lut, interval)

    return unit


def _check(image, luts, rcs, stage):
    patterns = stage["patterns"]
    if len(luts) != len(patterns):
        raise ValueError(f"stage {patterns!r} needs {len(patterns)} tables, got {len(luts)}")
    if len(rcs) != (len(patterns) if stage.get("rc") else 0):
        raise ValueError(
            f"stage {stage!r} needs {len(patterns) if stage.get('rc') else 0} RC tables, "
            f"got {len(rcs)}"
        )
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise ValueError(f"image must be uint8 levels, got {image.dtype.name}")
    return image


def lut_stage_twin(
    image, luts: Sequence, rcs: Sequence, stage: dict, interval: int = 16, last: bool = False
) -> tf.Tensor:
    """Pure-TF twin of :func:`lut_stage` (same contract)."""
    image = _check(image, luts, rcs, stage)
    patterns = stage["patterns"]
    units = [
        table_unit(luts[p], rcs[p] if rcs else None, patterns[p], interval, False)
        for p in range(len(patterns))
    ]
    out = run_stage(tf.cast(image, tf.float32), 0, stage, lambda s, p, x: units[p](x), last)
    return out if last else tf.cast(out, tf.uint8)


# Inference only (8-bit levels in, table lookups): no gradient, rather than a LookupError from a
# tape that happens to record it. LUT fine-tuning (``LutModel(..., training=True)``) runs the
# differentiable twin instead.
tf.no_gradient("Tfsr>LutStage")


def lut_stage(
    image, luts: Sequence, rcs: Sequence, stage: dict, interval: int = 16, last: bool = False
) -> tf.Tensor:
    """One stage of a LUT model on an 8-bit image.

    Args:
        image: (N, H, W, 1) uint8 levels (H, W at least the patterns' and RC windows' reach:
            1 for S alone, 2 with D or Y or a 5x5 RC window, 3 with a 7x7 one).
        luts: the stage's int8 tables, one (L**4, scale**2) per pattern, in pattern order.
        rcs: the stage's RC tables, one (window**2, 256) float32 per pattern; empty without RC.
        stage: ``{"scale", "patterns", "rc"}`` (see :class:`tfsr.lut.LutNet`).
        interval: sampling interval of the 4-D tables.
        last: the model's last stage: return ``y / 255`` in [0, 1] instead of 8-bit levels.

    Returns:
        (N, rH, rW, 1): uint8 levels, or float32 in [0, 1] when ``last``.

    Example:
        >>> luts = [tf.zeros((17**4, 4), tf.int8)]
        >>> stage = {"scale": 2, "patterns": "S"}
        >>> lut_stage(tf.zeros((1, 5, 5, 1), tf.uint8), luts, [], stage).shape
        TensorShape([1, 10, 10, 1])
    """
    library = _loader.load("lut_interp")
    if library is None:
        return lut_stage_twin(image, luts, rcs, stage, interval, last)
    image = _check(image, luts, rcs, stage)
    patterns = stage["patterns"]
    return library.tfsr_lut_stage(
        image,
        luts=list(luts),
        rc_tables=list(rcs),
        rc_thresholds=rc_thresholds(),
        offsets=[o for p in patterns for tap in PATTERNS[p] for o in tap],
        windows=[RC_WINDOWS[p] for p in patterns] if rcs else [],
        scale=int(stage["scale"]),
        interval=interval,
        out_type=tf.float32 if last else tf.uint8,
    )
