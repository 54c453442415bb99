"""BT.601 YCbCr conversion as MATLAB's ``rgb2ycbcr`` / ``ycbcr2rgb`` (studio range).

For R, G, B in [0, 1]::

    Y  = (16  +  65.481 R + 128.553 G +  24.966 B) / 255      in [16/255, 235/255]
    Cb = (128 -  37.797 R -  74.203 G + 112.000 B) / 255      in [16/255, 240/255]
    Cr = (128 + 112.000 R -  93.786 G -  18.214 B) / 255      in [16/255, 240/255]

Y of this transform is the channel on which every SR paper reports PSNR and SSIM. All functions
take and return floats in [0, 1] (NumPy arrays or ``tf.Tensor``; the result is the same kind and
float dtype), channels last: (..., 3) for colour. A grey image, (H, W) or (..., 1), is treated as
R = G = B. Nothing is clipped.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["grey_to_rgb", "rgb_to_grey", "rgb_to_ycbcr", "rgb_to_y", "ycbcr_to_rgb"]

# Rows: Y, Cb, Cr; columns: R, G, B (ITU-R BT.601, scaled to 8-bit studio range).
_RGB_TO_YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ]
)
_OFFSET = np.array([16.0, 128.0, 128.0])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def _float_input(x, name: str):
    """``x`` as a float NumPy array or tensor; raises on integer input."""
    if tf.is_tensor(x):
        x = tf.convert_to_tensor(x)
        is_float, dtype_name = x.dtype.is_floating, x.dtype.name
    else:
        x = np.asarray(x)
        is_float, dtype_name = x.dtype.kind == "f", str(x.dtype)
    if not is_float:
        raise TypeError(
            f"{name} expects a float image in [0, 1], got dtype {dtype_name} "
            "(divide uint8 images by 255 first)"
        )
    return x


def _is_grey(x, name: str) -> bool:
    """True for (H, W) and (..., 1); False for (..., 3); raises for other channel counts."""
    shape = tuple(x.shape)
    if len(shape) == 2:
        return True
    if len(shape) >= 3 and shape[-1] in (1, 3):
        return shape[-1] == 1
    raise ValueError(
        f"{name} expects an image (H, W), (..., 1) or (..., 3) with channels last, "
        f"got shape {shape}"
    )


def grey_to_rgb(x):
    """Grey (H, W) or (..., 1) repeated to (..., 3), R = G = B; (..., 3) returned unchanged.

    Any dtype; NumPy array or ``tf.Tensor`` (the result is the same kind).
    """
    return _as_rgb(x, len(tuple(x.shape)) == 2 or tuple(x.shape)[-1:] == (1,))


def _as_rgb(x, grey: bool):
    """Grey (H, W) or (..., 1) repeated to (..., 3); colour returned unchanged."""
    if not grey:
        return x
    if tf.is_tensor(x):
        x = x[..., None] if x.shape.rank == 2 else x
        return tf.concat([x, x, x], axis=-1)
    x = x[..., None] if x.ndim == 2 else x
    return np.concatenate([x, x, x], axis=-1)


def _affine(x, matrix: np.ndarray, offset: np.ndarray):
    """``matrix @ pixel + offset`` over the last axis, in the float dtype of ``x``."""
    if tf.is_tensor(x):
        m = tf.constant(matrix, x.dtype)
        return tf.einsum("...c,dc->...d", x, m) + tf.constant(offset, x.dtype)
    return (x @ matrix.T.astype(x.dtype) + offset.astype(x.dtype)).astype(x.dtype)


def rgb_to_ycbcr(rgb):
    """RGB in [0, 1] to BT.601 YCbCr in [16/255, 235/255] (Y) and [16/255, 240/255] (Cb, Cr).

    Args:
        rgb: float array or tensor, (..., 3); or grey (H, W) or (..., 1), taken as R = G = B.

    Returns:
        YCbCr, (..., 3) (grey (H, W) gives (H, W, 3)), same kind and float dtype as ``rgb``.

    Example:
        >>> rgb_to_ycbcr(np.ones((1, 1, 3)))[0, 0] * 255
        array([235., 128., 128.])
    """
    x = _float_input(rgb, "rgb_to_ycbcr")
    x = _as_rgb(x, _is_grey(x, "rgb_to_ycbcr"))
    return _affine(x, _RGB_TO_YCBCR / 255.0, _OFFSET / 255.0)


def rgb_to_y(rgb):
    """The Y (luma) channel of BT.601 YCbCr, in [16/255, 235/255], from RGB in [0, 1].

    Args:
        rgb: float array or tensor, (..., 3); or grey (H, W) or (..., 1), taken as R = G = B.

    Returns:
        Y, (..., 1) for (..., 3) or (..., 1) input, (H, W) for (H, W) input; same kind and float
        dtype as ``rgb``.

    Example:
        >>> float(rgb_to_y(np.array([[[1.0, 0.0, 0.0]]]))[0, 0, 0] * 255)  # 16 + 65.481
        81.481
    """
    x = _float_input(rgb, "rgb_to_y")
    flat = len(tuple(x.shape)) == 2
    x = _as_rgb(x, _is_grey(x, "rgb_to_y"))
    y = _affine(x, _RGB_TO_YCBCR[:1] / 255.0, _OFFSET[:1] / 255.0)
    return y[..., 0] if flat else y


def rgb_to_grey(rgb):
    """Full-range BT.601 luma, 0.299 R + 0.587 G + 0.114 B, from RGB in [0, 1].

    The grey value of a colour image on the scale a grey image has: ``(Y - 16/255) * 255/219``
    of :func:`rgb_to_y`, so that white is 1 and R = G = B = v gives v. What an RGB model's output
    on a grey image is turned back into (Y's own 16..235 scale would shrink its errors).

    Args:
        rgb: float array or tensor, (..., 3).

    Returns:
        grey, (..., 1); same kind and float dtype as ``rgb``.

    Example:
        >>> float(rgb_to_grey(np.array([[[0.5, 0.5, 0.5]]]))[0, 0, 0])
        0.5
    """
    x = _float_input(rgb, "rgb_to_grey")
    if tuple(x.shape)[-1:] != (3,):
        raise ValueError(f"rgb_to_grey expects (..., 3) channels last, got shape {tuple(x.shape)}")
    return _affine(x, _RGB_TO_YCBCR[:1] / 219.0, np.zeros(1))


def ycbcr_to_rgb(ycbcr):
    """BT.601 YCbCr (as made by :func:`rgb_to_ycbcr`) back to RGB, nominally in [0, 1].

    The exact inverse of :func:`rgb_to_ycbcr` up to rounding. Not clipped: YCbCr outside the
    image of the RGB cube (for instance an SR model's Y with bicubic CbCr) can give values
    slightly outside [0, 1]; clip where a valid image is needed.

    Args:
        ycbcr: float array or tensor, (..., 3).

    Returns:
        RGB, (..., 3), same kind and float dtype as ``ycbcr``.

    Example:
        >>> ycbcr_to_rgb(np.array([235.0, 128.0, 128.0]) / 255)
        array([1., 1., 1.])
    """
    x = _float_input(ycbcr, "ycbcr_to_rgb")
    if tuple(x.shape)[-1:] != (3,):
        raise ValueError(f"ycbcr_to_rgb expects (..., 3) channels last, got shape {tuple(x.shape)}")
    # rgb = T^-1 (255 ycbcr - offset), written as one affine map on ycbcr.
    return _affine(x, _YCBCR_TO_RGB * 255.0, -_YCBCR_TO_RGB @ _OFFSET)
