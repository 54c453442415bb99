"""grid_sample / offset_sample against a NumPy grid_sample, tf.image.resize and finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from tfsr.ops.grid_sample import grid_sample, offset_sample
from tfsr.testing import check_gradients


def grid_sample_np(images, grid):
    """PyTorch grid_sample(mode="bilinear", padding_mode="border", align_corners=False), NHWC.

    ``grid`` is (N, Ho, Wo, 2) or (N, Ho, Wo, G, 2); the result is float64.
    """
    images = np.asarray(images, np.float64)
    grid = np.asarray(grid, np.float64)
    if grid.ndim == 4:
        grid = grid[:, :, :, None, :]
    n, h, w, c = images.shape
    g = grid.shape[3]
    # Unnormalise, then clip the coordinate to the border pixels' centres.
    x = np.clip(((grid[..., 0] + 1.0) * w - 1.0) / 2.0, 0.0, w - 1.0)  # (N, Ho, Wo, G)
    y = np.clip(((grid[..., 1] + 1.0) * h - 1.0) / 2.0, 0.0, h - 1.0)
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    grouped = images.reshape(n, h, w, g, c // g)
    b = np.arange(n)[:, None, None, None]
    k = np.arange(g)
    out = (
        grouped[b, y0, x0, k] * (1 - fx) * (1 - fy)
        + grouped[b, y0, x1, k] * fx * (1 - fy)
        + grouped[b, y1, x0, k] * (1 - fx) * fy
        + grouped[b, y1, x1, k] * fx * fy
    )
    return out.reshape(grid.shape[:3] + (c,))


def offsets_to_grid(offsets, scale, height, width):
    """The normalised grid that samples where ``offset_sample(..., offsets, scale)`` does."""
    offsets = np.asarray(offsets, np.float64)
    out_h, out_w = offsets.shape[1:3]
    px = (np.arange(out_w) + 0.5) / scale - 0.5
    py = (np.arange(out_h) + 0.5) / scale - 0.5
    x = px[None, None, :, None] + offsets[..., 0]
    y = py[None, :, None, None] + offsets[..., 1]
    return np.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], axis=-1)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_numpy_reference_golden():
    """The reference itself, by hand, on a 2x2 image [[0, 1], [2, 3]]."""
    images = np.arange(4.0).reshape(1, 2, 2, 1)
    # centre, a pixel centre, a quarter step, the outer corner (border), far outside (border).
    grid = np.array([[[[0.0, 0.0], [0.5, -0.5], [0.0, -0.5], [-1.0, -1.0], [5.0, 0.0]]]])
    np.testing.assert_allclose(grid_sample_np(images, grid)[0, 0, :, 0], [1.5, 1.0, 0.5, 0.0, 2.0])


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("groups", [None, 1, 3])
def test_grid_sample_matches_numpy(rng, groups, jit_compile):
    images = rng.normal(size=(2, 5, 7, 6)).astype(np.float32)
    shape = (2, 4, 9) + (() if groups is None else (groups,)) + (2,)
    grid = rng.uniform(-1.5, 1.5, size=shape).astype(np.float32)  # about a third outside
    got = grid_sample(images, grid, jit_compile=jit_compile)
    assert got.shape == (2, 4, 9, 6) and got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), grid_sample_np(images, grid), atol=2e-6)


def test_grid_sample_at_pixel_centres_is_exact(rng):
    # Power-of-two sizes, so that the normalised centres and their unnormalisation are exact in
    # float32 (for other sizes the normalised form itself rounds, in PyTorch as well).
    images = rng.normal(size=(1, 4, 8, 3)).astype(np.float32)
    ys, xs = np.meshgrid(np.arange(4), np.arange(8), indexing="ij")
    grid = np.stack([(2 * xs + 1) / 8 - 1, (2 * ys + 1) / 4 - 1], axis=-1)[None]
    got = grid_sample(images, grid.astype(np.float32)).numpy()
    np.testing.assert_array_equal(got, images)


@pytest.mark.parametrize("size", [(1, 1), (1, 4), (3, 1), (2, 2)])
def test_one_or_two_pixel_images_and_last_pixel_centres(rng, size):
    """The left/top corner is clamped to [0, size - 2]; 1-pixel axes have no second corner."""
    h, w = size
    images = rng.normal(size=(1, h, w, 2)).astype(np.float32)
    # Pixel positions: the last centre exactly, just inside it, beyond it, before the first.
    px = np.array([w - 1, w - 1.25, w + 0.5, -0.75, 0.0, w - 1, -3.0, 0.3])
    py = np.array([h - 1, 0.0, h - 1.5, h - 1, -2.0, h + 3.0, h - 1, 0.6])
    grid = np.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1).reshape(1, 2, 4, 2)
    grid = grid.astype(np.float32)
    for jit_compile in (True, False):
        got = grid_sample(images, grid, jit_compile=jit_compile).numpy()
        np.testing.assert_allclose(got, grid_sample_np(images, grid), atol=1e-6)
    # At the last pixel centre the value is that pixel's.
    np.testing.assert_allclose(got[0, 0, 0], images[0, h - 1, w - 1], atol=1e-6)


@pytest.mark.parametrize("scale,size", [(2, (5, 7)), (3, (4, 3)), (4, (3, 5))])
def test_zero_offsets_equal_bilinear_resize(rng, scale, size):
    images = rng.normal(size=(2,) + size + (8,)).astype(np.float32)
    out_size = (scale * size[0], scale * size[1])
    offsets = np.zeros((2,) + out_size + (4, 2), np.float32)
    want = tf.image.resize(images, out_size, "bilinear").numpy()
    for jit_compile in (True, False):
        got = offset_sample(images, offsets, scale, jit_compile=jit_compile).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_offset_sample_matches_numpy_grid_sample(rng, jit_compile):
    scale, (h, w) = 3, (4, 5)
    images = rng.normal(size=(2, h, w, 8)).astype(np.float32)
    # Offsets up to +-3 input pixels: many positions leave the image (border padding).
    offsets = rng.uniform(-3.0, 3.0, size=(2, scale * h, scale * w, 2, 2)).astype(np.float32)
    # A few exact integer positions: the base position (X + 0.5) / 3 - 0.5 is an integer for X % 3
    # == 1, so zero offset there lands on a pixel centre.
    offsets[:, 1::3, 1::3] = np.round(offsets[:, 1::3, 1::3])
    got = offset_sample(images, offsets, scale, jit_compile=jit_compile).numpy()
    want = grid_sample_np(images, offsets_to_grid(offsets, scale, h, w))
    np.testing.assert_allclose(got, want, atol=2e-6)
    # There the result is the (clamped) pixel itself, exactly.
    on_centres = offsets[:, 1::3, 1::3].astype(int)  # (2, h, w, 2 groups, 2)
    x = np.clip(np.arange(w)[None, None, :, None] + on_centres[..., 0], 0, w - 1)
    y = np.clip(np.arange(h)[None, :, None, None] + on_centres[..., 1], 0, h - 1)
    grouped = images.reshape(2, h, w, 2, 4)
    pixels = grouped[np.arange(2)[:, None, None, None], y, x, np.arange(2)]
    np.testing.assert_array_equal(got[:, 1::3, 1::3], pixels.reshape(2, h, w, 8))


def test_offset_sample_ungrouped_offsets(rng):
    images = rng.normal(size=(1, 3, 4, 5)).astype(np.float32)
    offsets = rng.uniform(-1, 1, size=(1, 6, 8, 2)).astype(np.float32)
    want = grid_sample_np(images, offsets_to_grid(offsets[:, :, :, None], 2, 3, 4))
    np.testing.assert_allclose(offset_sample(images, offsets, 2).numpy(), want, atol=2e-6)


def test_unknown_spatial_size_in_a_graph(rng):
    images = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
    offsets = rng.uniform(-1, 1, size=(2, 10, 12, 2, 2)).astype(np.float32)
    fn = tf.function(
        lambda a, b: offset_sample(a, b, 2),
        input_signature=[
            tf.TensorSpec((None, None, None, 4)),
            tf.TensorSpec((None, None, None, 2, 2)),
        ],
    )
    want = grid_sample_np(images, offsets_to_grid(offsets, 2, 5, 6))
    np.testing.assert_allclose(fn(images, offsets).numpy(), want, atol=2e-6)


def test_float16_images_use_float32_positions(rng):
    # 200 pixels wide: float16 positions would be off by up to 0.06 px; float32 ones are not.
    images = rng.normal(size=(1, 2, 200, 2)).astype(np.float16)
    grid = rng.uniform(-1, 1, size=(1, 2, 50, 2)).astype(np.float32)
    got = grid_sample(images, grid)
    assert got.dtype == tf.float16
    want = grid_sample_np(images.astype(np.float32), grid)
    np.testing.assert_allclose(got.numpy().astype(np.float64), want, atol=1e-2)


def _away_from_pixel_centres(positions, margin=0.1):
    """Moves float positions (in pixels) so that their fractional part is in [margin, 1-margin]."""
    frac = positions - np.floor(positions)
    return np.floor(positions) + margin + frac * (1 - 2 * margin)


def test_offset_sample_gradients(rng):
    scale, (h, w) = 2, (3, 4)
    images = rng.normal(size=(1, h, w, 4))
    # Sample positions inside the image (no clamping) with fractional parts in [0.1, 0.9], so that
    # the finite differences (delta 1e-4) never cross a pixel centre.
    px = rng.uniform(0.0, w - 1.0, size=(1, scale * h, scale * w, 2))
    py = rng.uniform(0.0, h - 1.0, size=(1, scale * h, scale * w, 2))
    px, py = _away_from_pixel_centres(px), _away_from_pixel_centres(py)
    base_x = (np.arange(scale * w) + 0.5) / scale - 0.5
    base_y = (np.arange(scale * h) + 0.5) / scale - 0.5
    offsets = np.stack([px - base_x[None, None, :, None], py - base_y[None, :, None, None]], -1)
    for jit_compile in (True, False):
        worst = check_gradients(
            lambda a, o, j=jit_compile: offset_sample(a, o, scale, jit_compile=j),
            [images, offsets],
        )
        assert worst < 1e-6


def test_grid_sample_gradients_inside_and_outside(rng):
    h, w = 3, 4
    images = rng.normal(size=(1, h, w, 2))
    # Half the points inside (away from pixel centres), half with x or y well outside: along that
    # axis the position is clamped to the border and its gradient is zero.
    px = _away_from_pixel_centres(rng.uniform(0.0, w - 1.0, size=(1, 2, 3)))
    py = _away_from_pixel_centres(rng.uniform(0.0, h - 1.0, size=(1, 2, 3)))
    px[0, 1] = [-1.7, w + 0.6, 1.5]
    py[0, 1] = [1.3, 0.5, -2.2]
    grid = np.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], axis=-1)
    check_gradients(grid_sample, [images, grid])
    with tf.GradientTape() as tape:
        g = tf.constant(grid)
        tape.watch(g)
        out = grid_sample(tf.constant(images), g)
    grad = tape.gradient(out, g).numpy()[0, 1]  # (3 points, [x, y])
    np.testing.assert_array_equal(grad[[0, 1, 2], [0, 0, 1]], 0.0)
    assert np.all(grad[[0, 1, 2], [1, 1, 0]] != 0.0)


@pytest.mark.parametrize(
    "images_shape,offsets_shape,scale,match",
    [
        ((1, 2, 2, 4), (1, 4, 4, 2, 2), 0, "scale must be a positive integer, got 0"),
        ((1, 2, 2, 4), (1, 4, 4, 2, 2), 1.5, "scale must be a positive integer, got 1.5"),
        ((2, 2, 4), (1, 4, 4, 2, 2), 2, r"images must be a 4-D tensor \(N, H, W, C\)"),
        ((1, 2, 2, 4), (1, 4, 4, 3), 2, r"offsets must have shape \(N, H_out, W_out, 2\)"),
        ((1, 2, 2, 4), (1, 4, 4, 3, 2), 2, "4 channels, which offsets's 3 groups do not divide"),
        ((1, 2, 2, 4), (2, 4, 4, 2, 2), 2, "batch size 1 but offsets has batch size 2"),
        ((1, 2, 3, 4), (1, 4, 4, 2, 2), 2, "offsets width must be scale . images width = 2 . 3"),
        ((1, 2, 3, 4), (1, 5, 9, 2, 2), 3, "offsets height must be .* got 5"),
    ],
)
def test_offset_sample_bad_arguments(images_shape, offsets_shape, scale, match):
    with pytest.raises(ValueError, match=match):
        offset_sample(tf.zeros(images_shape), tf.zeros(offsets_shape), scale)


def test_grid_sample_bad_arguments():
    with pytest.raises(ValueError, match="images must be a floating tensor, got dtype int32"):
        grid_sample(tf.zeros((1, 2, 2, 1), tf.int32), tf.zeros((1, 1, 1, 2)))
    with pytest.raises(ValueError, match=r"grid must have shape .* got \(1, 1, 2\)"):
        grid_sample(tf.zeros((1, 2, 2, 1)), tf.zeros((1, 1, 2)))


def test_xla_gradient_matches_the_plain_graph(rng):
    """The XLA path has its own gradient (recomputed gathers, one segment sum); the plain graph is
    differentiated by TensorFlow. Both agree, also with points outside the image and many points
    on one pixel (the table gradient sums them)."""
    images = tf.constant(rng.normal(size=(2, 4, 5, 6)).astype(np.float32))
    offsets = tf.constant(rng.uniform(-2.5, 2.5, size=(2, 12, 15, 3, 2)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(2, 12, 15, 6)).astype(np.float32))
    grads = []
    for jit_compile in (True, False):
        with tf.GradientTape() as tape:
            tape.watch([images, offsets])
            out = offset_sample(images, offsets, 3, jit_compile=jit_compile)
            loss = tf.reduce_sum(out * upstream)
        grads.append(tape.gradient(loss, [images, offsets]))
    for xla, plain in zip(*grads, strict=True):
        np.testing.assert_allclose(xla.numpy(), plain.numpy(), atol=1e-5)
    assert np.abs(grads[0][1].numpy()).max() > 0.1
