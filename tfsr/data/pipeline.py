"""Random (LR, HR) patch datasets for training super-resolution models.

The LR patches are made on the fly from the HR images exactly as the official benchmark LR files
are made: the uint8 HR image, cropped to a multiple of the scale ("modcrop"), is shrunk by MATLAB's
antialiased bicubic (:func:`tfsr.data.imresize.imresize`) and rounded to uint8 as MATLAB does. Each
LR patch is bit for bit the matching crop of the LR image made from the whole HR image, for
integer, rational (2.5, 1.3) and anisotropic ((2, 3.5)) scales.

How a patch is cut. For a scale ``s = p / q`` in lowest terms (per axis), LR pixel ``x`` covers HR
pixels around ``(x + 0.5) * p / q``; moving ``q`` LR pixels moves exactly ``p`` HR pixels, so LR
patch origins are multiples of ``q`` and HR origins the matching multiples of ``p``. The LR patch
is computed as a window of the whole-image resize: the bicubic weights and mirrored source indices
of its rows and columns are those of the whole modcropped image (the same float64 numbers, since
MATLAB's weights depend on the absolute output position), applied in the same order to only the
HR pixels they touch, with the same uint8 rounding after each pass. Resizing a crop of the HR
image instead would differ from the whole-image LR at scales such as 1.2 or 3.7, where weights
computed at other coordinates differ in the last bit and flip exact .5 ties.

Everything after the initial decoding runs as TensorFlow ops: the decoded images sit in one flat
``uint8`` variable and each patch gathers the pixels it needs, so the map runs on every core with
no Python (``numpy_function`` would serialise on the GIL, and can hang the interpreter at exit).

Randomness and resuming. Every random choice is a stateless function of ``seed`` and a position:
the image order of epoch ``e`` is a shuffle keyed on ``(seed, e)`` (each image appears
``patches_per_image`` times per epoch), the crop and augmentation of sample ``k`` are keyed on
``(seed, k)`` and, with several scales, the scale of batch ``n`` on ``(seed, n)``. The dataset is
therefore the same sequence every time for one seed, whatever the parallelism, and
``sr_patches(..., start_step=n)`` starts at batch ``n`` of that sequence at no cost (equal to
``sr_patches(...).skip(n)``, which would compute and discard ``n`` batches).

Example::

    from tfsr.data import sr_patches, source_from_spec
    ds = sr_patches(source_from_spec("embedded"), 2, lr_patch_size=32, batch_size=16, seed=0)
    lr, hr = next(iter(ds))     # (16, 32, 32, 1) and (16, 64, 64, 1) float32 in [0, 1]
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import math
import numbers
import os
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from tfsr.checks import int_at_least, shrink_factors
from tfsr.data.sources import ImageSource, source_from_spec
from tfsr.progress import step_bar

# The module (``tfsr.data.imresize`` is the function, exported by the package).
_imresize = importlib.import_module("tfsr.data.imresize")

_MAX_DENOMINATOR = 100  # scales are p / q with q <= 100 (1.1, 2.5, 3.75, ...)
_CHANNELS = ("y", "rgb")
_LISTED = 10  # images named in the warning about images smaller than the patch

# Tags folded into the seed, one per kind of random choice, so that the choices are independent
# and switching augmentation on or off leaves the crops where they were.
_ORDER, _SAMPLE, _SCALE = 1, 2, 3
_CROP, _AUGMENT = 0, 1


def _ratio(value, what: str) -> tuple[int, int]:
    """(p, q) with value == p / q in lowest terms, q <= _MAX_DENOMINATOR, value >= 1."""
    if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 1:
        raise ValueError(f"{what} must be a number >= 1, got {value!r}")
    return _imresize.scale_ratio(value, _MAX_DENOMINATOR)


@dataclasses.dataclass(frozen=True)
class _Axis:
    """Patch geometry along one axis for one scale p / q (all sizes in pixels)."""

    p: int
    q: int
    lr_patch: int
    scale: float  # as given (1.3, not 13 / 10): the LR is imresize(hr, 1 / scale), as in MATLAB

    @property
    def hr_patch(self) -> int:
        return self.lr_patch * self.p // self.q

    def lr_size(self, hr_size: int) -> int:
        """LR size of an image of hr_size pixels after modcrop (HR cropped to a multiple of p)."""
        return hr_size // self.p * self.q

    def positions(self, hr_size: int) -> int:
        """Number of LR patch origins (multiples of q) in an image of hr_size pixels."""
        return max(0, (self.lr_size(hr_size) - self.lr_patch) // self.q + 1)


@dataclasses.dataclass(frozen=True)
class _Geometry:
    v: _Axis
    h: _Axis

    @property
    def square(self) -> bool:
        return self.v == self.h


def _geometry(scale, lr_patch_size, hr_patch_size) -> _Geometry:
    """Checks one scale against the patch size; the message says which sizes would work."""
    sv, sh = _imresize.scale_pair(scale)
    axes = []
    for name, s in (("scale_v", sv), ("scale_h", sh)):
        p, q = _ratio(s, f"{name} of scale {scale!r}" if sv != sh else "scale")
        if lr_patch_size is not None:
            if lr_patch_size % q:
                raise ValueError(
                    f"lr_patch_size {lr_patch_size} gives a fractional HR patch at scale {s} "
                    f"(= {p}/{q}): use a multiple of {q}"
                )
            lr = lr_patch_size
        else:
            if hr_patch_size % p:
                raise ValueError(
                    f"hr_patch_size {hr_patch_size} gives a fractional LR patch at scale {s} "
                    f"(= {p}/{q}): use a multiple of {p}"
                )
            lr = hr_patch_size // p * q
        axes.append(_Axis(p, q, lr, float(s)))
    return _Geometry(*axes)


def _bicubic_table(axis: _Axis, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (rows, taps) and first unmirrored source index (rows,) of LR pixels 0..rows-1
    along one axis, bit for bit those of imresize.

    MATLAB's weights for output pixel ``x`` depend on ``x`` and the scale only, not on the image
    size, which only decides how out-of-range source indices are mirrored: one table per scale
    and axis serves every image. The numbers come from imresize's own ``bicubic_contributions``.
    A scale of 1 (imresize skips the axis) gets the identity: one tap of weight 1.
    """
    if axis.scale == 1.0:
        return np.ones((rows, 1)), np.arange(rows)
    # A long enough input that no source index is mirrored at the far end.
    long_input = 2 * (rows + 8) * axis.p // axis.q + 64
    weights, indices = _imresize.bicubic_contributions(long_input, rows, 1.0 / axis.scale)
    first = indices[:, -1] - (weights.shape[1] - 1)  # the last tap is never mirrored
    return weights, first


def _check_table(axis: _Axis, weights, first, hr_size: int) -> None:
    """Asserts that the table gives imresize's weights and indices for an axis of hr_size."""
    if axis.scale == 1.0:
        return
    in_len, out_len = hr_size // axis.p * axis.p, axis.lr_size(hr_size)
    expected_weights, expected_indices = _imresize.bicubic_contributions(
        in_len, out_len, 1 / axis.scale
    )
    indices = _imresize.mirror_index(first[:out_len, None] + np.arange(weights.shape[1]), in_len)
    if not (
        np.array_equal(weights[:out_len], expected_weights)
        and np.array_equal(indices, expected_indices)
    ):
        raise AssertionError(
            f"bicubic table for scale {axis.scale} disagrees with imresize at size {hr_size}"
        )


class _Direction:
    """Everything about one direction (vertical or horizontal) of every scale, as TF constants
    indexed by scale number (and image number for ``positions``)."""

    def __init__(self, axes: Sequence[_Axis], sizes: Sequence[int]):
        self.lr_patch = axes[0].lr_patch  # equal for all scales
        tables = []
        for axis in axes:
            weights, first = _bicubic_table(axis, max(axis.lr_size(x) for x in sizes))
            for x in {min(sizes), max(sizes)}:
                _check_table(axis, weights, first, x)
            tables.append((weights, first))
        rows = max(w.shape[0] for w, _ in tables)
        taps = max(w.shape[1] for w, _ in tables)
        all_weights = np.zeros((len(axes), rows, taps))
        all_first = np.zeros((len(axes), rows), np.int64)
        for k, (weights, first) in enumerate(tables):
            all_weights[k, : weights.shape[0], : weights.shape[1]] = weights
            all_first[k, : first.shape[0]] = first
        self.weights = tf.constant(all_weights)  # (scales, rows, taps) float64
        self.first = tf.constant(all_first)  # (scales, rows)
        self.taps = tf.constant([w.shape[1] for w, _ in tables], tf.int64)
        self.p = tf.constant([a.p for a in axes], tf.int64)
        self.q = tf.constant([a.q for a in axes], tf.int64)
        self.hr_patch = tf.constant([a.hr_patch for a in axes], tf.int64)
        self.inverse = tf.constant([1 / a.scale for a in axes], tf.float64)
        self.positions = tf.constant([[a.positions(x) for x in sizes] for a in axes], tf.int64)
        self.sizes = tf.constant(sizes, tf.int64)

    def window(self, scale, start, in_len):
        """Weights (P, taps), local source indices (P, taps) and the source range [lo, hi) of
        LR pixels [start, start + P) along an axis of in_len (modcropped) HR pixels."""
        taps = self.taps[scale]
        weights = self.weights[scale, start : start + self.lr_patch, :taps]
        first = self.first[scale, start : start + self.lr_patch]
        indices = _imresize.mirror_index(first[:, None] + tf.range(taps, dtype=tf.int64), in_len)
        lo = tf.reduce_min(indices)
        return weights, indices - lo, lo, tf.reduce_max(indices) + 1


def _bicubic_pass(x: tf.Tensor, axis: int, weights: tf.Tensor, local: tf.Tensor) -> tf.Tensor:
    """One MATLAB bicubic pass along ``axis`` of float64 (H, W, 3) ``x``, rounded to uint8 levels
    (bit for bit imresize's: the same taps summed in the same order)."""
    return _imresize.round_uint8_tf(_imresize.sum_taps_tf(x, axis, weights, local))


@dataclasses.dataclass
class _Images:
    """The usable images of a source: paths, sizes and, when cached, the pixels.

    ``pixels`` is one flat uint8 variable holding every image, row-major (H, W, 3), image ``i``
    starting at ``offsets[i]``; None when not cached (images are then decoded per patch).
    """

    paths: list[str]
    heights: list[int]
    widths: list[int]
    offsets: list[int]
    pixels: tf.Variable | None

    def reader(self, index):
        """A function (top, bottom, left, right) -> uint8 crop of image ``index`` (TF ops)."""
        if self.pixels is None:
            # Decoded by TensorFlow: PNG and BMP give read_image's pixels; JPEG may differ by
            # a level or two (libjpeg settings).
            encoded = tf.io.read_file(tf.gather(tf.constant(self.paths), index))
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            return lambda top, bottom, left, right: image[top:bottom, left:right]
        offset = tf.gather(tf.constant(self.offsets, tf.int64), index)
        width = tf.gather(tf.constant(self.widths, tf.int64), index)

        def crop(top, bottom, left, right):
            rows = tf.range(top, bottom, dtype=tf.int64)[:, None, None]
            cols = tf.range(left, right, dtype=tf.int64)[None, :, None]
            flat = offset + (rows * width + cols) * 3 + tf.range(3, dtype=tf.int64)
            return self.pixels.sparse_read(flat)

        return crop


def _shrunk_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """Size of ``imresize(image, factor)`` for an image of ``size``."""
    return tuple(_imresize.output_length(n, factor) for n in size) if factor != 1 else size


def _usable(
    sizes: dict[int, tuple[int, int]], geometries: Sequence[_Geometry], factors: Sequence[float]
) -> tuple[list[tuple[int, float]], list[tuple[int, float, int, int]]]:
    """Splits every (image index, shrink factor) into those at least one HR patch in size at
    every geometry and the rest: ``(usable, small)``, ``small`` as ``(index, factor, h, w)``."""
    usable, small = [], []
    for index, size in sizes.items():
        for factor in factors:
            h, w = _shrunk_size(size, factor)
            if all(g.v.positions(h) > 0 and g.h.positions(w) > 0 for g in geometries):
                usable.append((index, factor))
            else:
                small.append((index, factor, h, w))
    return usable, small


def _check_patch_sizes(lr_patch_size, hr_patch_size) -> None:
    if (lr_patch_size is None) == (hr_patch_size is None):
        raise ValueError("give exactly one of lr_patch_size and hr_patch_size")
    int_at_least("patch size", lr_patch_size or hr_patch_size)


def count_training_images(
    source: ImageSource | str,
    scales: Sequence[float | tuple[float, float]],
    *,
    lr_patch_size: int | None = None,
    hr_patch_size: int | None = None,
    scale_augment: Sequence[float] = (),
) -> int:
    """How many images (and ``scale_augment`` copies) :func:`sr_patches` or
    :func:`multiscale_sr_patches` with these arguments would train on: those at least one HR
    patch in size at every scale. Reads the image headers only; files it cannot read raise, or
    with the source's ``skip_bad`` are not counted, silently (the pipeline warns about them)."""
    source = source_from_spec(source) if isinstance(source, str) else source
    _check_patch_sizes(lr_patch_size, hr_patch_size)
    geometries = [_geometry(s, lr_patch_size, hr_patch_size) for s in scales]
    factors = (1.0,) + shrink_factors("scale_augment", scale_augment)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=re.escape(f"{source.name}: skipping"))
        sizes = source.sizes()
    return len(_usable(sizes, geometries, factors)[0])


def _load_images(
    source: ImageSource,
    geometries: Sequence[_Geometry],
    cache: bool,
    scale_augment: tuple[float, ...] = (),
) -> _Images:
    """Reads the headers, leaves out images smaller than the patch (one warning), decodes the
    rest (verifying them) and, with ``cache``, packs their pixels into one variable.

    With ``scale_augment``, each image is followed by its copies shrunk by each factor (MATLAB
    bicubic, uint8), which are further images of their own; a copy smaller than the patch is left
    out.
    """
    if len(source) == 0:
        raise ValueError(f"image source {source.name!r} holds no image")
    if scale_augment and not cache:
        raise ValueError("scale_augment (shrunk copies of the images) needs cache=True")
    sizes = source.sizes()
    usable, small = _usable(sizes, geometries, (1.0,) + scale_augment)
    patch = (max(g.v.hr_patch for g in geometries), max(g.h.hr_patch for g in geometries))
    if small:
        listed = ", ".join(
            f"{source.paths[index]}{f' shrunk by {factor:g}' if factor != 1 else ''} ({h}x{w})"
            for index, factor, h, w in small[:_LISTED]
        )
        more = f" and {len(small) - _LISTED} more" if len(small) > _LISTED else ""
        warnings.warn(
            f"{source.name}: skipping {len(small)} image(s)"
            f"{' or shrunk copies' if scale_augment else ''} smaller than the "
            f"{patch[0]}x{patch[1]} HR patch: {listed}{more}",
            stacklevel=4,
        )
    if not usable:
        raise ValueError(
            f"no image of source {source.name!r} is at least {patch[0]}x{patch[1]} pixels "
            "(the HR patch, at every scale): use a smaller patch size"
        )
    offsets, total = {}, 0
    for index, factor in usable:
        offsets[index, factor] = total
        h, w = _shrunk_size(sizes[index], factor)
        total += h * w * 3
    pixels = tf.Variable(tf.zeros([total], tf.uint8), trainable=False) if cache else None

    def store(key, image):  # scatter_update writes in place; a sliced assign would copy
        if image.shape[:2] != _shrunk_size(sizes[key[0]], key[1]):  # the reader's layout
            raise RuntimeError(
                f"internal error: image {key} is {image.shape}, not the size planned"
            )
        positions = tf.range(offsets[key], offsets[key] + image.size, dtype=tf.int64)
        pixels.scatter_update(tf.IndexedSlices(tf.constant(image.reshape(-1)), positions))

    wanted = collections.defaultdict(list)  # image index: its usable factors
    for index, factor in usable:
        wanted[index].append(factor)
    decoded = set()
    copies = [key for key in usable if key[1] != 1]
    # The shrunk copies are made in threads (NumPy releases the GIL), at most 2 per thread
    # waiting, each stored as soon as it is done (each resize holds float64 temporaries of about
    # 16 bytes per pixel of its image).
    workers = min(8, os.cpu_count() or 1)
    bar = step_bar(len(copies), "scale_augment copies", unit="image", enabled=bool(copies))
    with ThreadPoolExecutor(max_workers=workers) as pool, bar:
        pending = collections.deque()

        def store_done(keep):
            while len(pending) > keep:
                key, future = pending.popleft()
                store(key, future.result())
                bar.update()

        try:
            for index, image in source.decode(list(wanted)):
                if image.shape[:2] != sizes[index]:
                    raise ValueError(
                        f"{source.paths[index]}: decoded size {image.shape[:2]} differs from the "
                        f"size in its header {sizes[index]}"
                    )
                decoded.add(index)
                if not cache:
                    continue
                for factor in wanted[index]:
                    if factor == 1:
                        store((index, factor), image)
                    else:
                        future = pool.submit(_imresize.imresize, image, factor)
                        pending.append(((index, factor), future))
                store_done(2 * workers)
            store_done(0)
        except BaseException:
            for _, future in pending:  # do not wait for copies that will not be used
                future.cancel()
            raise
    kept = [(index, factor) for index, factor in usable if index in decoded]
    if not kept:
        raise ValueError(f"image source {source.name!r} holds no readable image")
    return _Images(
        paths=[source.paths[i] for i, _ in kept],
        heights=[_shrunk_size(sizes[i], f)[0] for i, f in kept],
        widths=[_shrunk_size(sizes[i], f)[1] for i, f in kept],
        offsets=[offsets[key] for key in kept],
        pixels=pixels,
    )


def _build(
    source,
    scales,
    *,
    lr_patch_size,
    hr_patch_size,
    batch_size,
    channels,
    augment,
    seed,
    patches_per_image,
    repeat,
    cache,
    start_step,
    with_scale,
    scale_augment,
):
    if isinstance(source, str):
        source = source_from_spec(source)
    if not isinstance(source, ImageSource):
        raise TypeError(
            f"source must be an ImageSource or a source spec string, got {type(source).__name__}"
        )
    _check_patch_sizes(lr_patch_size, hr_patch_size)
    int_at_least("batch_size", batch_size)
    int_at_least("patches_per_image", patches_per_image)
    if channels not in _CHANNELS:
        raise ValueError(f"channels must be one of {_CHANNELS}, got {channels!r}")
    int_at_least("start_step", start_step, 0)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    geometries = [_geometry(s, lr_patch_size, hr_patch_size) for s in scales]
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**62))

    images = _load_images(source, geometries, cache, shrink_factors("scale_augment", scale_augment))
    n = len(images.paths)
    per_epoch = n * patches_per_image
    first_sample = start_step * batch_size
    if not repeat and first_sample + batch_size > per_epoch:
        raise ValueError(
            f"one epoch of {source.name!r} holds {per_epoch} patches ({n} images x "
            f"{patches_per_image}), fewer than batch {start_step} of size {batch_size} needs "
            "(repeat=False drops the last, partial batch)"
        )

    vertical = _Direction([g.v for g in geometries], images.heights)
    horizontal = _Direction([g.h for g in geometries], images.widths)
    # imresize shrinks along the axis with the smaller scale (1 / s) first, vertical on a tie.
    h_first = [g.h.scale > g.v.scale for g in geometries]

    base_seed = tf.constant([seed % (2**62), 0], tf.int64)

    def key(*tags):
        s = base_seed
        for tag in tags:
            s = tf.random.experimental.stateless_fold_in(s, tf.cast(tag, tf.int64))
        return s

    def patch(scale, index, sample):
        """(lr, hr) uint8 patches at scale number ``scale`` of image ``index``."""
        uniform = tf.random.stateless_uniform([2], key(_SAMPLE, sample, _CROP), dtype=tf.float64)
        crop = images.reader(index)
        hr_corner, lr_window = [], []
        for k, d in enumerate((vertical, horizontal)):
            # A random LR origin on the grid of multiples of q: floor(u * n) is in [0, n).
            count = tf.cast(d.positions[scale, index], tf.float64)
            cell = tf.cast(tf.floor(uniform[k] * count), tf.int64)
            hr_corner.append(cell * d.p[scale])
            # The modcropped image, a multiple of p, as the whole-image LR is made from it.
            in_len = d.sizes[index] // d.p[scale] * d.p[scale]
            lr_window.append(d.window(scale, cell * d.q[scale], in_len))
        top, left = hr_corner
        hr_v, hr_h = vertical.hr_patch[scale], horizontal.hr_patch[scale]
        hr = crop(top, top + hr_v, left, left + hr_h)
        (w_v, local_v, lo_v, hi_v), (w_h, local_h, lo_h, hi_h) = lr_window
        x = tf.cast(crop(lo_v, hi_v, lo_h, hi_h), tf.float64)  # the HR pixels the LR patch reads

        def v_then_h():
            return _bicubic_pass(_bicubic_pass(x, 0, w_v, local_v), 1, w_h, local_h)

        def h_then_v():
            return _bicubic_pass(_bicubic_pass(x, 1, w_h, local_h), 0, w_v, local_v)

        if all(h_first) or not any(h_first):
            x = h_then_v() if h_first[0] else v_then_h()
        else:
            x = tf.cond(tf.constant(h_first)[scale], h_then_v, v_then_h)
        lr = tf.ensure_shape(tf.cast(x, tf.uint8), (vertical.lr_patch, horizontal.lr_patch, 3))
        return lr, hr

    # Rotating by 90 degrees swaps the axes: only for equal scales and a square patch.
    transpose = all(g.square for g in geometries)
    hr_shape = (geometries[0].v.hr_patch, geometries[0].h.hr_patch) if not with_scale else None
    scale_values = tf.constant([[g.v.scale, g.h.scale] for g in geometries], tf.float32)

    @tf.autograph.experimental.do_not_convert  # plain TF ops: nothing to convert
    def make_sample(sample, index):
        if len(geometries) == 1:
            scale = tf.constant(0, tf.int64)
        else:  # one scale per batch
            scale = tf.random.stateless_uniform(
                [], key(_SCALE, sample // batch_size), maxval=len(geometries), dtype=tf.int64
            )
        lr, hr = patch(scale, index, sample)
        if hr_shape is not None:
            hr = tf.ensure_shape(hr, hr_shape + (3,))
        lr = tf.cast(lr, tf.float32) / 255.0
        hr = tf.cast(hr, tf.float32) / 255.0
        if channels == "y":
            lr, hr = _rgb_to_y(lr), _rgb_to_y(hr)
        if augment:
            flips = tf.random.stateless_uniform(
                [3], key(_SAMPLE, sample, _AUGMENT), maxval=2, dtype=tf.int32
            )
            lr, hr = (_dihedral(x, flips, transpose=transpose) for x in (lr, hr))
        if with_scale:
            return (lr, scale_values[scale]), hr
        return lr, hr

    @tf.autograph.experimental.do_not_convert
    def epoch_samples(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(per_epoch, dtype=tf.int64) % n, key(_ORDER, epoch)
        )
        return tf.data.Dataset.from_tensor_slices(
            (epoch * per_epoch + tf.range(per_epoch, dtype=tf.int64), order)
        )

    first_epoch, offset = divmod(first_sample, per_epoch)
    last_epoch = np.iinfo(np.int64).max if repeat else 1
    ds = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(epoch_samples).skip(offset)
    ds = ds.map(make_sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def _rgb_to_y(rgb: tf.Tensor) -> tf.Tensor:
    from tfsr.data.color import rgb_to_y

    y = rgb_to_y(rgb)
    return y if y.shape.rank == rgb.shape.rank else y[..., None]


def _dihedral(x: tf.Tensor, flips: tf.Tensor, *, transpose: bool) -> tf.Tensor:
    """One of the 8 flips / 90-degree rotations of an (H, W, C) patch, chosen by three bits."""
    x = tf.cond(flips[0] > 0, lambda: x[::-1], lambda: x)
    x = tf.cond(flips[1] > 0, lambda: x[:, ::-1], lambda: x)
    if transpose:
        x = tf.cond(flips[2] > 0, lambda: tf.transpose(x, [1, 0, 2]), lambda: x)
    return x


def sr_patches(
    source: ImageSource | str,
    scale: float | tuple[float, float],
    *,
    lr_patch_size: int | None = None,
    hr_patch_size: int | None = None,
    batch_size: int = 16,
    channels: str = "y",
    augment: bool = True,
    seed: int | None = None,
    patches_per_image: int = 16,
    repeat: bool = True,
    cache: bool = True,
    start_step: int = 0,
    scale_augment: Sequence[float] = (),
) -> tf.data.Dataset:
    """Random (LR, HR) training patches at one scale, LR made with MATLAB's bicubic.

    Every image is decoded once, up front, in threads (which also finds bad files: see the
    source's ``skip_bad``); images smaller than the HR patch are left out with one warning
    naming them. With ``cache`` the pixels stay in memory (about 100 MB for the 291 set, 6.9 GB
    for DIV2K train). Each epoch visits every image ``patches_per_image`` times in a shuffled
    order; each visit cuts a random LR-grid-aligned patch (see the module docstring), makes its
    LR as MATLAB's bicubic does (the crop of ``imresize(modcrop(hr), 1 / scale)``, uint8) and,
    with ``augment``, applies one random flip or 90-degree rotation to LR and HR alike (flips
    only when the scale is anisotropic or the patch not square).

    Args:
        source: an :class:`tfsr.data.sources.ImageSource`, or a spec for
            :func:`tfsr.data.sources.source_from_spec` ("embedded", "div2k", a folder).
        scale: upscaling factor >= 1: an integer, a ratio p/q with q <= 100 (2.5, 1.3), or a
            ``(scale_v, scale_h)`` pair.
        lr_patch_size: LR patch side P (a multiple of q); the HR patch is ``P * scale``.
        hr_patch_size: alternatively, the HR patch side (a multiple of p); give exactly one.
        batch_size: patches per batch; the last partial batch of a finite dataset is dropped.
        channels: "y" (BT.601 luma, 1 channel, via :func:`tfsr.data.color.rgb_to_y`) or "rgb".
        augment: random flips and rotations.
        seed: makes the sequence of batches reproducible; None draws a random one (then a run
            cannot be resumed with the same data order).
        patches_per_image: visits of each image per epoch.
        repeat: repeat epochs forever (each in a new order); False gives one epoch.
        cache: keep the decoded images in memory. False decodes the file again for every patch
            with ``tf.io.decode_image`` (slow; for sets that do not fit in memory; PNG and BMP
            give the same pixels as :func:`tfsr.data.io.read_image`, JPEG may differ by a few
            levels).
        start_step: first batch, to resume a run: ``sr_patches(..., seed=s, start_step=n)`` yields
            batches n, n + 1, ... of ``sr_patches(..., seed=s)``, at no cost.
        scale_augment: factors in (0, 1), e.g. ``(0.9, 0.8, 0.7, 0.6)``: every image also
            enters the set shrunk by each factor (MATLAB bicubic, uint8), as a further image
            that the LR patches are then made from (the classic augmentation of the small 291
            set; an epoch grows to match). The copies are made once, up front, and held in
            the cache (the four factors above add 2.3 times the pixels); needs ``cache``.

    Returns:
        ``tf.data.Dataset`` of ``(lr, hr)``: float32 in [0, 1], shapes (B, P_v, P_h, C) and
        (B, P_v * scale_v, P_h * scale_h, C), C = 1 for "y", 3 for "rgb".

    Raises:
        ValueError: bad scale, patch size (the message names the multiple needed) or argument;
            a source without usable images; ``repeat=False`` with fewer patches than one batch.

    Example:
        >>> ds = sr_patches("embedded", 3, lr_patch_size=16, batch_size=4, seed=1)
        >>> [tuple(t.shape) for t in next(iter(ds))]
        [(4, 16, 16, 1), (4, 48, 48, 1)]
    """
    return _build(
        source,
        [scale],
        lr_patch_size=lr_patch_size,
        hr_patch_size=hr_patch_size,
        batch_size=batch_size,
        channels=channels,
        augment=augment,
        seed=seed,
        patches_per_image=patches_per_image,
        repeat=repeat,
        cache=cache,
        start_step=start_step,
        with_scale=False,
        scale_augment=scale_augment,
    )


def multiscale_sr_patches(
    source: ImageSource | str,
    scales: Sequence[float | tuple[float, float]],
    *,
    lr_patch_size: int,
    batch_size: int = 16,
    channels: str = "y",
    augment: bool = True,
    seed: int | None = None,
    patches_per_image: int = 16,
    repeat: bool = True,
    cache: bool = True,
    start_step: int = 0,
    scale_augment: Sequence[float] = (),
) -> tf.data.Dataset:
    """Training patches for arbitrary-scale models (Meta-SR): one random scale per batch.

    Like :func:`sr_patches`, but batch n uses a scale drawn (stateless, from ``seed`` and n) from
    ``scales``, and the batch carries it. The LR patch size is fixed; the HR size varies from
    batch to batch. An image is used only if it holds the HR patch at every scale.

    Args:
        source: as for :func:`sr_patches`.
        scales: the scales to draw from, each a number >= 1 or a ``(scale_v, scale_h)`` pair,
            e.g. ``[1.1, 1.2, ..., 4.0]`` (Meta-SR) or ``[(2, 3.5), (3.5, 2)]``.
        lr_patch_size: LR patch side P, a multiple of every scale's q (50 for steps of 0.1).
        batch_size, channels, augment, seed, patches_per_image, repeat, cache, start_step,
            scale_augment: as for :func:`sr_patches`.

    Returns:
        ``tf.data.Dataset`` of ``((lr, scale), hr)``: ``lr`` float32 (B, P, P, C); ``scale``
        float32 (B, 2), every row the batch's (scale_v, scale_h); ``hr`` float32
        (B, P * scale_v, P * scale_h, C), whose static shape has unknown height and width.

    Example:
        >>> ds = multiscale_sr_patches("embedded", [1.5, 2, 2.5], lr_patch_size=20, seed=0)
        >>> (lr, scale), hr = next(iter(ds))
    """
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or not scales:
        raise ValueError(f"scales must be a non-empty list of scales, got {scales!r}")
    return _build(
        source,
        list(scales),
        lr_patch_size=lr_patch_size,
        hr_patch_size=None,
        batch_size=batch_size,
        channels=channels,
        augment=augment,
        seed=seed,
        patches_per_image=patches_per_image,
        repeat=repeat,
        cache=cache,
        start_step=start_step,
        with_scale=True,
        scale_augment=scale_augment,
    )
