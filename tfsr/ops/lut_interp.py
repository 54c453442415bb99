"""4-simplex interpolation in a 4-D look-up table: the inference kernel of SR-LUT, MuLUT, RC-LUT.

SR-LUT (Jo and Kim, "Practical Single-Image Super-Resolution Using Look-Up Table", CVPR 2021)
stores a network of four 8-bit inputs as a table sampled every ``interval`` levels: ``L = 256 /
interval + 1`` sample points per input (level ``i * interval``: the last at 256, one step
past the top level, so the top cell is as wide as the others), ``L**4`` rows of ``C``
outputs. A query ``(a, b, c, d)`` is split into MSBs (``v // interval``) and LSBs (``v %
interval``); the LSBs sorted in decreasing order pick one of the 24 simplices of the hypercube
cell, whose 5 vertices (start at the MSB corner, then step +1 along the dimensions in that order)
get the integer weights ``interval - f1, f1 - f2, f2 - f3, f3 - f4, f4`` (``f1 >= ... >= f4``)::

    out = (w0 * T[v0] + w1 * T[v1] + w2 * T[v2] + w3 * T[v3] + w4 * T[v4]) / interval

:func:`lut_interp_4d` runs the compiled op ``Tfsr>LutInterp4D`` (C++, multi-threaded over
TensorFlow's intra-op pool) when available, else its pure-TF twin :func:`lut_interp_4d_twin`
(also the differentiable path used for LUT fine-tuning, and the tests' oracle). Both add the five
products in the same order and divide once, so they agree exactly: bit for bit on int8 tables
(integer sums) and on float tables.

The same library holds ``Tfsr>LutStage``, a whole LUT-model stage fused around this
interpolation; its wrapper and twin are in :mod:`tfsr.lut.lut_stage`.
"""

from __future__ import annotations

import tensorflow as tf

from tfsr.ops import _loader

__all__ = ["lut_interp_4d", "lut_interp_4d_twin", "lut_side"]

_FAMILY = "lut_interp"


def lut_side(interval: int) -> int:
    """L, the number of sample points per input for ``interval`` (17 for 16).

    Intervals 1 and 2 are refused (here and by the compiled ops): 257**4 and 129**4 points per
    table are gigabytes, and interval 1's row indices pass the int32 range of the pure-TF twin.
    """
    if not isinstance(interval, int) or isinstance(interval, bool):
        raise ValueError(f"interval must be an int, got {interval!r}")
    if not (4 <= interval <= 128 and interval & (interval - 1) == 0):
        raise ValueError(
            f"interval must be a power of two in [4, 128] (16: the papers' 17**4 tables), got "
            f"{interval}"
        )
    return 256 // interval + 1


def _check(index, lut, interval: int):
    side = lut_side(interval)
    index = tf.convert_to_tensor(index)
    if index.dtype not in (tf.int32, tf.float32):
        index = tf.cast(index, tf.int32)
    lut = tf.convert_to_tensor(lut)
    if lut.dtype not in (tf.int8, tf.float32):
        raise ValueError(f"lut must be int8 or float32, got {lut.dtype.name}")
    if index.shape.rank is not None and (index.shape.rank < 1 or index.shape[-1] not in (4, None)):
        raise ValueError(f"index must have shape (..., 4), got {index.shape}")
    rows = side**4
    if lut.shape.rank != 2 or lut.shape[0] not in (rows, None):
        raise ValueError(
            f"lut must have shape ({rows}, C) for interval {interval} ({side}^4 sample points), "
            f"got {lut.shape}"
        )
    return index, lut, side


def _check_levels(index: tf.Tensor):
    """Every index value must be an 8-bit level (the compiled op's message): raises at once in
    eager mode, and returns the assertion to depend on in a graph."""
    low, high = tf.reduce_min(index), tf.reduce_max(index)
    bad = tf.where(low < 0, low, high)
    message = "index values must be 8-bit levels in [0, 255], got"
    if tf.executing_eagerly():
        if not (int(low) >= 0 and int(high) <= 255):
            raise tf.errors.InvalidArgumentError(None, None, f"{message} {int(bad)}")
        return tf.no_op()
    return tf.debugging.Assert(tf.logical_and(low >= 0, high <= 255), [message, bad])


def lut_interp_4d_twin(index, lut, interval: int = 16) -> tf.Tensor:
    """Pure-TF 4-simplex interpolation; same contract as :func:`lut_interp_4d`.

    ``index`` may also be float32 holding integer levels: the result is the same, and it is then
    differentiable with respect to ``index`` too (through the weights, as in MuLUT's LUT
    fine-tuning); always differentiable with respect to a float32 ``lut``. An index value outside
    [0, 255] is an InvalidArgumentError, as in the compiled op (the gathers would otherwise fail
    or, on a GPU, read zeros or wrong rows), except under XLA (``jit_compile``), which drops the
    assertion; nothing in tfsr runs the twin under XLA.
    """
    index, lut, side = _check(index, lut, interval)
    shift = interval.bit_length() - 1
    float_index = index if index.dtype == tf.float32 else None
    if float_index is not None:
        index = tf.cast(tf.stop_gradient(float_index), tf.int32)
    with tf.control_dependencies([_check_levels(index)]):
        index = tf.identity(index)
    msb = tf.bitwise.right_shift(index, shift)  # (..., 4)
    lsb = tf.bitwise.bitwise_and(index, interval - 1)
    strides = tf.constant([side**3, side**2, side, 1], tf.int32)
    base = tf.reduce_sum(msb * strides, axis=-1)  # (...,)
    order = tf.argsort(lsb, axis=-1, direction="DESCENDING", stable=True)  # (..., 4)
    if float_index is not None:  # same values, with a gradient with respect to the index
        lsb = float_index - tf.cast(msb * interval, tf.float32)
    frac = tf.gather(lsb, order, batch_dims=len(lsb.shape) - 1)  # (..., 4) decreasing
    step = tf.gather(strides, order)  # (..., 4)
    offsets = tf.concat([tf.zeros_like(step[..., :1]), tf.cumsum(step, axis=-1)], axis=-1)
    vertices = tf.expand_dims(base, -1) + offsets  # (..., 5): the simplex's corners, in order
    zero = tf.zeros_like(frac[..., :1])
    upper = tf.concat(
        [tf.fill(tf.shape(zero), tf.cast(interval, frac.dtype)), frac], axis=-1
    )  # (..., 5)
    lower = tf.concat([frac, zero], axis=-1)
    weights = upper - lower  # (..., 5) integers summing to interval
    acc_dtype = tf.int32 if lut.dtype == tf.int8 and float_index is None else tf.float32
    table = tf.cast(lut, acc_dtype)
    w = tf.cast(weights, acc_dtype)
    terms = tf.unstack(tf.expand_dims(w, -1) * tf.gather(table, vertices), axis=-2)  # 5 x (..., C)
    total = terms[0]
    for term in terms[1:]:  # summed in vertex order, as the compiled op does
        total = total + term
    return tf.cast(total, tf.float32) / tf.constant(float(interval), tf.float32)


def lut_interp_4d(index, lut, interval: int = 16) -> tf.Tensor:
    """4-simplex interpolation of ``lut`` at ``index``.

    Args:
        index: (..., 4) integer 8-bit levels in [0, 255] (cast to int32).
        lut: (L**4, C) int8 or float32 table, L = 256 / interval + 1, row
            ``((a * L + b) * L + c) * L + d`` = outputs at sample point (a, b, c, d).
        interval: sampling interval, a power of two (16: 17**4 = 83,521 rows).

    Returns:
        (..., C) float32.

    Raises:
        ValueError: bad dtypes or shapes (and, from the compiled op, InvalidArgumentError for an
            index value outside [0, 255]).

    Example:
        >>> lut = tf.zeros((17**4, 16), tf.int8)
        >>> lut_interp_4d(tf.zeros((2, 5, 5, 4), tf.int32), lut).shape
        TensorShape([2, 5, 5, 16])
    """
    index, lut, _ = _check(index, lut, interval)
    if index.dtype != tf.int32:
        index = tf.cast(index, tf.int32)
    library = _loader.load(_FAMILY)
    if library is None:
        return lut_interp_4d_twin(index, lut, interval)
    return library.tfsr_lut_interp4d(index, lut, interval=interval)


@tf.RegisterGradient("Tfsr>LutInterp4D")
def _lut_interp_4d_grad(op, grad):
    """Gradient with respect to a float table through the twin (the index gets none)."""
    index, lut = op.inputs
    if lut.dtype != tf.float32:
        return [None, None]
    interval = op.get_attr("interval")
    with tf.GradientTape() as tape:
        tape.watch(lut)
        out = lut_interp_4d_twin(index, lut, interval)
    return [None, tape.gradient(out, lut, output_gradients=grad)]
