"""PSNR and SSIM on the Y channel, as super-resolution papers report them.

The protocol (``../shared/data/README.md``), which reproduces the published bicubic baselines:

- SR output rounded to uint8 (MATLAB rounding) before it is measured;
- colour images compared on Y of BT.601 YCbCr (``tfsr.data.rgb_to_y``), on the 0..255 scale and
  not rounded; a single-channel image is its own Y (the benchmark scripts convert only
  three-channel images: Set14 ``bridge`` is measured on its grey values, which is what makes
  the published Set14 figures come out);
- ``crop_border`` pixels (the scale factor) removed from every side;
- PSNR with peak 255; SSIM of Wang et al. with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
  K2 = 0.03, data range 255, filtered with 'valid' borders and averaged over the map (the MATLAB
  reference ``ssim_index``; no downsampling).

:func:`psnr` and :func:`ssim` are the NumPy evaluation metrics; :func:`psnr_tf` is a batched,
differentiable TF estimate for training loops (no uint8 rounding).

Reference: Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
error visibility to structural similarity", IEEE TIP 2004.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfsr.data.color import rgb_to_y

__all__ = ["psnr", "psnr_tf", "ssim", "y_channel"]

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_PEAK = 255.0


def y_channel(image) -> np.ndarray:
    """The channel the metrics compare: Y of BT.601 on the 0..255 scale, float64, (H, W).

    Args:
        image: uint8 RGB (H, W, 3), converted with ``rgb_to_y``; or a single channel, (H, W) or
            (H, W, 1), taken as Y as it is: uint8 grey, or float Y on the 0..255 scale (for
            example ``rgb_to_y(rgb) * 255`` or an SR model's Y output times 255, rounded).

    Returns:
        float64 array (H, W).

    Raises:
        ValueError: another shape, a three-channel image that is not uint8, or a float channel
            whose values all lie in (0, 1] (a [0, 1] image passed by mistake: PSNR on that
            scale is 48 dB too high).
    """
    x = np.asarray(image)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim == 2:
        if x.dtype.kind == "f" and x.size and 0.0 < np.max(x) <= 1.0:
            raise ValueError(
                "a float channel with every value in [0, 1]: the metrics take the 0..255 scale "
                "(multiply by 255 and round, e.g. tfsr.data.to_uint8(y * 255))"
            )
        return x.astype(np.float64)
    if x.ndim == 3 and x.shape[-1] == 3:
        if x.dtype != np.uint8:
            raise ValueError(
                f"colour images must be uint8 RGB (the protocol measures uint8-rounded output), "
                f"got dtype {x.dtype}; round with tfsr.data.to_uint8"
            )
        return rgb_to_y(x.astype(np.float64) / 255.0)[..., 0] * 255.0
    raise ValueError(
        f"expected uint8 RGB (H, W, 3) or a single channel (H, W) or (H, W, 1), "
        f"got shape {x.shape}"
    )


def _cropped_pair(sr, hr, crop_border: int, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = y_channel(sr), y_channel(hr)
    if a.shape != b.shape:
        raise ValueError(f"SR and HR sizes differ: {a.shape} vs {b.shape}")
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    c = int(crop_border)
    if min(a.shape) - 2 * c < min_size:
        raise ValueError(
            f"image of size {a.shape} is too small for crop_border={c} "
            f"(at least {min_size} pixels must remain per side)"
        )
    if c:
        a, b = a[c:-c, c:-c], b[c:-c, c:-c]
    return a, b


def psnr(sr, hr, crop_border: int = 0) -> float:
    """Peak signal-to-noise ratio on Y, in dB (peak 255).

    Args:
        sr: super-resolved image, uint8 RGB (H, W, 3), or a single channel (see
            :func:`y_channel`); round float output to uint8 first, as the protocol does.
        hr: ground truth, same size and kind.
        crop_border: pixels removed from every side before measuring (the scale factor).

    Returns:
        PSNR in dB; ``inf`` for identical images.

    Example:
        >>> hr = np.full((8, 8), 100, np.uint8)
        >>> psnr(hr + 1, hr)  # MSE 1: 10 log10(255^2)
        48.1308036086791
    """
    a, b = _cropped_pair(sr, hr, crop_border, 1)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(_PEAK**2 / mse))


def _gaussian_window() -> np.ndarray:
    """1-D Gaussian of ``_SSIM_WINDOW`` taps, sigma 1.5, summing to 1 (separable factor of
    MATLAB's ``fspecial('gaussian', 11, 1.5)``)."""
    x = np.arange(_SSIM_WINDOW, dtype=np.float64) - (_SSIM_WINDOW - 1) / 2
    g = np.exp(-(x**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """2-D correlation with ``outer(g, g)``, 'valid' borders: (H, W) -> (H - k + 1, W - k + 1)."""
    windows = np.lib.stride_tricks.sliding_window_view(x, len(g), axis=0)
    x = windows @ g
    windows = np.lib.stride_tricks.sliding_window_view(x, len(g), axis=1)
    return windows @ g


def ssim(sr, hr, crop_border: int = 0) -> float:
    """Structural similarity on Y: Gaussian 11x11 window, sigma 1.5, K1 0.01, K2 0.03, L 255.

    The mean of the SSIM map over the 'valid' region (the window never leaves the cropped
    image), as MATLAB's reference ``ssim_index``.

    Args:
        sr: super-resolved image, uint8 RGB (H, W, 3), or a single channel (see
            :func:`y_channel`).
        hr: ground truth, same size and kind.
        crop_border: pixels removed from every side first (the scale factor); at least 11
            pixels must remain each way.

    Returns:
        Mean SSIM, 1.0 for identical images.

    Example:
        >>> hr = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
        >>> ssim(hr, hr, crop_border=2)
        1.0
    """
    a, b = _cropped_pair(sr, hr, crop_border, _SSIM_WINDOW)
    g = _gaussian_window()
    c1 = (_SSIM_K1 * _PEAK) ** 2
    c2 = (_SSIM_K2 * _PEAK) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(np.mean(ssim_map))


def psnr_tf(sr_y, hr_y, crop_border: int = 0) -> tf.Tensor:
    """Per-image Y-PSNR in dB of a batch, in TF, for training loops and validation steps.

    Works on float Y in [0, 1] as models see it (peak 1.0, the same dB as peak 255 on the
    0..255 scale). SR is not rounded to uint8 (so it differs from :func:`psnr` by a few
    hundredths of a dB at most) and gradients flow through it.

    Args:
        sr_y: (N, H, W, 1) float tensor in [0, 1].
        hr_y: (N, H, W, 1) float tensor in [0, 1].
        crop_border: pixels removed from every side first (the scale factor).

    Returns:
        (N,) float32 tensor of PSNR in dB (``inf`` where an image is exact).

    Example:
        >>> sr = tf.fill((2, 8, 8, 1), 0.5)
        >>> psnr_tf(sr, sr + 0.1).numpy().round(2)  # MSE 0.01: 20 dB
        array([20., 20.], dtype=float32)
    """
    if int(crop_border) != crop_border or crop_border < 0:
        raise ValueError(f"crop_border must be a non-negative integer, got {crop_border!r}")
    sr_y = tf.convert_to_tensor(sr_y)
    hr_y = tf.cast(tf.convert_to_tensor(hr_y), sr_y.dtype)
    if sr_y.shape.rank != 4 or hr_y.shape.rank != 4:
        raise ValueError(
            f"psnr_tf expects (N, H, W, C) batches, got shapes {sr_y.shape} and {hr_y.shape}"
        )
    c = int(crop_border)
    if c:
        sr_y, hr_y = sr_y[:, c:-c, c:-c], hr_y[:, c:-c, c:-c]
    mse = tf.reduce_mean(
        tf.square(tf.cast(sr_y, tf.float32) - tf.cast(hr_y, tf.float32)), [1, 2, 3]
    )
    return -10.0 * tf.math.log(mse) / tf.math.log(10.0)
