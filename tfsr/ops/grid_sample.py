"""Bilinear point sampling with PyTorch ``grid_sample`` semantics, from TFLite builtin ops only.

Two entry points share one sampling core:

- :func:`grid_sample` takes sampling positions in PyTorch's normalised form (x, y in [-1, 1]),
  like ``torch.nn.functional.grid_sample(..., mode="bilinear", padding_mode="border",
  align_corners=False)``, but NHWC.
- :func:`offset_sample` upsamples by an integer factor and takes each output pixel's position as an
  offset, in input pixels, from where bilinear upsampling would sample it. Zero offsets give
  ``tf.image.resize(images, (s * H, s * W), "bilinear")`` (half-pixel centres), to float rounding.
  This is the form DySample needs, and the one that quantises well: the integer pixel grid stays
  int32 (1-D ranges, constants once the shape is fixed) and only the small offsets and fractions
  are ever quantised.

Both split channels into ``G`` groups that are sampled at their own positions (``G = 1`` is plain
grid sampling). The core computes, once per output pixel and group, the int32 table row of the
top-left corner and the two fractions; border padding clamps that corner to the second-to-last
pixel and pins the fraction to 0 or 1 instead of clamping four indices. It gathers the ``C / G``
channels of a group as one row per corner and blends the four rows. Only GATHER, FLOOR, CAST,
comparisons, SELECT_V2 and arithmetic are used, so it converts to TFLite builtins, float32 or full
int8 (there only the floor of the offsets runs in float).

Speed: in TensorFlow the index computation and the gather-and-blend each run as one XLA cluster
(``jit_compile=True``, the default); two clusters, not one, because XLA would otherwise recompute
the indices for every channel. The blend has its own gradient (recomputed gathers, one segment sum;
about 3x faster than TensorFlow's gradient of the gathers). ``jit_compile=False`` runs the same
graph op by op with TensorFlow's gradients: several times slower on CPU, and the twin the tests
check the XLA path against. XLA compiles once per input shape.

Border padding: a position outside the image takes the value of the nearest border pixel; its
gradient with respect to the position is zero there, as in PyTorch. Bilinear sampling is not
differentiable with respect to the position where it crosses a pixel centre (integer position).
"""

from __future__ import annotations

import tensorflow as tf

from tfsr.checks import int_at_least

__all__ = ["grid_sample", "offset_sample"]


def _check_images(images: tf.Tensor) -> None:
    if images.shape.rank != 4:
        raise ValueError(f"images must be a 4-D tensor (N, H, W, C), got shape {images.shape}")
    if not images.dtype.is_floating:
        raise ValueError(f"images must be a floating tensor, got dtype {images.dtype.name}")


def _grouped(points: tf.Tensor, name: str) -> tuple[tf.Tensor, int]:
    """Returns ``points`` as (N, Ho, Wo, G, 2) and G."""
    if points.shape.rank not in (4, 5) or points.shape[-1] != 2:
        raise ValueError(
            f"{name} must have shape (N, H_out, W_out, 2) or (N, H_out, W_out, G, 2), "
            f"got {points.shape}"
        )
    if points.shape.rank == 4:
        points = points[:, :, :, None, :]
    groups = points.shape[3]
    if groups is None:
        raise ValueError(f"the group axis of {name} (axis 3) must be known, got {points.shape}")
    return points, groups


def _check_groups(images: tf.Tensor, groups: int, name: str) -> None:
    channels = images.shape[-1]
    if channels is None:
        raise ValueError(f"the channel axis of images must be known, got shape {images.shape}")
    if channels % groups:
        raise ValueError(
            f"images have {channels} channels, which {name}'s {groups} groups do not divide"
        )


def _check_batch(images: tf.Tensor, points: tf.Tensor, name: str) -> None:
    a, b = images.shape[0], points.shape[0]
    if a is not None and b is not None and a != b:
        raise ValueError(f"images have batch size {a} but {name} has batch size {b}")


def _split(position):
    """Integer (int32, floor) and fractional parts of a float position tensor."""
    whole = tf.floor(position)
    return tf.cast(whole, tf.int32), position - whole


def _corners(ix, iy, fx, fy, height, width, groups: int, dtype: tf.DType):
    """The table row of each top-left corner, the steps to the other corners, and the weights.

    Border padding without a second set of indices: the left corner is clamped to
    ``[0, W - 2]`` and the weight of the right one is set to 0 left of the image and to 1 right of
    it (likewise in y), so that the four corners are always ``row``, ``row + step_x``,
    ``row + step_y`` and ``row + step_x + step_y``. (A 1-pixel wide image has ``step_x = 0``.)

    Args:
        ix, iy: int32 (N, Ho, Wo, G), the integer parts (floor) of the x and y positions in pixel
            index coordinates (pixel centres at integers), not yet clamped.
        fx, fy: (N, Ho, Wo, G), the fractional parts, in [0, 1).
        height, width: int32 scalars, the input size.
        groups: G.
        dtype: dtype of the weights (the images' dtype).

    Returns:
        ``row``: int32 (N, Ho, Wo, G), index of the top-left corner in the (N * H * W * G, C / G)
        table; ``steps``: int32 scalars ``(step_x, step_y)``; ``weights``: the weights ``fx`` and
        ``fy`` of the right and bottom corners, each (N, Ho, Wo, G, 1) of ``dtype``.
    """

    def clamp(i, f, size):
        # Selects, not clip_by_value: the TFLite converter turns an int32 clip to [0, 6] (an
        # 8-pixel image) into RELU6, which has no int32 kernel.
        before, after = i < 0, i > size - 2
        last = tf.maximum(size - 2, 0)
        i = tf.where(before, tf.zeros_like(i), tf.where(after, tf.fill(tf.shape(i), last), i))
        f = tf.where(before, tf.zeros_like(f), tf.where(after, tf.ones_like(f), f))
        # expand_dims, not [..., None]: an int8 StridedSlice with a new axis has no TFLite
        # kernel when the shape is dynamic (calibrated int8 export of a dynamic-size model).
        return i, tf.expand_dims(tf.cast(f, dtype), -1)

    x0, fx = clamp(ix, fx, width)
    y0, fy = clamp(iy, fy, height)
    # Row of image n, pixel (y, x), group k: ((n * H + y) * W + x) * G + k.
    batch_rows = tf.reshape(tf.range(tf.shape(ix)[0]) * height, (-1, 1, 1, 1))
    row = ((batch_rows + y0) * width + x0) * groups + tf.range(groups)
    step_x = tf.minimum(width - 1, 1) * groups
    step_y = tf.minimum(height - 1, 1) * width * groups
    return row, (step_x, step_y), (fx, fy)


def _grid_corners(grid, height, width, groups: int, dtype: tf.DType):
    """:func:`_corners` for a normalised (N, Ho, Wo, G, 2) grid (align_corners=False)."""
    # Pixel index coordinate = ((g + 1) * size - 1) / 2.
    px = ((grid[..., 0] + 1.0) * tf.cast(width, grid.dtype) - 1.0) * 0.5
    py = ((grid[..., 1] + 1.0) * tf.cast(height, grid.dtype) - 1.0) * 0.5
    ix, fx = _split(px)
    iy, fy = _split(py)
    return _corners(ix, iy, fx, fy, height, width, groups, dtype)


def _offset_corners(offsets, height, width, scale: int, groups: int, dtype: tf.DType):
    """:func:`_corners` for (N, s * H, s * W, G, 2) offsets from the bilinear upsampling grid."""
    out_shape = tf.shape(offsets)
    dx, dy = tf.unstack(offsets, axis=-1)  # each (N, Ho, Wo, G)

    def axis_parts(size):
        # (X + 0.5) / s - 0.5 = X // s + ((X % s) + 0.5) / s - 0.5: an int32 pixel and a sub-pixel
        # part in (-0.5, 0.5), both 1-D.
        index = tf.range(size)
        sub = (tf.cast(index % scale, offsets.dtype) + 0.5) / scale - 0.5
        return index // scale, sub

    base_x, sub_x = axis_parts(out_shape[2])
    base_y, sub_y = axis_parts(out_shape[1])
    ix, fx = _split(dx + sub_x[:, None])
    iy, fy = _split(dy + sub_y[:, None, None])
    ix = ix + base_x[:, None]
    iy = iy + base_y[:, None, None]
    return _corners(ix, iy, fx, fy, height, width, groups, dtype)


def _blend(table, row, steps, weights):
    """Gathers the four corner rows of ``table`` (R, C/G) and blends them, x first, then y.

    Two 1-D blends rather than four 2-D weights: each weight is then one fraction, rounded once
    in int8, instead of a product of two rounded fractions (less int8 error).
    """
    step_x, step_y = steps
    fx, fy = weights
    gx, gy = 1.0 - fx, 1.0 - fy
    top = tf.gather(table, row) * gx + tf.gather(table, row + step_x) * fx
    bottom = tf.gather(table, row + step_y) * gx + tf.gather(table, row + (step_x + step_y)) * fx
    return top * gy + bottom * fy


def _blend_grad(table, row, steps, weights, grad):
    """Gradients of :func:`_blend` with respect to ``table`` and the two weights.

    Recomputes the four gathers instead of keeping them from the forward pass (four tensors of
    the output's size), and scatters the table gradient in one segment sum.
    """
    step_x, step_y = steps
    fx, fy = weights
    gx, gy = 1.0 - fx, 1.0 - fy
    rows = (row, row + step_x, row + step_y, row + (step_x + step_y))
    # <grad, corner> per output pixel and group: (N, Ho, Wo, G, 1) each.
    ga, gb, gc, gd = (
        tf.reduce_sum(grad * tf.gather(table, r), axis=-1, keepdims=True) for r in rows
    )
    d_fx = (gb - ga) * gy + (gd - gc) * fy
    d_fy = (gc - ga) * gx + (gd - gb) * fx
    channels = tf.shape(table)[1]
    values = tf.concat(
        [
            tf.reshape(grad * (wx * wy), tf.stack([-1, channels]))
            for wx, wy in ((gx, gy), (fx, gy), (gx, fy), (fx, fy))
        ],
        axis=0,
    )
    ids = tf.concat([tf.reshape(r, [-1]) for r in rows], axis=0)
    d_table = tf.math.unsorted_segment_sum(values, ids, tf.shape(table)[0])
    return d_table, (d_fx, d_fy)


def _xla(fn):
    return tf.function(fn, jit_compile=True, autograph=False, reduce_retracing=True)


_grid_corners_xla = _xla(_grid_corners)
_offset_corners_xla = _xla(_offset_corners)
_blend_forward_xla = _xla(_blend)
_blend_grad_xla = _xla(_blend_grad)


def _blend_xla(table, row, steps, weights):
    """:func:`_blend` as one XLA cluster, with :func:`_blend_grad` (another) as its gradient.

    About 3x faster than differentiating the gathers (IndexedSlices, then a plain segment sum).
    """

    @tf.custom_gradient
    def blend(table, row, step_x, step_y, fx, fy):
        steps, weights = (step_x, step_y), (fx, fy)

        def grad(upstream):
            d_table, (d_fx, d_fy) = _blend_grad_xla(table, row, steps, weights, upstream)
            return d_table, None, None, None, d_fx, d_fy

        return _blend_forward_xla(table, row, steps, weights), grad

    return blend(table, row, *steps, *weights)


def _position_dtype(images: tf.Tensor) -> tf.DType:
    """Positions are computed in float32 at least, also for float16 / bfloat16 images."""
    return tf.float64 if images.dtype == tf.float64 else tf.float32


def _sample(images, points, corners, blend, **kwargs):
    """Samples ``images`` at ``points`` (N, Ho, Wo, G, 2), which ``corners`` turns into rows."""
    shape = tf.shape(images)
    channels = images.shape[-1]
    groups = points.shape[3]
    row, steps, weights = corners(
        points, shape[1], shape[2], groups=groups, dtype=images.dtype, **kwargs
    )
    table = tf.reshape(images, (-1, channels // groups))  # (N * H * W * G, C / G)
    out = blend(table, row, steps, weights)  # (N, Ho, Wo, G, C / G)
    out_shape = tf.shape(points)
    return tf.reshape(out, tf.stack([out_shape[0], out_shape[1], out_shape[2], channels]))


def grid_sample(images: tf.Tensor, grid: tf.Tensor, *, jit_compile: bool = True) -> tf.Tensor:
    """Bilinear sampling at normalised positions, like PyTorch's ``grid_sample``, NHWC.

    Matches ``torch.nn.functional.grid_sample(input, grid, mode="bilinear",
    padding_mode="border", align_corners=False)`` with NHWC tensors: ``grid[..., 0]`` is x (width),
    ``grid[..., 1]`` is y (height); -1 and +1 are the outer edges of the border pixels, so pixel
    ``i`` of ``W`` has its centre at ``(2 * i + 1) / W - 1``.

    A grid with a group axis samples ``C / G`` consecutive channels per group at the group's own
    positions (group ``k`` holds channels ``k * C / G ... (k + 1) * C / G - 1``).

    Args:
        images: (N, H, W, C) float tensor.
        grid: (N, H_out, W_out, 2) or (N, H_out, W_out, G, 2) tensor of normalised (x, y); ``C``
            must be divisible by ``G``.
        jit_compile: run the sampling as XLA clusters (faster on CPU); False runs the plain graph.

    Returns:
        (N, H_out, W_out, C) tensor of ``images.dtype``.

    Raises:
        ValueError: for tensors of the wrong rank or dtype, a last grid axis other than 2, or ``G``
            not dividing ``C``.

    Example:

    >>> images = tf.reshape(tf.range(4.0), (1, 2, 2, 1))
    >>> grid = tf.constant([[[[0.0, 0.0], [-1.0, -1.0]]]])  # centre, top-left corner
    >>> grid_sample(images, grid)[0, 0, :, 0].numpy()
    array([1.5, 0. ], dtype=float32)
    """
    images = tf.convert_to_tensor(images)
    _check_images(images)
    grid = tf.cast(grid, _position_dtype(images))
    grid, groups = _grouped(grid, "grid")
    _check_groups(images, groups, "grid")
    _check_batch(images, grid, "grid")
    if jit_compile:
        return _sample(images, grid, _grid_corners_xla, _blend_xla)
    return _sample(images, grid, _grid_corners, _blend)


def _check_scale(scale) -> int:
    return int_at_least("scale", scale)


def offset_sample(
    images: tf.Tensor, offsets: tf.Tensor, scale: int, *, jit_compile: bool = True
) -> tf.Tensor:
    """Upsamples ``images`` by ``scale``, sampling each output pixel at a displaced position.

    Output pixel ``(Y, X)`` of group ``k`` samples ``images`` bilinearly (border padding) at
    input pixel index coordinates

        x = (X + 0.5) / scale - 0.5 + offsets[n, Y, X, k, 0]
        y = (Y + 0.5) / scale - 0.5 + offsets[n, Y, X, k, 1]

    (pixel centres at integers), that is where half-pixel bilinear upsampling samples it, moved by
    the offset in input pixels. With zero offsets the result equals
    ``tf.image.resize(images, (scale * H, scale * W), "bilinear")``.

    The base position is split into an int32 pixel ``X // scale`` (a 1-D range) and a sub-pixel
    part ``((X % scale) + 0.5) / scale - 0.5`` added to the offsets, so that after int8
    quantisation only small values pass through int8.

    Args:
        images: (N, H, W, C) float tensor.
        offsets: (N, scale * H, scale * W, 2) or (N, scale * H, scale * W, G, 2) tensor of
            (dx, dy) in input pixels; ``C`` must be divisible by ``G``.
        scale: integer upsampling factor >= 1.
        jit_compile: run the sampling as XLA clusters (faster on CPU); False runs the plain graph.

    Returns:
        (N, scale * H, scale * W, C) tensor of ``images.dtype``.

    Raises:
        ValueError: for a bad ``scale``, tensors of the wrong rank or dtype, ``G`` not dividing
            ``C``, or offsets of a (statically known) size other than ``scale`` times the
            images'. Sizes only known when the graph runs are not checked.

    Example:

    >>> images = tf.random.uniform((1, 4, 4, 8))
    >>> offsets = tf.zeros((1, 8, 8, 2, 2))  # two groups of four channels
    >>> up = offset_sample(images, offsets, 2)
    >>> float(tf.reduce_max(tf.abs(up - tf.image.resize(images, (8, 8))))) < 1e-6
    True
    """
    scale = _check_scale(scale)
    images = tf.convert_to_tensor(images)
    _check_images(images)
    offsets = tf.cast(offsets, _position_dtype(images))
    offsets, groups = _grouped(offsets, "offsets")
    _check_groups(images, groups, "offsets")
    _check_batch(images, offsets, "offsets")
    for axis, name in ((1, "height"), (2, "width")):
        size, out_size = images.shape[axis], offsets.shape[axis]
        if size is not None and out_size is not None and out_size != scale * size:
            raise ValueError(
                f"offsets {name} must be scale * images {name} = {scale} * {size}, "
                f"got {out_size}"
            )
    if jit_compile:
        return _sample(images, offsets, _offset_corners_xla, _blend_xla, scale=scale)
    return _sample(images, offsets, _offset_corners, _blend, scale=scale)
