"""MATLAB-exact bicubic resizing, MATLAB rounding to uint8 and ``modcrop``.

``imresize`` reproduces MATLAB's ``imresize(image, scale, 'bicubic')`` bit for bit on uint8 images:
the cubic convolution kernel with a = -0.5, antialiasing when shrinking (the kernel is widened by
``1 / scale`` and scaled by ``scale``), symmetric (mirror) border handling, output size
``ceil(scale * size)`` and one pass per axis, the axis with the smaller scale first. This is how
the LR images of every SR benchmark were made (Set5 ``LR_bicubic``); ``tf.image.resize`` and PIL
give different pixels.

Rounding of the intermediate image: MATLAB keeps the class of its input between the two passes,
so a uint8 image is rounded to uint8 after the first pass as well as after the second. We do the
same; it is what makes the official Set5 LR files come out bit-exactly (keeping the intermediate
in float changes about one Set5 x2 LR value in seven, by 1 or 2). Float inputs keep a float
intermediate.

Both NumPy arrays and ``tf.Tensor`` are accepted; tensors are resized with TF ops (a gather and a
multiply-add per kernel tap), so the function works in eager mode, ``tf.function`` and ``tf.data``
``map``, for static and for run-time image sizes. All arithmetic is float64, as MATLAB's. The
kernel weights and source indices of an axis are computed in NumPy: once, when the graph is built,
where the size is static; through ``tf.numpy_function`` where it is known only at run time (exact,
but such a graph cannot be saved as a SavedModel or converted to TFLite; see
``_run_time_contributions``).

Reference: R. Keys, "Cubic convolution interpolation for digital image processing", IEEE TASSP
1981 (the kernel); MATLAB ``imresize`` documentation (antialiasing and border conventions).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import tensorflow as tf

__all__ = ["imresize", "modcrop", "output_length", "scale_pair", "scale_ratio", "to_uint8"]

# Support of the a = -0.5 cubic kernel: it is zero for |x| >= 2.
_KERNEL_WIDTH = 4.0
# scale * size is computed in floating point (1.1 * 10 = 11.000000000000002); an output length
# within this of an integer is taken as that integer instead of gaining one pixel from ceil.
_SIZE_TOLERANCE = 1e-9


# --------------------------------------------------------------------------------------------
# Kernel weights and source indices, one row per output pixel.


def _cubic(x):
    """Keys' cubic convolution kernel with a = -0.5 (NumPy, float64)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1.0)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1.0) & (ax <= 2.0))
    return near + far


def bicubic_contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based source indices of a 1-D MATLAB bicubic resize.

    Returns:
        ``(weights, indices)``, both (out_len, taps): output pixel ``i`` is
        ``sum_t weights[i, t] * input[indices[i, t]]``; each row of weights sums to 1 and the
        indices are mirrored into ``[0, in_len)`` (symmetric border, edge pixel repeated).
    """
    width = _KERNEL_WIDTH / scale if scale < 1.0 else _KERNEL_WIDTH
    taps = int(math.ceil(width)) + 2
    # Output pixel centres (1-based, as MATLAB) mapped into input coordinates.
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # (out_len, taps), 1-based
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if scale < 1.0 else _cubic(dist)
    weights = weights / np.sum(weights, axis=1, keepdims=True)
    indices = mirror_index((idx - 1.0).astype(np.int64), in_len)
    return weights, indices


def mirror_index(index, size):
    """MATLAB's symmetric border: index ... -2 -1 | 0 .. size-1 | size ... maps to
    ... 1 0 | 0 .. size-1 | size-1 ... (edge pixel repeated); NumPy arrays or tensors."""
    if tf.is_tensor(index):
        period = tf.math.floormod(index, 2 * size)
        return tf.where(period < size, period, 2 * size - 1 - period)
    period = np.mod(index, 2 * size)
    return np.where(period < size, period, 2 * size - 1 - period)


def _run_time_contributions(in_len, out_len, scale) -> tuple[tf.Tensor, tf.Tensor]:
    """``bicubic_contributions`` for a size (or scale) known only when the graph runs.

    The NumPy code itself runs, through ``tf.numpy_function``: a TF-ops twin is not bit-exact
    in a graph, because Grappler reassociates float arithmetic with constants (``1.5 * x**3``,
    ``x / 2.5``), and uint8 outputs sit on exact .5 ties often enough for one ulp to flip them.
    """

    def weights_and_indices(n, o, s):
        w, i = bicubic_contributions(int(n), int(o), float(s))
        return w, i.astype(np.int32)

    weights, indices = tf.numpy_function(
        weights_and_indices,
        # A Python float would enter as float32: make it a float64 tensor here.
        [
            in_len,
            out_len,
            tf.cast(scale, tf.float64) if tf.is_tensor(scale) else tf.constant(scale, tf.float64),
        ],
        [tf.float64, tf.int32],
        stateful=False,
    )
    weights.set_shape([None, None])
    indices.set_shape([None, None])
    return weights, indices


# --------------------------------------------------------------------------------------------
# One pass along one axis of an (N, H, W, C) float64 array.


def _broadcast_shape(length: int, axis: int) -> list[int]:
    shape = [1, 1, 1, 1]
    shape[axis] = length
    return shape


def _resize_axis_np(x: np.ndarray, axis: int, scale: float, out_len: int) -> np.ndarray:
    weights, indices = bicubic_contributions(x.shape[axis], out_len, scale)
    bshape = _broadcast_shape(out_len, axis)
    out = weights[:, 0].reshape(bshape) * np.take(x, indices[:, 0], axis=axis)
    for t in range(1, weights.shape[1]):
        out += weights[:, t].reshape(bshape) * np.take(x, indices[:, t], axis=axis)
    return out


def _resize_axis_tf(x: tf.Tensor, axis: int, scale, out_len) -> tf.Tensor:
    in_len = x.shape[axis]
    if in_len is not None and not tf.is_tensor(out_len) and not tf.is_tensor(scale):
        w, i = bicubic_contributions(in_len, out_len, scale)
        weights, indices = tf.constant(w), tf.constant(i.astype(np.int32))
    else:
        weights, indices = _run_time_contributions(tf.shape(x)[axis], out_len, scale)
    return sum_taps_tf(x, axis, weights, indices)


def sum_taps_tf(x: tf.Tensor, axis: int, weights: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """``sum_t weights[:, t] * x[indices[:, t]]`` along ``axis`` of float64 ``x`` (any rank).

    The taps are summed one by one in order, in a while loop that graph optimisation cannot
    regroup, as the NumPy path and MATLAB sum them: the same float64 operations in the same
    order, so the same bits.
    """
    bshape = [1] * x.shape.rank
    bshape[axis] = -1

    def tap(t):
        return tf.reshape(weights[:, t], bshape) * tf.gather(x, indices[:, t], axis=axis)

    _, out = tf.while_loop(
        lambda t, acc: t < tf.shape(weights)[1],
        lambda t, acc: (t + 1, acc + tap(t)),
        (tf.constant(1), tap(0)),
    )
    return out


# --------------------------------------------------------------------------------------------
# Public API.


def _pair(value, name: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be a number or a (vertical, horizontal) pair, got {value!r}"
            )
        return tuple(value)
    return (value, value)


def scale_pair(scale) -> tuple[float, float]:
    """``(scale_v, scale_h)`` of a scale given as one number or a (vertical, horizontal) pair.

    Raises:
        ValueError: not one or two positive, finite numbers.

    Example:
        >>> scale_pair(2), scale_pair((3, 1.5))
        ((2.0, 2.0), (3.0, 1.5))
    """
    pair = _pair(scale, "scale")
    try:
        pair = tuple(float(s) for s in pair)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"scale must be a positive number or a (vertical, horizontal) pair, got {scale!r}"
        ) from error
    if not all(s > 0 and math.isfinite(s) for s in pair):
        raise ValueError(f"scale must be positive and finite, got {scale!r}")
    return pair


def scale_name(scale) -> str:
    """The scale as benchmark folders, files and messages spell it: 2 -> "2", 2.5 -> "2.5"; a
    pair of different vertical and horizontal scales as "2x3.5".

    Example:
        >>> scale_name(2), scale_name((2.5, 2.5)), scale_name((2, 3.5))
        ('2', '2.5', '2x3.5')
    """
    sv, sh = scale_pair(scale)
    return f"{sv:g}" if sv == sh else f"{sv:g}x{sh:g}"


def scale_ratio(scale: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(p, q)`` with ``scale == p / q`` in lowest terms: 2 -> (2, 1), 2.5 -> (5, 2).

    Raises:
        ValueError: a scale that is not positive and finite, or not such a ratio with
            ``q <= max_denominator`` (pi).
    """
    value = float(scale)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"scale must be positive and finite, got {scale!r}")
    frac = Fraction(value).limit_denominator(max_denominator)
    if abs(float(frac) - value) > 1e-9 * value:
        raise ValueError(f"scale {scale!r} is not a ratio p/q with q <= {max_denominator}")
    return frac.numerator, frac.denominator


def _image_rank(image, name: str) -> int:
    """2, 3 or 4; raises for other ranks and for tensors of unknown rank."""
    rank = image.ndim if isinstance(image, np.ndarray) else image.shape.rank
    if rank not in (2, 3, 4):
        shape = "unknown rank" if rank is None else f"shape {tuple(image.shape)}"
        raise ValueError(
            f"{name} expects an image of shape (H, W), (H, W, C) or (N, H, W, C), got {shape}"
        )
    return rank


def _round_uint8_np(x: np.ndarray) -> np.ndarray:
    # MATLAB: round half away from zero, then saturate; on [0, 255] that is floor(x + 0.5).
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5)


def round_uint8_tf(x: tf.Tensor) -> tf.Tensor:
    """MATLAB's uint8 conversion of float values: saturate to [0, 255], round half up."""
    return tf.floor(tf.clip_by_value(x, 0.0, 255.0) + 0.5)


def _check_dtype(dtype, name: str) -> bool:
    """Returns True for uint8, False for a float dtype; raises otherwise."""
    dtype = tf.as_dtype(dtype)
    if dtype == tf.uint8:
        return True
    if dtype.is_floating:
        return False
    raise TypeError(f"{name} must be uint8 or floating point, got dtype {dtype.name}")


def imresize(image, scale=None, output_size=None):
    """Resizes an image exactly as MATLAB ``imresize(image, scale, 'bicubic')`` does.

    Give either ``scale`` or ``output_size``. With ``scale`` the output size is
    ``ceil(scale * size)`` per axis and the kernel uses ``scale`` itself; with ``output_size`` the
    per-axis scale is ``output / input``, as in MATLAB. Shrinking is antialiased.

    Args:
        image: (H, W), (H, W, C) or (N, H, W, C); NumPy array (or anything ``np.asarray`` takes)
            or ``tf.Tensor``; uint8 or floating point (any range: no clipping for floats).
        scale: a positive number (2, 3, 1/4, 2.5, 1.3 ...) or a ``(scale_v, scale_h)`` pair.
        output_size: ``(height, width)`` of the result.

    Returns:
        The resized image, the same kind (NumPy or TF) and layout as ``image``, with H and W
        replaced by the output size. uint8 for uint8 input, rounded half away from zero and
        clipped to 0..255 after each axis pass as MATLAB does; float32 for float input.

    Raises:
        ValueError: neither or both of scale and output_size, a non-positive scale or size, or an
            image that is not 2-, 3- or 4-D.
        TypeError: an image that is neither uint8 nor floating point.

    Example:
        >>> hr = np.zeros((12, 9, 3), np.uint8)
        >>> imresize(hr, 1 / 3).shape
        (4, 3, 3)
        >>> imresize(hr, output_size=(5, 7)).shape
        (5, 7, 3)
    """
    if (scale is None) == (output_size is None):
        raise ValueError("imresize needs exactly one of scale and output_size")
    tensor_input = tf.is_tensor(image)
    if not tensor_input:
        image = np.asarray(image)
    rank = _image_rank(image, "imresize")
    is_uint8 = _check_dtype(image.dtype, "imresize image")

    if scale is not None:
        scales, sizes = scale_pair(scale), None
    else:
        sizes = tuple(int(s) for s in _pair(output_size, "output_size"))
        if not all(s > 0 for s in sizes):
            raise ValueError(f"output_size must be two positive integers, got {output_size!r}")

    if tensor_input:
        return _imresize_tf(image, rank, scales if sizes is None else None, sizes, is_uint8)
    return _imresize_np(image, rank, scales if sizes is None else None, sizes, is_uint8)


def _to_nhwc(rank: int):
    """Functions mapping an image of this rank to (N, H, W, C) and back (via reshape-free ops)."""
    expand = {2: lambda x: x[None, :, :, None], 3: lambda x: x[None], 4: lambda x: x}[rank]
    squeeze = {2: lambda x: x[0, :, :, 0], 3: lambda x: x[0], 4: lambda x: x}[rank]
    return expand, squeeze


def _axis_step(axis: int, in_len, scales, sizes) -> tuple:
    """``(axis, scale, out_len)`` of the pass along ``axis`` (1: H, 2: W) of an (N, H, W, C) image.

    ``in_len`` is a Python int, or a float64 scalar tensor for a size known only at run time;
    scale and output length come out as Python numbers or tensors accordingly.
    """
    k = axis - 1
    if sizes is not None:
        return axis, sizes[k] / in_len, sizes[k]
    if tf.is_tensor(in_len):
        out = in_len * scales[k] - _SIZE_TOLERANCE
        return axis, scales[k], tf.cast(tf.math.ceil(out), tf.int32)
    return axis, scales[k], output_length(in_len, scales[k])


def output_length(in_len: int, scale: float) -> int:
    """Length of ``imresize`` of ``in_len`` pixels by ``scale`` along one axis: ``ceil(scale *
    in_len)``, an integer to within floating-point rounding counting as that integer."""
    return math.ceil(in_len * scale - _SIZE_TOLERANCE)


def _is_identity(step: tuple, in_len) -> bool:
    """True for a pass known now to change nothing (the kernel at integer offsets is [0 1 0])."""
    _, scale, out_len = step
    return not tf.is_tensor(scale) and scale == 1.0 and out_len == in_len


def _in_matlab_order(v: tuple, h: tuple) -> list[tuple]:
    """MATLAB resizes along the axis with the smaller scale first, rows first on a tie."""
    return [h, v] if h[1] < v[1] else [v, h]


def _imresize_np(image, rank, scales, sizes, is_uint8):
    expand, squeeze = _to_nhwc(rank)
    x = expand(image).astype(np.float64)
    v, h = (_axis_step(axis, x.shape[axis], scales, sizes) for axis in (1, 2))
    for step in _in_matlab_order(v, h):
        if _is_identity(step, x.shape[step[0]]):
            continue
        x = _resize_axis_np(x, *step)
        if is_uint8:
            x = _round_uint8_np(x)
    return squeeze(x.astype(np.uint8 if is_uint8 else np.float32))


def _imresize_tf(image, rank, scales, sizes, is_uint8):
    expand, squeeze = _to_nhwc(rank)
    x = tf.cast(expand(image), tf.float64)
    in_lens = [
        x.shape[axis] if x.shape[axis] is not None else tf.cast(tf.shape(x)[axis], tf.float64)
        for axis in (1, 2)
    ]
    v, h = (_axis_step(axis, in_lens[axis - 1], scales, sizes) for axis in (1, 2))

    def run(steps):
        y = x
        for step in steps:
            if _is_identity(step, in_lens[step[0] - 1]):
                continue
            y = _resize_axis_tf(y, *step)
            if is_uint8:
                y = round_uint8_tf(y)
        return y

    if tf.is_tensor(v[1]) or tf.is_tensor(h[1]):
        # output_size and a run-time image size: the pass order depends on the image.
        y = tf.cond(h[1] < v[1], lambda: run([h, v]), lambda: run([v, h]))
    else:
        y = run(_in_matlab_order(v, h))
    return squeeze(tf.cast(y, tf.uint8 if is_uint8 else tf.float32))


def to_uint8(x):
    """Float values in [0, 255] to uint8, rounding half away from zero and clipping (MATLAB).

    Args:
        x: NumPy array or ``tf.Tensor`` of floats on the 0..255 scale (any shape).

    Returns:
        uint8 array or tensor of the same shape. ``np.round`` and ``tf.round`` round half to
        even (2.5 -> 2); this gives 2.5 -> 3, as MATLAB's ``uint8()``.

    Example:
        >>> to_uint8(np.array([2.5, 3.5, -1.0, 254.5, 300.0]))
        array([  3,   4,   0, 255, 255], dtype=uint8)
    """
    if tf.is_tensor(x):
        x = tf.convert_to_tensor(x)
        if x.dtype == tf.uint8:
            return x
        return tf.cast(round_uint8_tf(tf.cast(x, tf.float64)), tf.uint8)
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    return _round_uint8_np(x.astype(np.float64)).astype(np.uint8)


def modcrop(image, scale):
    """Crops the bottom and right of ``image`` so that its size divided by ``scale`` is an integer.

    For an integer scale s, H and W become multiples of s (MATLAB's ``modcrop``). For a rational
    scale p/q in lowest terms (2.5 = 5/2, 1.3 = 13/10), they become multiples of p, the smallest
    crop for which ``H / scale`` is an integer. Apply it to an HR image before downscaling it by
    ``1 / scale``, so that HR is exactly ``scale`` times the LR size.

    Args:
        image: (H, W), (H, W, C) or (N, H, W, C), NumPy array or ``tf.Tensor`` (any dtype).
        scale: a positive number, or a ``(scale_v, scale_h)`` pair.

    Returns:
        The top-left crop, same kind, dtype and layout as ``image``.

    Example:
        >>> modcrop(np.zeros((11, 14, 3)), 3).shape
        (9, 12, 3)
        >>> modcrop(np.zeros((11, 14, 3)), 2.5).shape
        (10, 10, 3)
    """
    mv, mh = (scale_ratio(s)[0] for s in scale_pair(scale))
    tensor_input = tf.is_tensor(image)
    if not tensor_input:
        image = np.asarray(image)
    rank = _image_rank(image, "modcrop")
    h_axis = 1 if rank == 4 else 0
    shape = tf.shape(image) if tensor_input else image.shape
    h, w = shape[h_axis], shape[h_axis + 1]
    crop_h, crop_w = h - h % mv, w - w % mh
    if rank == 4:
        return image[:, :crop_h, :crop_w]
    return image[:crop_h, :crop_w]
