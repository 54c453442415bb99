"""Sampling patterns, the rotation ensemble and the stage rule shared by LUT nets and LUT models.

A LUT-convertible network sees only 4 pixels at a time, so that it can be stored as a 4-D table.
The pixels are picked by a *pattern* of offsets (row, column) from the anchor pixel:

- ``S`` (SR-LUT): a 2x2 square ``(0,0) (0,1) (1,0) (1,1)``;
- ``D`` (MuLUT): the dilated square ``(0,0) (0,2) (2,0) (2,2)``;
- ``Y`` (MuLUT): a Y shape ``(0,0) (1,1) (1,2) (2,1)``.

The *rotation ensemble* runs a unit on the image rotated by 0, 90, 180 and 270 degrees, rotates
the outputs back and averages, which widens the receptive field to the pattern's four rotations.
Images are padded at the bottom and right by the pattern's extent with symmetric padding.

A *stage* averages the ensembles of its patterns (values in 8-bit levels, ``[-127, 127]`` per
unit) and adds them to its input as a residual; a stage of scale r adds them to the
nearest-neighbour upscale of its input. All stages but the last re-quantise their output to
integer levels in [0, 255] (the next stage's LUT index), the last returns ``y / 255`` in [0, 1].
The same rule runs in :class:`tfsr.lut.LutNet` (MLP units, for training) and
:class:`tfsr.lut.LutModel` (table units, for inference and fine-tuning) through
:func:`run_stages`, so the two differ only in what a unit computes.

References: SR-LUT (Jo and Kim, CVPR 2021); MuLUT (Li et al., ECCV 2022); RC-LUT (Liu et al.,
"Reconstructed Convolution Module Based Look-Up Tables for Efficient Image Super-Resolution",
ICCV 2023).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

PATTERNS: dict[str, tuple[tuple[int, int], ...]] = {
    "S": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "D": ((0, 0), (0, 2), (2, 0), (2, 2)),
    "Y": ((0, 0), (1, 1), (1, 2), (2, 1)),
}
# RC window side per pattern (RC-LUT: 5x5 for S, 7x7 for D, 3x3 for Y).
RC_WINDOWS = {"S": 5, "D": 7, "Y": 3}
ROTATIONS = 4
LEVELS = 255.0  # 8-bit image levels
UNIT_RANGE = 127.0  # a unit's output in levels: [-127, 127], stored as int8


def round_unit_values(values: tf.Tensor) -> tf.Tensor:
    """Unit outputs as a table stores them: rounded half away from zero, clipped to
    [-UNIT_RANGE, UNIT_RANGE] (float; cast to int8 to store)."""
    return tf.clip_by_value(round_half_away(values), -UNIT_RANGE, UNIT_RANGE)


def check_pattern(pattern: str) -> str:
    if pattern not in PATTERNS:
        raise ValueError(
            f"unknown sampling pattern {pattern!r}; expected one of {sorted(PATTERNS)}"
        )
    return pattern


def pattern_extent(pattern: str) -> int:
    """How many rows/columns the pattern reaches below/right of its anchor."""
    return max(max(r, c) for r, c in PATTERNS[check_pattern(pattern)])


def pick_taps(padded: tf.Tensor, offsets: Sequence[tuple[int, int]], size: int) -> tf.Tensor:
    """(N, H + size - 1, W + size - 1, 1) -> (N, H, W, len(offsets)): channel k of anchor (i, j)
    is ``padded[:, i + r_k, j + c_k]`` for the k-th offset ``(r_k, c_k)`` (both below ``size``).

    For integer levels, what the LUT code passes (other values come back rounded). One
    convolution with a one-hot kernel rather than a slice per offset: a graph of a few nodes
    instead of dozens (the RC windows have up to 49 taps, and a LUT model repeats them for every
    pattern and rotation), and a faster gradient, the copy's. On a CPU each output is one input
    times 1 plus zeros, exact; the result is rounded (straight through) so that it stays exact
    where a convolution may not be (TF32, or FFT and Winograd algorithms on GPUs).
    """
    kernel = np.zeros((size, size, 1, len(offsets)), np.float32)
    for k, (r, c) in enumerate(offsets):
        kernel[r, c, 0, k] = 1.0
    taps = tf.nn.conv2d(padded, tf.constant(kernel, padded.dtype), 1, "VALID")
    return taps + tf.stop_gradient(tf.round(taps) - taps)


def gather_pattern(z: tf.Tensor, pattern: str) -> tf.Tensor:
    """The 4 pattern pixels of every anchor: (N, H, W, 1) -> (N, H, W, 4), symmetric padding."""
    e = pattern_extent(pattern)
    padded = tf.pad(z, [[0, 0], [0, e], [0, e], [0, 0]], mode="SYMMETRIC")
    return pick_taps(padded, PATTERNS[pattern], e + 1)


def round_half_away(x: tf.Tensor) -> tf.Tensor:
    """Rounds half away from zero (2.5 -> 3, -2.5 -> -3; ``tf.round`` rounds half to even)."""
    return tf.sign(x) * tf.floor(tf.abs(x) + 0.5)


def round_ste(x: tf.Tensor) -> tf.Tensor:
    """Rounds half away from zero forward; identity gradient (straight-through)."""
    return x + tf.stop_gradient(round_half_away(x) - x)


def quantize_levels(x: tf.Tensor) -> tf.Tensor:
    """[0, 1] image -> integer levels in [0, 255] (float), straight-through gradient."""
    return tf.clip_by_value(round_ste(x * LEVELS), 0.0, LEVELS)


def depth_to_space(x: tf.Tensor, scale: int) -> tf.Tensor:
    return x if scale == 1 else tf.nn.depth_to_space(x, scale)


def nearest_upscale(x: tf.Tensor, scale: int) -> tf.Tensor:
    """(N, H, W, C) -> (N, sH, sW, C) by repetition."""
    if scale == 1:
        return x
    return tf.repeat(tf.repeat(x, scale, axis=1), scale, axis=2)


UnitFn = Callable[[int, int, tf.Tensor], tf.Tensor]


def rot90(x: tf.Tensor, k: int) -> tf.Tensor:
    """(N, H, W, C) rotated by ``k`` quarter turns counter-clockwise, as ``tf.image.rot90``
    (``np.rot90`` over axes 1, 2), without its run-time checks and branches (``k`` is static):
    a LUT model rotates every unit's input and output."""
    k %= ROTATIONS
    if k == 0:
        return x
    if k == 2:
        return tf.reverse(x, [1, 2])
    transposed = tf.transpose(x, [0, 2, 1, 3])
    return tf.reverse(transposed, [1] if k == 1 else [2])


def run_stage(x: tf.Tensor, s: int, stage: dict, unit: UnitFn, last: bool) -> tf.Tensor:
    """Stage ``s`` of the stage rule on (N, H, W, 1) integer levels (float32).

    Returns (N, rH, rW, 1): integer levels in [0, 255] (float32) for a middle stage, or the last
    stage's output in [0, 1].
    """
    scale = int(stage["scale"])
    total = None
    patterns = stage["patterns"]
    for p in range(len(patterns)):
        for k in range(ROTATIONS):
            out = unit(s, p, rot90(x, k))  # (N, H', W', scale**2)
            out = rot90(depth_to_space(out, scale), ROTATIONS - k)
            total = out if total is None else total + out
    y = nearest_upscale(x, scale) + total / float(ROTATIONS * len(patterns))
    if last:
        return tf.clip_by_value(y, 0.0, LEVELS) / LEVELS
    return tf.clip_by_value(round_ste(y), 0.0, LEVELS)


def run_stages(
    levels: tf.Tensor,
    stages: Sequence[dict],
    unit: UnitFn,
) -> tf.Tensor:
    """Runs the stage rule on an 8-bit image.

    Args:
        levels: (N, H, W, 1) integer levels in [0, 255], float32.
        stages: dicts with ``scale`` (int) and ``patterns`` (string of pattern letters).
        unit: ``unit(stage, pattern_number, rotated_levels) -> (N, H', W', scale**2)``: one
            pattern's unit on a rotated (N, H', W', 1) level image, in levels.

    Returns:
        (N, sH, sW, 1) float32 in [0, 1], s the product of the stage scales.
    """
    x = levels
    for s, stage in enumerate(stages):
        x = run_stage(x, s, stage, unit, last=s + 1 == len(stages))
    return x
