"""Meta-SR meta-upscale: arbitrary-scale upsampling with position-dependent filters.

Meta-SR (Hu et al., "Meta-SR: A Magnification-Arbitrary Network for Super-Resolution", CVPR 2019,
arXiv 1903.00875) upsamples NHWC features ``x`` (N, H, W, C_in) by a real scale: output pixel
(i, j) applies its own k x k filter to the low-resolution window centred on its source pixel
(s_v(i), s_h(j)), zero padded::

    out[n, i, j, o] = sum_{a, b, c} x[n, s_v(i) + a - k//2, s_h(j) + b - k//2, c]
                                    * W[p_v(i), p_h(j), a, b, c, o]

The filter depends only on the fractional offsets of the row and the column, which repeat with
period p for a scale p / q in lowest terms, so the weights are a *phase table* W (P_v, P_h, k, k,
C_in, C_out): one filter per distinct (row offset, column offset) pair; for a short fraction
(x2.5: 5 x 5 filters) memory does not grow with the output size. A long fraction (1.234 =
617 / 500, or pi) has a period up to the output size, and the table then costs what the paper's
per-pixel weights cost. The paper's
per-pixel weights (H_out, W_out, k, k, C_in, C_out) are the same thing with P_v = H_out and
P_h = W_out, and are accepted too.

The rule (identical in the C++ op, ``custom_ops/cc/kernels/meta_upscale_geometry.h``):

- default output size: ``floor(r * size + 1e-6)``; the epsilon does not rescue a float32-rounded
  scale beyond r * size of about 16 (``np.float32(1.3)`` at size 100 gives 129), so pass scales as
  Python floats or float64 (:class:`tfsr.layers.MetaUpscale` snaps its scales to p / q);
- phase period P of scale r on an axis with output size ``out``: the smallest P in [1, out] with
  ``|P / r - Q| <= 1e-6`` for the integer ``Q = round(P / r) >= 1`` (so P = p for r = p / q in
  lowest terms, and a float32-rounded 2.3 still counts as 23 / 10); ``P = out`` if there is none
  (a scale such as pi gets one phase per output row);
- source index ``s(i) = (i * Q) // P`` when P / Q was found (exact integer arithmetic: ``i // r``
  and ``int(i / r)`` disagree in floating point, e.g. at i = 13, r = 1.3), else ``floor(i / r)``;
- phase ``p(i) = i mod P_w``, P_w the phase table's size on that axis (P or the output size);
- fractional offset of phase p: ``((p * Q) mod P) / P``, else ``p / r - floor(p / r)``: what a
  Pos2Weight network is fed (:func:`meta_upscale_phases`).

:func:`meta_upscale` runs the compiled op ``Tfsr>MetaUpscale`` (C++ CPU, CUDA) when available and
its pure-TF twin :func:`meta_upscale_twin` otherwise (also the TFLite export path: GATHER,
BATCH_MATMUL, TRANSPOSE, RESHAPE, SUM and friends only; and the tests' oracle).
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tfsr.ops import _loader

__all__ = [
    "MetaUpscalePhases",
    "meta_upscale",
    "meta_upscale_output_size",
    "meta_upscale_phases",
    "meta_upscale_twin",
]

OUTPUT_SIZE_EPSILON = 1e-6
PERIOD_TOLERANCE = 1e-6
MIN_SCALE = 1e-4
MAX_SCALE = 1e4
MAX_SIZE = 2**20  # per spatial axis, input and output

_FAMILY = "meta_upscale"


class MetaUpscalePhases(NamedTuple):
    """The phase structure of one axis.

    Attributes:
        period: P, the number of distinct fractional offsets (rows of the phase table).
        source_index: (out_size,) int64, the low-resolution index s(i) of every output index.
        fractional_offset: (P,) float64, the offset in [0, 1) of phase p = i mod P.
    """

    period: int
    source_index: np.ndarray
    fractional_offset: np.ndarray


# ---------------------------------------------------------------------------------------------
# The rule, in TensorFlow ops: run eagerly (then cached as NumPy) for Python numbers, in the graph
# for tensors.


def _is_static(value) -> bool:
    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool)


def _check_scale(name: str, scale) -> float:
    if not _is_static(scale):
        raise ValueError(f"{name} must be a number or a scalar tensor, got {scale!r}")
    scale = float(scale)
    if not (math.isfinite(scale) and MIN_SCALE <= scale <= MAX_SCALE):
        raise ValueError(
            f"{name} must be a finite number in [{MIN_SCALE}, {MAX_SCALE}], got {scale}"
        )
    return scale


def _check_size(name: str, size) -> int:
    if not isinstance(size, (numbers.Integral, np.integer)) or isinstance(size, bool):
        raise ValueError(f"{name} must be an integer, got {size!r}")
    if not 1 <= int(size) <= MAX_SIZE:
        raise ValueError(f"{name} must be in [1, {MAX_SIZE}], got {size}")
    return int(size)


def _output_size_tf(scale, in_size):
    """floor(r * n + 1e-6) as int64 (the product rounded first, as in C++)."""
    product = scale * tf.cast(in_size, tf.float64)
    return tf.cast(tf.floor(product + OUTPUT_SIZE_EPSILON), tf.int64)


def _rule_tf(scale, out_size):
    """(period, step) of an axis, int64 scalars; step is Q, or 0 when no period <= out exists."""
    p = tf.range(1, out_size + 1, dtype=tf.int64)
    ratio = tf.cast(p, tf.float64) / scale
    q = tf.round(ratio)
    ok = tf.logical_and(q >= 1.0, tf.abs(ratio - q) <= PERIOD_TOLERANCE)
    found = tf.reduce_any(ok)
    first = tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int64)
    period = tf.where(found, first + 1, out_size)
    step = tf.where(found, tf.cast(tf.gather(q, first), tf.int64), tf.constant(0, tf.int64))
    return period, step


def _sources_tf(scale, period, step, count):
    """s(i) for i in [0, count), int64."""
    i = tf.range(count, dtype=tf.int64)
    rational = (i * step) // period
    real = tf.cast(tf.floor(tf.cast(i, tf.float64) / scale), tf.int64)
    return tf.where(step > 0, rational, real)


def _offsets_tf(scale, period, step):
    """Fractional offset of each phase in [0, period), float64."""
    i = tf.range(period, dtype=tf.int64)
    rational = tf.cast((i * step) % period, tf.float64) / tf.cast(period, tf.float64)
    exact = tf.cast(i, tf.float64) / scale
    return tf.where(step > 0, rational, exact - tf.floor(exact))


@functools.lru_cache(maxsize=256)
def _static_axis(scale: float, in_size: int, out_size: int | None):
    """(out_size, period, step, source_index) for Python numbers, computed eagerly once."""
    with tf.init_scope():
        if out_size is None:
            out_size = int(_output_size_tf(tf.constant(scale, tf.float64), in_size))
            if out_size < 1:
                raise ValueError(
                    f"the output would be empty: floor({scale} * {in_size}) = 0; use a larger "
                    "scale or input"
                )
            if out_size > MAX_SIZE:
                raise ValueError(
                    f"output size floor({scale} * {in_size}) = {out_size} exceeds {MAX_SIZE}"
                )
        scale_t = tf.constant(scale, tf.float64)
        period, step = _rule_tf(scale_t, tf.constant(out_size, tf.int64))
        source = _sources_tf(scale_t, period, step, out_size)
        source = source.numpy()
        source.setflags(write=False)  # cached: shared by every caller
        return out_size, int(period), int(step), source


def meta_upscale_output_size(scale: float, in_size: int) -> int:
    """The default output size ``floor(scale * in_size + 1e-6)`` of one axis.

    Raises:
        ValueError: for a non-finite scale or one outside [1e-4, 1e4], a size outside [1, 2**20],
            or an empty or oversize output.
    """
    return _static_axis(_check_scale("scale", scale), _check_size("in_size", in_size), None)[0]


def meta_upscale_phases(scale, in_size, out_size=None):
    """The phase structure of one axis: period, source indices and fractional offsets.

    Args:
        scale: the scale r of the axis (a number, or a scalar tensor).
        in_size: the low-resolution size (an int, or a scalar tensor).
        out_size: the output size; default ``floor(r * in_size + 1e-6)``.

    Returns:
        :class:`MetaUpscalePhases`, with NumPy values when every argument is a Python number and
        tensors otherwise. ``fractional_offset`` has one entry per phase, in phase order: feed it
        (with 1 / r) to a Pos2Weight network to get the (P, ...) rows of the phase table.

    Example:
        >>> phases = meta_upscale_phases(2.5, in_size=4)
        >>> phases.period, phases.source_index.tolist(), phases.fractional_offset.tolist()
        (5, [0, 0, 0, 1, 1, 2, 2, 2, 3, 3], [0.0, 0.4, 0.8, 0.2, 0.6])
    """
    if _is_static(scale) and _is_static(in_size) and (out_size is None or _is_static(out_size)):
        scale = _check_scale("scale", scale)
        in_size = _check_size("in_size", in_size)
        if out_size is not None:
            out_size = _check_size("out_size", out_size)
        out, period, step, source = _static_axis(scale, in_size, out_size)
        with tf.init_scope():
            offsets = _offsets_tf(tf.constant(scale, tf.float64), period, step).numpy()
        return MetaUpscalePhases(period, source.copy(), offsets)
    scale_t = tf.cast(scale, tf.float64)
    if out_size is None:
        out_size = _output_size_tf(scale_t, in_size)
    out_size = tf.cast(out_size, tf.int64)
    period, step = _rule_tf(scale_t, out_size)
    return MetaUpscalePhases(
        period, _sources_tf(scale_t, period, step, out_size), _offsets_tf(scale_t, period, step)
    )


# ---------------------------------------------------------------------------------------------
# Argument handling shared by the op and the twin.


class _Axis(NamedTuple):
    in_size: object  # int or int64 tensor
    out_size: object  # int or int64 tensor
    weight_period: object  # int or int64 tensor (the phase table's size)
    source: object  # (out_size,) int64, NumPy or tensor
    static: bool


def _axis(name, scale, in_size, out_size, weight_period, what) -> _Axis:
    """Checks one axis and computes its table (statically where everything is known)."""
    static = (
        _is_static(scale)
        and isinstance(in_size, int)
        and (out_size is None or _is_static(out_size))
        and isinstance(weight_period, int)
    )
    if static:
        out, period, step, source = _static_axis(
            _check_scale(name, scale), in_size, None if out_size is None else out_size
        )
        if weight_period not in (period, out):
            raise ValueError(
                f"weights have {weight_period} {what} phases but {name} {scale} with output size "
                f"{out} needs {period} (its phase period) or {out} (one per output {what})"
            )
        return _Axis(in_size, out, weight_period, source, True)
    # Dynamic: the same checks as graph assertions (they run before the twin's tables are used;
    # the compiled op makes its own).
    scale_t = tf.cast(scale, tf.float64)
    scale_ok = tf.debugging.Assert(
        tf.logical_and(scale_t >= MIN_SCALE, scale_t <= MAX_SCALE),
        [f"{name} must be a finite number in [{MIN_SCALE}, {MAX_SCALE}], got", scale_t],
    )
    with tf.control_dependencies([scale_ok]):
        in_t = tf.cast(in_size, tf.int64)
        out_t = _output_size_tf(scale_t, in_t) if out_size is None else tf.cast(out_size, tf.int64)
    size_ok = tf.debugging.Assert(
        tf.logical_and(out_t >= 1, out_t <= MAX_SIZE),
        [f"output size along {what}s must be in [1, {MAX_SIZE}], got", out_t],
    )
    with tf.control_dependencies([size_ok]):
        period, step = _rule_tf(scale_t, out_t)
    wp = tf.cast(weight_period, tf.int64)
    period_ok = tf.debugging.Assert(
        tf.logical_or(tf.equal(wp, period), tf.equal(wp, out_t)),
        ["weights have", wp, f"{what} phases but {name} needs", period, "or", out_t],
    )
    with tf.control_dependencies([period_ok]):
        source = tf.identity(_sources_tf(scale_t, period, step, out_t))
    return _Axis(in_t, out_t, wp, source, False)


def _dim(tensor, axis):
    """The static size of an axis, else its size as an int64 tensor."""
    static = tensor.shape[axis]
    return static if static is not None else tf.shape(tensor, out_type=tf.int64)[axis]


def _prepare(x, weights, scale_v, scale_h, output_size):
    """Converts and checks the arguments; returns (x, weights, rows, cols)."""
    x = tf.convert_to_tensor(x)
    weights = tf.convert_to_tensor(weights, dtype_hint=x.dtype)
    if x.shape.rank != 4:
        raise ValueError(f"x must be a 4-D tensor (N, H, W, C_in), got shape {x.shape}")
    if weights.shape.rank != 6:
        raise ValueError(
            f"weights must be a 6-D tensor (P_v, P_h, k, k, C_in, C_out), got shape {weights.shape}"
        )
    if not x.dtype.is_floating or weights.dtype != x.dtype:
        raise ValueError(
            f"x and weights must have the same floating dtype, got {x.dtype.name} and "
            f"{weights.dtype.name}"
        )
    kh, kw, w_cin = weights.shape[2], weights.shape[3], weights.shape[4]
    if kh is not None and kw is not None and (kh != kw or kh % 2 == 0):
        raise ValueError(
            f"weights must hold square kernels of odd size k (dims 2 and 3), got {kh} x {kw}"
        )
    if w_cin is not None and x.shape[3] is not None and w_cin != x.shape[3]:
        raise ValueError(
            f"weights have {w_cin} input channels (dim 4) but x has {x.shape[3]} (dim 3)"
        )
    if output_size is None:
        out_h = out_w = None
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        out_h, out_w = output_size
        for value in output_size:
            if _is_static(value):
                _check_size("output_size", value)
    else:
        raise ValueError(f"output_size must be None or (H_out, W_out), got {output_size!r}")

    for name, value in (("x height", _dim(x, 1)), ("x width", _dim(x, 2))):
        if isinstance(value, int):
            _check_size(name, value)
    rows = _axis("scale_v", scale_v, _dim(x, 1), out_h, _dim(weights, 0), "row")
    cols = _axis("scale_h", scale_h, _dim(x, 2), out_w, _dim(weights, 1), "column")
    return x, weights, rows, cols


# ---------------------------------------------------------------------------------------------
# The pure-TF twin.


def _columns_first(x, weights, rows: _Axis, cols: _Axis):
    """Contract over (column tap, C_in) first, at low-resolution rows, then gather rows.

    Largest tensors: N*H*W_out*k*C_in (gathered columns) and N*H*W_out*P_v*k*C_out.
    """
    k = weights.shape[2]
    half = k // 2
    n_batch, ci, co = _dim(x, 0), _dim(x, 3), _dim(weights, 5)
    pv, ph = rows.weight_period, cols.weight_period
    # Output columns j = u * P_h + q, u in [0, T_u): one batch of columns per column phase q.
    t_u = (cols.out_size + ph - 1) // ph
    j = tf.reshape(tf.range(t_u * ph, dtype=tf.int64), [-1, 1])  # (T_u * P_h, 1)
    src_h = tf.gather(tf.cast(cols.source, tf.int64), tf.minimum(j, cols.out_size - 1))
    col = src_h + tf.range(-half, half + 1, dtype=tf.int64)  # (T_u * P_h, k)
    valid = (j < cols.out_size) & (col >= 0) & (col < cols.in_size)
    col_idx = tf.where(valid, col + 1, 0)  # 0 = the zero column prepended below
    col_idx = tf.transpose(tf.reshape(col_idx, [t_u, ph, k]), [1, 0, 2])  # (P_h, T_u, k)
    x_pad = tf.pad(x, [[0, 0], [0, 0], [1, 0], [0, 0]])
    xc = tf.gather(x_pad, tf.cast(col_idx, tf.int32), axis=2)  # (N, H, P_h, T_u, k, C_in)
    xc = tf.reshape(xc, tf.stack([n_batch, -1, ph, t_u, k * ci]))
    # (P_v, P_h, a, b, c, o) -> (P_h, b, c, P_v, a, o) -> (1, 1, P_h, k*C_in, P_v*k*C_out)
    w = tf.transpose(weights, [1, 3, 4, 0, 2, 5])
    w = tf.reshape(w, tf.stack([1, 1, ph, k * ci, pv * k * co]))
    z = tf.matmul(xc, w)  # (N, H, P_h, T_u, P_v*k*C_out)
    z = tf.reshape(z, tf.stack([n_batch, -1, ph, t_u, pv, k, co]))
    z = tf.transpose(z, [0, 1, 4, 5, 2, 3, 6])  # (N, H, P_v, k, P_h, T_u, C_out)
    z = tf.reshape(z, tf.stack([n_batch, -1, ph * t_u * co]))  # (N, H*P_v*k, P_h*T_u*C_out)
    z = tf.pad(z, [[0, 0], [0, 1], [0, 0]])  # last row: zeros
    # Row i, tap a reads z row ((s_v(i) + a - half) * P_v + p_v(i)) * k + a.
    i = tf.reshape(tf.range(rows.out_size, dtype=tf.int64), [-1, 1])
    row = tf.reshape(tf.cast(rows.source, tf.int64), [-1, 1]) + tf.range(
        -half, half + 1, dtype=tf.int64
    )
    taps = tf.range(k, dtype=tf.int64)
    flat = (row * pv + i % pv) * k + taps
    row_idx = tf.where((row >= 0) & (row < rows.in_size), flat, rows.in_size * pv * k)
    g = tf.gather(z, tf.cast(row_idx, tf.int32), axis=1)  # (N, H_out, k, P_h*T_u*C_out)
    g = tf.reduce_sum(g, axis=2)
    g = tf.reshape(g, tf.stack([n_batch, -1, ph, t_u, co]))
    g = tf.transpose(g, [0, 1, 3, 2, 4])  # (N, H_out, T_u, P_h, C_out)
    g = tf.reshape(g, tf.stack([n_batch, -1, t_u * ph, co]))
    return g[:, :, : cols.out_size, :]


def _per_pixel(x, weights, rows: _Axis, cols: _Axis):
    """Per-pixel weights (P_v = H_out, P_h = W_out): im2col at output size, one matmul per pixel.

    Largest tensor: N*H_out*W_out*k*k*C_in, smaller than the weights themselves when N < C_out.
    """
    k = weights.shape[2]
    half = k // 2
    taps = tf.range(-half, half + 1, dtype=tf.int64)

    def index(axis: _Axis):
        pos = tf.reshape(tf.cast(axis.source, tf.int64), [-1, 1]) + taps  # (out, k)
        return tf.cast(tf.where((pos >= 0) & (pos < axis.in_size), pos + 1, 0), tf.int32)

    x_pad = tf.pad(x, [[0, 0], [1, 0], [1, 0], [0, 0]])
    patches = tf.gather(x_pad, index(rows), axis=1)  # (N, H_out, k, W + 1, C_in)
    patches = tf.gather(patches, index(cols), axis=3)  # (N, H_out, k, W_out, k, C_in)
    return tf.einsum("niajbc,ijabco->nijo", patches, weights)


def _estimates(x, weights, rows: _Axis, cols: _Axis):
    """Peak-tensor sizes (elements per image) of the three forms, or None if not static."""
    h, w = x.shape[1], x.shape[2]
    k, ci, co = weights.shape[2], weights.shape[4], weights.shape[5]
    if None in (h, w, k, ci, co) or not (rows.static and cols.static):
        return None
    ho, wo, pv, ph = rows.out_size, cols.out_size, rows.weight_period, cols.weight_period
    cols_first = h * wo * k * (ci + pv * co)
    rows_first = ho * w * k * (ci + ph * co)
    per_pixel = ho * wo * k * k * ci if (pv == ho and ph == wo) else None
    return cols_first, rows_first, per_pixel


def _transposed(axis_x, weights):
    return tf.transpose(axis_x, [0, 2, 1, 3]), tf.transpose(weights, [1, 0, 3, 2, 4, 5])


def _twin(x, weights, rows: _Axis, cols: _Axis):
    sizes = _estimates(x, weights, rows, cols)
    if sizes is not None:
        cols_first, rows_first, per_pixel = sizes
        if per_pixel is not None and per_pixel <= min(cols_first, rows_first):
            return _per_pixel(x, weights, rows, cols)
        if rows_first < cols_first:
            xt, wt = _transposed(x, weights)
            return tf.transpose(_columns_first(xt, wt, cols, rows), [0, 2, 1, 3])
    return _columns_first(x, weights, rows, cols)


def meta_upscale_twin(x, weights, scale_v, scale_h, output_size=None):
    """Pure-TensorFlow :func:`meta_upscale` (fallback, TFLite export path and test oracle).

    Same arguments and result as :func:`meta_upscale`. Uses gathers, batched matmuls, transposes,
    reshapes and sums only (TFLite builtins); never builds per-pixel weights.
    """
    x, weights, rows, cols = _prepare(x, weights, scale_v, scale_h, output_size)
    return _twin(x, weights, rows, cols)


# ---------------------------------------------------------------------------------------------
# The compiled op.


@tf.RegisterGradient("Tfsr>MetaUpscale")
def _meta_upscale_grad(op, grad):
    library = _loader.load(_FAMILY)
    grad_x, grad_w = library.tfsr_meta_upscale_grad(
        grad,
        op.inputs[0],
        op.inputs[1],
        op.inputs[2],
        deterministic=op.get_attr("deterministic"),
    )
    return [grad_x, grad_w, None, None]


@tf.RegisterGradient("Tfsr>MetaUpscaleGrad")
def _meta_upscale_grad_grad(op, grad_gx, grad_gw):
    """Second order: the gradient op is linear in each input, so its gradient is made of the
    forward and gradient ops again. With ``gx = A(w)^T g`` and ``gw = B(x)^T g`` and upstream
    ``u`` (like x) and ``v`` (like w): d/dg = A(w) u + B(x) v = fwd(u, w) + fwd(x, v),
    d/dx = grad_x of the forward at weights v, d/dw = grad_w of the forward at input u."""
    library = _loader.load(_FAMILY)
    g, x, w, scales = op.inputs
    det = op.get_attr("deterministic")
    sizes = tf.shape(g)[1:3]
    terms, grad_x, grad_w = [], None, None
    if grad_gx is not None:
        terms.append(library.tfsr_meta_upscale(grad_gx, w, scales, sizes, deterministic=det))
        grad_w = library.tfsr_meta_upscale_grad(g, grad_gx, w, scales, deterministic=det)[1]
    if grad_gw is not None:
        terms.append(library.tfsr_meta_upscale(x, grad_gw, scales, sizes, deterministic=det))
        grad_x = library.tfsr_meta_upscale_grad(g, x, grad_gw, scales, deterministic=det)[0]
    grad_g = tf.add_n(terms) if terms else None
    return [grad_g, grad_x, grad_w, None]


@functools.cache
def _gpu_kernel_types() -> frozenset:
    """The dtypes (enums) the loaded library has GPU kernels of (none for a CPU-only build:
    no nvcc, or ``TFSR_NO_CUDA=1``); read once, after the library is loaded."""
    from tensorflow.python.framework import kernels

    types = set()
    for kernel in kernels.get_registered_kernels_for_op("Tfsr>MetaUpscale").kernel:
        if kernel.device_type == "GPU":
            for constraint in kernel.constraint:
                types.update(constraint.allowed_values.list.type)
    return frozenset(types)


def _compiled_op_usable(dtype: tf.DType):
    library = _loader.load(_FAMILY)
    if library is None:
        return None
    if dtype in (tf.float16, tf.bfloat16) and not (
        tf.config.list_physical_devices("GPU") and dtype.as_datatype_enum in _gpu_kernel_types()
    ):
        return None  # half types have GPU kernels only, when the library was built with CUDA
    return library


def meta_upscale(x, weights, scale_v, scale_h, output_size=None, *, deterministic=False):
    """Meta-SR meta-upscale of NHWC features by real scales, with phase-table filters.

    ``out[n, i, j, o] = sum_{a, b, c} x[n, s_v(i) + a - k//2, s_h(j) + b - k//2, c] *
    weights[p_v(i), p_h(j), a, b, c, o]`` with zero padding; see the module docstring for s and p.
    Runs the compiled op (CPU: float32/float64; GPU: also float16/bfloat16) when built, else the
    pure-TF twin. Differentiable in ``x`` and ``weights`` (the scales are not).

    Args:
        x: (N, H, W, C_in) features.
        weights: (P_v, P_h, k, k, C_in, C_out), k odd: one filter per phase pair. P_v is the phase
            period of ``scale_v`` (``meta_upscale_phases(scale_v, H).period``) or H_out for
            per-pixel weights; likewise P_h.
        scale_v: vertical scale, a number or scalar tensor in [1e-4, 1e4].
        scale_h: horizontal scale.
        output_size: (H_out, W_out); default ``floor(scale * size + 1e-6)`` on each axis.
        deterministic: reduce the weight gradient in a fixed order on GPU too (the CPU kernel
            always does; ``tf.config.experimental.enable_op_determinism()`` also turns it on).

    Returns:
        (N, H_out, W_out, C_out), the dtype of ``x``.

    Raises:
        ValueError: for bad ranks, dtypes, even or non-square kernels, channel mismatches, bad
            scales or output sizes, or phase tables that do not fit the scale (when static;
            otherwise the op raises InvalidArgumentError).

    Example:
        >>> x = tf.random.normal([1, 8, 8, 4])
        >>> period = meta_upscale_phases(2.5, 8).period  # 5
        >>> weights = tf.random.normal([period, period, 3, 3, 4, 3])
        >>> meta_upscale(x, weights, 2.5, 2.5).shape
        TensorShape([1, 20, 20, 3])
    """
    x, weights, rows, cols = _prepare(x, weights, scale_v, scale_h, output_size)
    library = _compiled_op_usable(x.dtype)
    if library is None:
        return _twin(x, weights, rows, cols)
    scales = tf.stack([tf.cast(scale_v, tf.float64), tf.cast(scale_h, tf.float64)])
    sizes = tf.cast(tf.stack([rows.out_size, cols.out_size]), tf.int32)
    if rows.static and cols.static:
        sizes = tf.constant([rows.out_size, cols.out_size], tf.int32)
    return library.tfsr_meta_upscale(x, weights, scales, sizes, deterministic=deterministic)
