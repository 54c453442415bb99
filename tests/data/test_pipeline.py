"""Tests for tfsr.data.pipeline: exact LR patches, augmentation, determinism, resuming, errors."""

import importlib
import warnings
from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

from tfsr.data import rgb_to_y
from tfsr.data.io import ImageReadError, read_image, write_image
from tfsr.data.pipeline import count_training_images, multiscale_sr_patches, sr_patches
from tfsr.data.sources import ImageSource, image_folder

imresize_module = importlib.import_module("tfsr.data.imresize")


def _noise(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _ramps(h, w):
    """Linear ramps: unique at every position, and full of exact .5 ties after resizing."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(7 * x) % 256, (11 * y) % 256, (3 * x + 5 * y) % 256], -1).astype(np.uint8)


IMAGES = {"a.png": _noise(45, 52, 1), "b.png": _ramps(38, 61), "c.png": _noise(41, 37, 2)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("train")
    for name, image in IMAGES.items():
        write_image(path / name, image)
    return path


def _as_uint8(x):
    return np.round(np.asarray(x) * 255.0).astype(np.uint8)


def _ratio(s):
    f = Fraction(s).limit_denominator(100)
    return f.numerator, f.denominator


def _locate(hr, images, p_v, p_h):
    """(image index, top, left) of the uint8 HR patch, searched on the grid of multiples of p."""
    for k, image in enumerate(images):
        for top in range(0, image.shape[0] - hr.shape[0] + 1, p_v):
            for left in range(0, image.shape[1] - hr.shape[1] + 1, p_h):
                if np.array_equal(image[top : top + hr.shape[0], left : left + hr.shape[1]], hr):
                    return k, top, left
    raise AssertionError("HR patch not found on the LR-aligned grid of any image")


def _check_alignment(lr_batch, hr_batch, scale, lr_patch, counts=None, images=None):
    """Every LR patch equals the crop of the LR made from the whole modcropped image (one of
    ``images``, default the training folder's)."""
    s_v, s_h = scale if isinstance(scale, tuple) else (scale, scale)
    (p_v, q_v), (p_h, q_h) = _ratio(s_v), _ratio(s_h)
    images = list(IMAGES.values()) if images is None else images
    hrs = [imresize_module.modcrop(im, scale) for im in images]
    lrs = [imresize_module.imresize(hr, scale=(1 / s_v, 1 / s_h)) for hr in hrs]
    for lr, hr in zip(_as_uint8(lr_batch), _as_uint8(hr_batch), strict=True):
        k, top, left = _locate(hr, hrs, p_v, p_h)
        lr_top, lr_left = top // p_v * q_v, left // p_h * q_h
        np.testing.assert_array_equal(
            lr, lrs[k][lr_top : lr_top + lr_patch, lr_left : lr_left + lr_patch]
        )
        if counts is not None:
            counts[k] += 1


# ------------------------------------------------------------------------------ exact LR patches


@pytest.mark.parametrize(
    "scale, lr_patch",
    [(2, 8), (3, 6), (4, 5), (2.5, 8), (1.3, 10), (1.2, 10), (3.7, 10), ((2, 3.5), 8), (1, 8)],
)
def test_lr_patch_is_the_crop_of_the_whole_image_lr(folder, scale, lr_patch):
    ds = sr_patches(
        image_folder(folder),
        scale,
        lr_patch_size=lr_patch,
        batch_size=6,
        channels="rgb",
        augment=False,
        seed=3,
        patches_per_image=8,
        repeat=False,
    )
    counts = [0, 0, 0]
    batches = 0
    for lr, hr in ds:
        _check_alignment(lr, hr, scale, lr_patch, counts)
        batches += 1
    assert batches == 3 * 8 // 6
    assert counts == [8, 8, 8]  # each image patches_per_image times per epoch


def test_multiscale_batches_carry_their_scale_and_are_exact(folder):
    scales = [1.5, (2, 3.5), 3]
    ds = multiscale_sr_patches(
        image_folder(folder),
        scales,
        lr_patch_size=10,
        batch_size=4,
        channels="rgb",
        augment=False,
        seed=0,
    )
    assert ds.element_spec[0][0].shape.as_list() == [4, 10, 10, 3]
    assert ds.element_spec[1].shape.as_list() == [4, None, None, 3]
    seen = set()
    for (lr, scale), hr in ds.take(8):
        scale = scale.numpy()
        assert scale.shape == (4, 2) and np.all(scale == scale[0])
        s_v, s_h = (float(v) for v in scale[0])
        assert hr.shape == (4, round(10 * s_v), round(10 * s_h), 3)
        expected = (s_v, s_h) if s_v != s_h else s_v
        _check_alignment(lr, hr, expected, 10)
        seen.add((s_v, s_h))
    assert seen == {(1.5, 1.5), (2.0, 3.5), (3.0, 3.0)}


def test_not_cached_gives_the_same_batches(folder):
    kwargs = dict(lr_patch_size=6, batch_size=4, channels="rgb", seed=5)
    cached = sr_patches(image_folder(folder), 3, **kwargs)
    decoded = sr_patches(image_folder(folder), 3, cache=False, **kwargs)
    for (lr_a, hr_a), (lr_b, hr_b) in zip(cached.take(3), decoded.take(3), strict=True):
        np.testing.assert_array_equal(lr_a, lr_b)
        np.testing.assert_array_equal(hr_a, hr_b)


# --------------------------------------------------------------------- shapes, channels, augment


def test_shapes_dtypes_ranges_and_y_channel(folder):
    common = dict(lr_patch_size=8, batch_size=5, seed=1)
    rgb = sr_patches(image_folder(folder), 2, channels="rgb", **common)
    y = sr_patches(image_folder(folder), 2, **common)  # channels="y" by default
    assert rgb.element_spec[0].shape.as_list() == [5, 8, 8, 3]
    assert y.element_spec[1].shape.as_list() == [5, 16, 16, 1]
    (lr_rgb, hr_rgb), (lr_y, hr_y) = next(iter(rgb)), next(iter(y))
    assert lr_rgb.dtype == hr_y.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(lr_rgb)) and float(tf.reduce_max(hr_rgb)) <= 1.0
    np.testing.assert_allclose(lr_y, rgb_to_y(lr_rgb), atol=1e-6)
    np.testing.assert_allclose(hr_y, rgb_to_y(hr_rgb), atol=1e-6)
    assert float(tf.reduce_min(hr_y)) >= 16 / 255 - 1e-6
    assert float(tf.reduce_max(hr_y)) <= 235 / 255 + 1e-6


def test_hr_patch_size_and_anisotropic_shapes(folder):
    ds = sr_patches(image_folder(folder), 2.5, hr_patch_size=20, batch_size=2, seed=0)
    assert ds.element_spec[0].shape.as_list() == [2, 8, 8, 1]
    ds = sr_patches(image_folder(folder), (2, 3.5), lr_patch_size=8, batch_size=2, seed=0)
    for lr, hr in ds.take(4):  # augmented, but never transposed: (16, 28) stays (16, 28)
        assert lr.shape == (2, 8, 8, 1) and hr.shape == (2, 16, 28, 1)


def _dihedral(x, k):
    """The k-th of the 8 flips / rotations of an (H, W, C) array."""
    x = x[::-1] if k & 1 else x
    x = x[:, ::-1] if k & 2 else x
    return np.swapaxes(x, 0, 1) if k & 4 else x


def test_augmentation_applies_the_same_transform_to_lr_and_hr(folder):
    common = dict(lr_patch_size=8, batch_size=16, channels="rgb", seed=7)
    plain = next(iter(sr_patches(image_folder(folder), 2, augment=False, **common)))
    augmented = next(iter(sr_patches(image_folder(folder), 2, **common)))
    used = set()
    for lr0, hr0, lr1, hr1 in zip(*plain, *augmented, strict=True):
        # The crop does not depend on augment; find the transform from HR, check it on LR.
        matches = [k for k in range(8) if np.array_equal(_dihedral(hr0.numpy(), k), hr1)]
        assert len(matches) == 1
        np.testing.assert_array_equal(_dihedral(lr0.numpy(), matches[0]), lr1)
        used.add(matches[0])
    assert len(used) >= 4  # 16 draws out of 8 transforms


# -------------------------------------------------------------------- determinism and resuming


def _batches(ds, n):
    return [tuple(np.asarray(t) for t in batch) for batch in ds.take(n)]


def test_same_seed_same_batches_other_seed_other_batches(folder):
    def make(seed):
        return sr_patches(image_folder(folder), 2, lr_patch_size=8, batch_size=4, seed=seed)

    first, again, other = _batches(make(11), 4), _batches(make(11), 4), _batches(make(12), 4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(first[0][1], other[0][1])


def test_start_step_resumes_the_same_sequence(folder):
    def make(**kwargs):
        return sr_patches(image_folder(folder), 2, lr_patch_size=8, batch_size=5, seed=4, **kwargs)

    # 3 images x 4 patches = 12 per epoch: steps 2..5 cross two epoch boundaries.
    full = _batches(make(patches_per_image=4), 6)
    resumed = _batches(make(patches_per_image=4, start_step=2), 4)
    skipped = _batches(make(patches_per_image=4).skip(2), 4)
    for a, b, c in zip(full[2:], resumed, skipped, strict=True):
        np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(a[1], c[1])
        np.testing.assert_array_equal(a[0], b[0])


def test_multiscale_start_step_resumes_with_the_same_scales(folder):
    def make(start_step):
        return multiscale_sr_patches(
            image_folder(folder),
            [2, 3, 4],
            lr_patch_size=5,
            batch_size=3,
            seed=9,
            start_step=start_step,
        )

    full = [(s.numpy()[0].tolist(), hr.numpy()) for (_, s), hr in make(0).take(7)]
    resumed = [(s.numpy()[0].tolist(), hr.numpy()) for (_, s), hr in make(4).take(3)]
    for (scale_a, hr_a), (scale_b, hr_b) in zip(full[4:], resumed, strict=True):
        assert scale_a == scale_b
        np.testing.assert_array_equal(hr_a, hr_b)


# ------------------------------------------------------------------------------ images and errors


def test_small_images_are_skipped_with_one_warning(tmp_path):
    write_image(tmp_path / "big.png", _noise(30, 30, 0))
    write_image(tmp_path / "tiny.png", _noise(10, 12, 1))
    write_image(tmp_path / "thin.png", _noise(40, 9, 2))
    with pytest.warns(UserWarning, match=r"skipping 2 image.*16x16.*thin.png \(40x9\).*tiny.png"):
        ds = sr_patches(image_folder(tmp_path), 2, lr_patch_size=8, batch_size=2, seed=0)
    next(iter(ds))
    with pytest.raises(ValueError, match="at least 32x32 pixels.*smaller patch size"):
        with pytest.warns(UserWarning):
            sr_patches(image_folder(tmp_path), 2, lr_patch_size=16, batch_size=2)


def _augmented_epoch(path, originals, factors, *, batch_size, patches_per_image, seed):
    """One epoch at x2 (LR patch 8) with ``scale_augment=factors``, every patch checked against
    the images it may come from: each original, then its copies in the order of the factors
    (MATLAB bicubic, uint8). Returns those images, the patches cut from each and the batches."""
    ds = sr_patches(
        image_folder(path),
        2,
        lr_patch_size=8,
        batch_size=batch_size,
        channels="rgb",
        augment=False,
        seed=seed,
        patches_per_image=patches_per_image,
        repeat=False,
        scale_augment=factors,
    )
    images = [
        copy
        for image in originals
        for copy in [image] + [imresize_module.imresize(image, f) for f in factors]
    ]
    counts = [0] * len(images)
    batches = 0
    for lr, hr in ds:
        _check_alignment(lr, hr, 2, 8, counts, images=images)
        batches += 1
    return images, counts, batches


def test_scale_augment_adds_shrunk_copies_as_images(folder):
    _, counts, batches = _augmented_epoch(
        folder, IMAGES.values(), (0.8, 0.6), batch_size=6, patches_per_image=4, seed=3
    )
    assert batches == 9 * 4 // 6  # an epoch visits the 3 images and their 6 copies
    assert counts == [4] * 9


def test_scale_augment_leaves_out_copies_smaller_than_the_patch(tmp_path):
    write_image(tmp_path / "big.png", _noise(40, 40, 0))
    with pytest.warns(UserWarning, match=r"skipping 1 image.*big.png shrunk by 0.3 \(12x12\)"):
        ds = sr_patches(
            image_folder(tmp_path),
            2,
            lr_patch_size=8,
            batch_size=2,
            patches_per_image=1,
            repeat=False,
            scale_augment=[0.5, 0.3],
        )
    assert len(list(ds)) == 1  # the image and its 20x20 copy, one patch each
    factors = [round(0.05 + 0.02 * k, 2) for k in range(12)]  # 2x2 to 12x12: all too small
    with pytest.warns(UserWarning, match=r"skipping 12 image.*by 0.23 \(10x10\) and 2 more$"):
        sr_patches(image_folder(tmp_path), 2, lr_patch_size=8, scale_augment=factors)


@pytest.mark.parametrize(
    "factors",
    [(1.0,), (0.5, 0), (-0.5,), (True,), ("0.5",), "0.5", 0.5, (0.5, 0.5), (float("nan"),)],
)
def test_scale_augment_errors(folder, factors):
    with pytest.raises(ValueError, match=r"scale_augment must be a list of distinct numbers in"):
        sr_patches(image_folder(folder), 2, lr_patch_size=8, scale_augment=factors)


def test_scale_augment_copy_sizes_follow_imresize(tmp_path):
    # 0.55 * 180 = 99.00000000000001: imresize makes 99 columns, not ceil's 100.
    image = _noise(100, 180, 5)
    write_image(tmp_path / "a.png", image)
    images, counts, _ = _augmented_epoch(
        tmp_path, [image], [0.55], batch_size=4, patches_per_image=8, seed=0
    )
    assert images[1].shape == (55, 99, 3)
    assert counts == [8, 8]


def test_scale_augment_needs_the_cache(folder):
    with pytest.raises(ValueError, match="scale_augment.*needs cache=True"):
        sr_patches(image_folder(folder), 2, lr_patch_size=8, cache=False, scale_augment=[0.5])


def test_empty_source_and_folder(tmp_path):
    with pytest.raises(ValueError, match="'nothing' holds no image"):
        sr_patches(ImageSource("nothing", ()), 2, lr_patch_size=8)
    with pytest.raises(ValueError, match="no image files"):
        sr_patches(str(tmp_path), 2, lr_patch_size=8)


def test_corrupt_file_raises_or_is_skipped(tmp_path):
    write_image(tmp_path / "good.png", _noise(30, 30, 0))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="bad.png"):
        sr_patches(image_folder(tmp_path), 2, lr_patch_size=8)
    with pytest.warns(UserWarning, match="bad.png"):
        ds = sr_patches(image_folder(tmp_path, skip_bad=True), 2, lr_patch_size=8, batch_size=2)
    lr, hr = next(iter(ds))
    assert lr.shape == (2, 8, 8, 1)
    # Counting (for --epochs) leaves the bad file out without a second warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (
            count_training_images(image_folder(tmp_path, skip_bad=True), [2], lr_patch_size=8) == 1
        )
    with pytest.raises(ImageReadError, match="bad.png"):
        count_training_images(image_folder(tmp_path), [2], lr_patch_size=8)


def test_grey_and_rgba_files(tmp_path):
    grey = _noise(24, 26, 3)[..., 0]
    rgba = np.concatenate([_ramps(24, 26), np.full((24, 26, 1), 40, np.uint8)], axis=-1)
    write_image(tmp_path / "grey.png", grey)
    write_image(tmp_path / "rgba.png", rgba)
    ds = sr_patches(
        image_folder(tmp_path),
        2,
        lr_patch_size=6,
        batch_size=8,
        channels="rgb",
        seed=2,
        augment=False,
    )
    lr, hr = (_as_uint8(t) for t in next(iter(ds)))
    images = [read_image(tmp_path / "grey.png"), rgba[..., :3]]
    kinds = set()
    for lr_patch, hr_patch in zip(lr, hr, strict=True):
        k, top, left = _locate(hr_patch, images, 2, 2)
        kinds.add(k)
        if k == 0:  # grey: R = G = B in both patches
            assert np.array_equal(hr_patch[..., 0], hr_patch[..., 2])
            assert np.array_equal(lr_patch[..., 0], lr_patch[..., 1])
        full_lr = imresize_module.imresize(images[k], 0.5)
        np.testing.assert_array_equal(
            lr_patch, full_lr[top // 2 : top // 2 + 6, left // 2 :][:, :6]
        )
    assert kinds == {0, 1}


def test_embedded_source_feeds_the_pipeline():
    ds = sr_patches("embedded", 3, lr_patch_size=8, batch_size=2, seed=0)
    lr, hr = next(iter(ds))
    assert lr.shape == (2, 8, 8, 1) and hr.shape == (2, 24, 24, 1)
    assert float(tf.reduce_max(hr)) > float(tf.reduce_min(hr))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(scale=0.5, lr_patch_size=8), r"scale must be a number >= 1, got 0.5"),
        (dict(scale=1.234567, lr_patch_size=8), r"1.234567 is not a ratio p/q"),
        (dict(scale=1.3, lr_patch_size=16), r"lr_patch_size 16.*1.3 \(= 13/10\).*multiple of 10"),
        (dict(scale=2.5, hr_patch_size=16), r"hr_patch_size 16.*multiple of 5"),
        (dict(scale=2, lr_patch_size=8, hr_patch_size=16), "exactly one of"),
        (dict(scale=2), "exactly one of"),
        (dict(scale=(2, 3, 4), lr_patch_size=8), r"\(vertical, horizontal\) pair"),
        (dict(scale=2, lr_patch_size=8, channels="yuv"), r"channels.*'yuv'"),
        (dict(scale=2, lr_patch_size=8, batch_size=0), "batch_size must be a positive"),
        (dict(scale=2, lr_patch_size=8, start_step=-1), "start_step must be a non-negative"),
        (
            dict(scale=2, lr_patch_size=8, repeat=False, batch_size=64, patches_per_image=4),
            r"holds 12 patches \(3 images x 4\)",
        ),
    ],
)
def test_bad_arguments(folder, kwargs, message):
    scale = kwargs.pop("scale")
    with pytest.raises(ValueError, match=message):
        sr_patches(image_folder(folder), scale, **kwargs)


def test_multiscale_argument_errors(folder):
    with pytest.raises(ValueError, match="non-empty list of scales"):
        multiscale_sr_patches(image_folder(folder), 2, lr_patch_size=8)
    with pytest.raises(ValueError, match=r"lr_patch_size 8 .*1.1 \(= 11/10\)"):
        multiscale_sr_patches(image_folder(folder), [2, 1.1], lr_patch_size=8)
    with pytest.raises(TypeError, match="ImageSource or a source spec"):
        sr_patches([folder], 2, lr_patch_size=8)
