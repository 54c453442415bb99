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
    rounded = tf.sign(values) * tf.floor(tf.abs(values) + 0.5)
    return tf.clip_by_value(rounded, -UNIT_RANGE, UNIT_RANGE)


def check_pattern(pattern: str) -> str:
    if pattern not in PATTERNS:
        raise ValueError(
            f"unknown sampling pattern {pattern!r}; expected one of {sorted(PATTERNS)}"
        )
    return pattern


def pattern_extent(pattern: str) -> int:
    """How many rows/columns the pattern reaches below/right of its anchor."""
    return max(max(r, c) for r, c in PATTERNS[check_pattern(pattern)])


def gather_pattern(z: tf.Tensor, pattern: str) -> tf.Tensor:
    """The 4 pattern pixels of every anchor: (N, H, W, 1) -> (N, H, W, 4), symmetric padding."""
    e = pattern_extent(pattern)
    h, w = tf.shape(z)[1], tf.shape(z)[2]
    padded = tf.pad(z, [[0, 0], [0, e], [0, e], [0, 0]], mode="SYMMETRIC")
    taps = [padded[:, r : r + h, c : c + w, :] for r, c in PATTERNS[pattern]]
    return tf.concat(taps, axis=-1)


def round_ste(x: tf.Tensor) -> tf.Tensor:
    """Rounds half away from zero forward; identity gradient (straight-through)."""
    rounded = tf.sign(x) * tf.floor(tf.abs(x) + 0.5)
    return x + tf.stop_gradient(rounded - x)


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
            out = unit(s, p, tf.image.rot90(x, k))  # (N, H', W', scale**2)
            out = tf.image.rot90(depth_to_space(out, scale), (ROTATIONS - k) % ROTATIONS)
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
