"""Upscalers: one interface over bicubic, saved tf_keras models, train.py run folders, TFLite
files, tfsr ``.npz`` models (collapsed SESR, LUT tables) and shipped models.

An :class:`Upscaler` turns an LR image into an SR image at its scale. Images are float32 in
[0, 1], channels last, one image at a time (no batch axis):

- ``upscale_y(y)``: (H, W) or (H, W, 1) luma -> (sH, sW, 1). What the papers measure for
  Y-only models.
- ``upscale_rgb(rgb)``: (H, W, 3) -> (sH, sW, 3). A Y-only model runs on Y of BT.601 YCbCr,
  Cb and Cr are upscaled with MATLAB bicubic, and the result goes back to RGB.

Outputs are clipped to [0, 1]. :func:`load_upscaler` builds one from a string::

    up = load_upscaler("bicubic", scale=2)
    up = load_upscaler("runs/sesr/model.keras", scale=2)
    up = load_upscaler("sesr_m5_x2_int8.tflite", scale=2)
    up = load_upscaler("runs/sesr_m5_x2", scale=2)   # a finished run folder
    up = load_upscaler("rclut_x4.npz", scale=4)      # LUT tables (or a collapsed SESR)
    up = load_upscaler("sesr_m5_x2", scale=2)        # a shipped pretrained model

Each kind of spec is one :func:`register_upscaler_kind` call (a test on the spec string and a
loader); :func:`load_upscaler` asks the kinds in the order they were registered.
"""

from __future__ import annotations

import importlib
import math
import os
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfsr.data.color import rgb_to_ycbcr, ycbcr_to_rgb
from tfsr.data.imresize import imresize, scale_name, scale_pair, scale_ratio
from tfsr.run_files import RUN_MODEL_FILENAME, run_model_path

GRID_DENOMINATOR = 100
"""Largest q of a scale p / q whose output grid upscalers and tiles align to (padding the input
to a multiple of q rows and columns, tile corners on multiples of q): the training scales' and
the meta-upscale's short fractions (``tfsr.layers.pos2weight.SHORT_DENOMINATOR``). A scale with a
longer ratio (1.333 = 1333/1000) runs as it is, untiled: give it as a fraction (4/3) instead."""

__all__ = [
    "BicubicUpscaler",
    "KerasUpscaler",
    "TFLiteUpscaler",
    "Upscaler",
    "load_keras_model",
    "load_upscaler",
    "register_upscaler_kind",
    "scale_from_flags",
    "upscaler_kinds",
]


class Upscaler:
    """Turns an LR image into an SR image at ``scale``.

    Subclasses set ``channels`` (1: the model works on Y; 3: on RGB; None: on any number of
    channels, as bicubic) and implement ``_predict``; this class does the colour handling,
    the shape checks and the clipping.

    Args:
        scale: the upscaling factor, a number or a (vertical, horizontal) pair; kept as given
            in ``scale`` and as two floats in ``scale_pair``.
        name: what the upscaler is called in reports (the spec it was loaded from).

    Example:
        >>> up = BicubicUpscaler(scale=2)
        >>> up.upscale_rgb(np.zeros((4, 5, 3), np.float32)).shape
        (8, 10, 3)
    """

    channels: int | None = None

    def __init__(self, scale, name: str):
        self.scale = scale
        self.scale_pair = scale_pair(scale)
        self.name = name

    def _predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) float32 -> (sH, sW, C); C == ``channels`` unless that is None."""
        raise NotImplementedError

    def _on_whole_grid(self, image: np.ndarray, run) -> np.ndarray:
        """``run(image)``, on an LR padded to a whole output size where the scale is not whole.

        A model at a non-integer scale ``s = p / q`` (Meta-SESR, at any scale or exported at
        one) resizes its bilinear residual to the output's size, so it samples at the ratio of
        the two sizes; where ``s * size`` is not a whole number that is not ``s``, and the
        residual drifts against the meta-upscale grid by up to 1/s LR pixel at the far edge.
        So the LR is padded (edge values) to a multiple of q on that axis, where the ratio is
        exactly ``s`` (training patches always are), and the output cropped to
        ``floor(s * size)``. This also makes a tile's output a window of the whole image's.
        Integer scales, and scales of no ratio with q <= :data:`GRID_DENOMINATOR`, run as they
        are.
        """
        pads, sizes = [], []
        for n, s in zip(image.shape[:2], self.scale_pair, strict=True):
            try:
                p, q = scale_ratio(s, GRID_DENOMINATOR)
            except ValueError:  # no short ratio: as it is
                p, q = s, 1
            pads.append(-n % q if q > 1 else 0)
            sizes.append(n * p // q if q > 1 else None)
        if not any(pads):
            return run(image)
        padded = np.pad(image, ((0, pads[0]), (0, pads[1]), (0, 0)), mode="edge")
        return run(padded)[: sizes[0], : sizes[1]]

    def _checked_predict(self, image: np.ndarray) -> np.ndarray:
        out = np.asarray(self._predict(np.ascontiguousarray(image, np.float32)))
        if not np.isfinite(out).all():  # would be written as black pixels
            raise ValueError(f"{self.name}: the model's output holds NaN or infinite values")
        if out.ndim != 3 or out.shape[-1] != image.shape[-1]:
            raise ValueError(
                f"{self.name}: expected an output of {image.shape[-1]} channel(s) for input "
                f"{image.shape}, got shape {out.shape}"
            )
        # floor or ceil of scale * size (models differ on which); anything else is a model of
        # fixed size or of another scale.
        for axis, (n, s) in enumerate(zip(image.shape[:2], self.scale_pair, strict=True)):
            if not math.floor(n * s + 1e-9) <= out.shape[axis] <= math.ceil(n * s - 1e-9):
                raise ValueError(
                    f"{self.name}: output {out.shape[0]}x{out.shape[1]} for a "
                    f"{image.shape[0]}x{image.shape[1]} input is not a x"
                    f"{scale_name(self.scale_pair)} upscale (a model of fixed input size?)"
                )
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def upscale_y(self, y) -> np.ndarray:
        """Upscales a luma image.

        Args:
            y: float (H, W) or (H, W, 1) in [0, 1].

        Returns:
            float32 (sH, sW, 1) in [0, 1].
        """
        if self.channels == 3:
            raise ValueError(f"{self.name} is an RGB model: use upscale_rgb, not upscale_y")
        y = np.asarray(y, np.float32)
        if y.ndim == 2:
            y = y[..., None]
        if y.ndim != 3 or y.shape[-1] != 1:
            raise ValueError(f"upscale_y expects (H, W) or (H, W, 1), got shape {y.shape}")
        return self._checked_predict(y)

    def upscale_rgb(self, rgb) -> np.ndarray:
        """Upscales an RGB image (through Y and bicubic CbCr for a Y-only model).

        Args:
            rgb: float (H, W, 3) in [0, 1].

        Returns:
            float32 (sH, sW, 3) in [0, 1].
        """
        rgb = np.asarray(rgb, np.float32)
        if rgb.ndim != 3 or rgb.shape[-1] != 3:
            raise ValueError(f"upscale_rgb expects (H, W, 3), got shape {rgb.shape}")
        if self.channels != 1:
            return self._checked_predict(rgb)
        ycbcr = rgb_to_ycbcr(rgb.astype(np.float64))
        y = self._checked_predict(ycbcr[..., :1].astype(np.float32))
        # MATLAB bicubic at the scale itself (not at the ratio of the sizes, which differs
        # where s * size is not whole), cut to the model's floor or ceil of s * size.
        cbcr = imresize(ycbcr[..., 1:], self.scale_pair)[: y.shape[0], : y.shape[1]]
        out = ycbcr_to_rgb(np.concatenate([y, cbcr], axis=-1).astype(np.float64))
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, scale={scale_name(self.scale_pair)})"


class BicubicUpscaler(Upscaler):
    """MATLAB bicubic (``tfsr.data.imresize``) at any scale; the baseline of every SR table.

    Args:
        scale: a number or a (vertical, horizontal) pair.
        name: report name.
    """

    channels = None

    def __init__(self, scale, name: str = "bicubic"):
        super().__init__(scale, name)

    def _predict(self, image):
        return imresize(image, self.scale_pair)


def _resolve_scale(name: str, requested, known):
    """The scale to run at: ``requested``, or the model's own (``known``) when that is None.

    Raises:
        ValueError: no scale asked for and the model's is unknown, or the model's own scale
            (when known) is not the requested one.
    """
    if requested is None:
        if known is None:
            raise ValueError(f"the scale of model {name} is not known: give the scale")
        pair = scale_pair(known)
        return pair[0] if pair[0] == pair[1] else pair
    _check_model_scale(name, requested, known)
    return requested


def _check_model_scale(name: str, requested, known) -> None:
    """Raises when a fixed-scale model's own scale (when known) is not the requested one."""
    if known is None:
        return
    known_pair = scale_pair(known)
    if not np.allclose(known_pair, scale_pair(requested), rtol=1e-6):
        raise ValueError(
            f"model {name} upscales by {scale_name(known_pair)}, "
            f"but scale {scale_name(scale_pair(requested))} was asked for"
        )


class KerasUpscaler(Upscaler):
    """A tf_keras model taking (N, H, W, C) float [0, 1] and returning (N, sH, sW, C).

    A model with a second, (N, 2) input is an arbitrary-scale model (``tfsr.models.meta_sesr``):
    it is called on ``[image, [[scale_v, scale_h]]]`` and runs at any requested scale (which
    must then be given). At a non-integer scale, an image whose size times the scale is not
    whole is padded first (``Upscaler._on_whole_grid``), unless the model's input size is fixed.

    ``channels`` is the model's input channel count (1: Y-only, 3: RGB). The model's own scale
    is read from its static input and output shapes, or, for fully convolutional models, from
    one call on a small probe image; a mismatch with ``scale`` raises.

    Args:
        model: the ``keras.Model``.
        scale: the requested scale.
        name: report name.
        model_scale: the model's scale when known from elsewhere (a pretrained entry); skips
            the probe.
    """

    _PROBE_SIZE = 24

    def __init__(self, model, scale, name: str, model_scale=None):
        self.model = model
        in_shape = tuple(model.inputs[0].shape)
        # Arbitrary-scale models (Meta-SR) take [image, scale] with (N, 2) rows (scale_v, scale_h).
        self.arbitrary_scale = len(model.inputs) == 2 and tuple(model.inputs[1].shape[1:]) == (2,)
        if (
            len(model.inputs) != (2 if self.arbitrary_scale else 1)
            or len(in_shape) != 4
            or in_shape[-1] not in (1, 3)
        ):
            shapes = [tuple(t.shape) for t in model.inputs]
            raise ValueError(
                f"model {name} must take one (N, H, W, 1) or (N, H, W, 3) input (and, for an "
                f"arbitrary-scale model, a (N, 2) scale input), got {shapes}"
            )
        self.channels = int(in_shape[-1])
        self._fixed_hw = in_shape[1:3] if None not in in_shape[1:3] else None
        if self.arbitrary_scale:
            if scale is None:
                raise ValueError(f"model {name} upscales by any scale: give the scale")
            super().__init__(scale, name)
            return
        own = model_scale if model_scale is not None else self._own_scale()
        super().__init__(_resolve_scale(name, scale, own), name)

    def _own_scale(self):
        in_hw = self.model.inputs[0].shape[1:3]
        out_hw = self.model.outputs[0].shape[1:3]
        if None not in in_hw and None not in out_hw:
            return (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
        probe = np.zeros((1, self._PROBE_SIZE, self._PROBE_SIZE, self.channels), np.float32)
        try:
            out = self.model(probe, training=False)
        except (tf.errors.InvalidArgumentError, ValueError):
            return None  # the model cannot run on the probe size: scale unknown, not checked
        return (out.shape[1] / self._PROBE_SIZE, out.shape[2] / self._PROBE_SIZE)

    def _predict(self, image):
        if self._fixed_hw is not None and tuple(image.shape[:2]) != tuple(self._fixed_hw):
            raise ValueError(
                f"model {self.name} takes {self._fixed_hw[0]}x{self._fixed_hw[1]} inputs only, "
                f"got an image of {image.shape[0]}x{image.shape[1]}"
            )
        if self.arbitrary_scale:
            scale = np.asarray([self.scale_pair], np.float32)  # (1, 2)

            def run(x):
                return self.model([x[None], scale], training=False)[0].numpy()

        else:

            def run(x):
                return self.model(x[None], training=False)[0].numpy()

        return run(image) if self._fixed_hw is not None else self._on_whole_grid(image, run)


class TFLiteUpscaler(Upscaler):
    """A TFLite model, run with ``ai_edge_litert.interpreter.Interpreter``.

    The input tensor is resized to each image where the model allows it; otherwise images must
    have the model's size. At a non-integer scale (a Meta-SESR exported at 2.5, say) images are
    padded to a whole output size first (``Upscaler._on_whole_grid``). int8 / uint8 models get
    their inputs quantized and outputs dequantized with the tensors' own parameters.

    Args:
        path: the ``.tflite`` file.
        scale: the requested scale (checked against the model's output / input shapes).
        name: report name.
    """

    def __init__(self, path: str, scale, name: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        try:
            self.interpreter = Interpreter(model_path=path)
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"cannot load TFLite model {path}: {error}") from error
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1 or len(inputs[0]["shape"]) != 4 or inputs[0]["shape"][-1] not in (1, 3):
            raise ValueError(
                f"TFLite model {path} must take one (1, H, W, 1) or (1, H, W, 3) input, "
                f"got {[list(d['shape']) for d in inputs]}"
            )
        for kind, detail in (
            ("input", inputs[0]),
            ("output", self.interpreter.get_output_details()[0]),
        ):
            if detail["dtype"] != np.float32 and not detail["quantization"][0] > 0:
                raise ValueError(
                    f"TFLite model {path}: its {detail['dtype'].__name__} {kind} has no "
                    "quantization parameters (scale 0); expected a float32 or a quantized tensor"
                )
        self.channels = int(inputs[0]["shape"][-1])
        in_hw = inputs[0]["shape"][1:3]
        out_hw = self.interpreter.get_output_details()[0]["shape"][1:3]
        own = (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
        super().__init__(_resolve_scale(path, scale, own), name or path)
        self._size = None

    def _resize_to(self, h: int, w: int) -> None:
        if self._size == (h, w):
            return
        detail = self.interpreter.get_input_details()[0]
        try:
            self.interpreter.resize_tensor_input(detail["index"], [1, h, w, self.channels])
            self.interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as error:
            raise ValueError(
                f"TFLite model {self.path} cannot take a {h}x{w} input (its input is "
                f"{list(detail['shape'])}): {error}"
            ) from error
        self._size = (h, w)

    def _predict(self, image):
        return self._on_whole_grid(image, self._run)

    def _run(self, image):
        h, w = image.shape[:2]
        self._resize_to(h, w)
        detail = self.interpreter.get_input_details()[0]
        x = image[None]
        if detail["dtype"] != np.float32:
            q_scale, zero = detail["quantization"]
            info = np.iinfo(detail["dtype"])
            x = np.clip(np.round(x / q_scale + zero), info.min, info.max)
        self.interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
        self.interpreter.invoke()
        out_detail = self.interpreter.get_output_details()[0]
        out = self.interpreter.get_tensor(out_detail["index"])[0]
        if out_detail["dtype"] != np.float32:
            q_scale, zero = out_detail["quantization"]
            out = (out.astype(np.float32) - zero) * q_scale
        return out


# ---------------------------------------------------------------------------------------------
# Kinds of spec and load_upscaler.


@dataclass(frozen=True)
class UpscalerKind:
    """One kind of spec :func:`load_upscaler` understands."""

    name: str
    description: str
    matches: Callable[[str], bool]
    load: Callable[[str, object], Upscaler]


_KINDS: list[UpscalerKind] = []


def register_upscaler_kind(
    name: str,
    description: str,
    matches: Callable[[str], bool],
    load: Callable[[str, object], Upscaler],
) -> None:
    """Teaches :func:`load_upscaler` a new kind of spec.

    Args:
        name: short name of the kind (replaces an earlier kind of the same name).
        description: what the spec looks like, for the error listing every kind.
        matches: ``matches(spec) -> bool``: this kind handles ``spec``. It may claim a spec
            whose file is missing (by its extension): ``load`` then raises FileNotFoundError.
        load: ``load(spec, scale) -> Upscaler``.

    Example (``LutUpscaler`` standing for an :class:`Upscaler` subclass taking (path, scale)):
        >>> register_upscaler_kind(
        ...     "lut", "a .npz LUT file", lambda s: s.endswith(".npz"), LutUpscaler)
    """
    kind = UpscalerKind(name, description, matches, load)
    for i, existing in enumerate(_KINDS):
        if existing.name == name:
            _KINDS[i] = kind
            return
    _KINDS.append(kind)


def upscaler_kinds() -> list[UpscalerKind]:
    """The registered kinds, in the order :func:`load_upscaler` tries them."""
    return list(_KINDS)


def load_upscaler(spec: str, scale=None) -> Upscaler:
    """Builds the upscaler named by ``spec``, for ``scale``.

    Args:
        spec: ``"bicubic"``; a tf_keras model file (``.keras``, ``.h5``) or SavedModel folder;
            a finished ``train.py`` run folder; a ``.tflite`` file; a tfsr ``.npz`` (collapsed
            SESR or LUT tables); or the name of a shipped pretrained model
            (``tfsr.models.pretrained_names()``). Other packages add kinds with
            :func:`register_upscaler_kind`.
        scale: an int, a float or a (vertical, horizontal) pair. Fixed-scale models check it
            against their own scale where they know it; None means the model's own scale
            (an error for bicubic and for models whose scale cannot be found out).

    Returns:
        An :class:`Upscaler`.

    Raises:
        FileNotFoundError: a model file or folder that does not exist.
        ValueError: a spec no kind understands (the message lists the kinds), a file that does
            not load, a scale the model does not have.
    """
    spec = os.fspath(spec)
    if scale is not None:
        scale_pair(scale)
    for kind in _KINDS:
        if kind.matches(spec):
            return kind.load(spec, scale)
    known = "; ".join(k.description for k in _KINDS)
    raise ValueError(f"unknown model {spec!r}: expected {known}")


def scale_from_flags(scale, scale_v=None, scale_h=None):
    """The scale the command-line tools ask for: ``--scale``, or ``--scale_v`` with ``--scale_h``.

    Returns:
        ``scale`` (possibly None: the model's own) when neither axis flag is given; else the pair
        ``(scale_v, scale_h)``, each axis defaulting to ``scale``.

    Raises:
        ValueError: an axis flag given without a value for the other axis.

    Example:
        >>> scale_from_flags(2.5), scale_from_flags(None, 2.0, 3.5), scale_from_flags(3, 2)
        (2.5, (2.0, 3.5), (2.0, 3.0))
    """
    if scale_v is None and scale_h is None:
        return scale
    scale_v = scale if scale_v is None else scale_v
    scale_h = scale if scale_h is None else scale_h
    if scale_v is None or scale_h is None:
        raise ValueError(
            "give both --scale_v and --scale_h, or --scale for the axis left out "
            f"(got scale_v={scale_v}, scale_h={scale_h})"
        )
    pair = scale_pair((scale_v, scale_h))
    return pair


def _require_path(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")


def load_keras_model(path: str):
    """A saved tf_keras model (``.keras``, ``.h5``, SavedModel folder) holding any tfsr layers or
    model family, without its training configuration.

    Raises:
        ValueError: naming the file, when tf_keras cannot load it.
    """
    import tf_keras as keras

    importlib.import_module("tfsr.layers")  # registers tfsr's serializable layers
    # ... and every model family's own (the LUT nets' live in tfsr.lut, imported by this call).
    importlib.import_module("tfsr.models.registry").model_names()
    try:
        return keras.models.load_model(path, compile=False)
    # KeyError, BadZipFile: a .keras zip that is truncated or lacks its config.json.
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot load tf_keras model {path}: {error}") from error


def load_keras_spec(spec: str):
    """The Keras model a spec names, for export and ``--init_from``.

    Args:
        spec: a finished training run folder (its ``model.keras``), a SavedModel folder, a
            ``.keras`` / ``.h5`` file, a tfsr ``.npz`` (collapsed SESR weights, or LUT tables:
            a :class:`tfsr.lut.LutModel`) or a shipped model's name
            (``tfsr.models.pretrained_names()``). A local file or folder comes first: one named
            like a shipped model that does not load says it hides it.

    Raises:
        FileNotFoundError: a model file or path that does not exist, a folder that is neither a
            run nor a SavedModel, or a shipped name whose file is missing.
        ValueError: a name that is none of these, a file that does not load, or a local file or
            folder named like a shipped model that is not a model.
    """
    from tfsr.models import pretrained
    from tfsr.models.pretrained import is_pretrained_name, pretrained_names

    spec = os.fspath(spec)
    if os.path.exists(spec):
        try:
            return _load_local_model(spec)
        except (FileNotFoundError, ValueError) as error:
            if is_pretrained_name(spec):  # most likely, the shipped model was meant
                raise ValueError(
                    f"{error}; this local file or folder hides the shipped model {spec!r}"
                ) from error
            raise
    looks_like_a_path = os.sep in spec or (os.altsep is not None and os.altsep in spec)
    if spec.lower().endswith(_MODEL_FILE_ENDINGS) or looks_like_a_path:
        raise FileNotFoundError(f"model file {spec!r} does not exist")
    if is_pretrained_name(spec):
        return pretrained(spec)
    shipped = ", ".join(pretrained_names()) or "none present"
    raise ValueError(
        f"unknown model {spec!r}: expected a shipped name ({shipped}), {_LOCAL_MODELS}"
    )


_MODEL_FILE_ENDINGS = (".npz", ".keras", ".h5")
_LOCAL_MODELS = "a .keras/.h5/.npz file, a SavedModel folder or a training run folder"


def _load_local_model(spec: str):
    """:func:`load_keras_spec` of an existing file or folder."""
    if os.path.isdir(spec):
        path = run_model_path(spec)
        if path is None and os.path.exists(os.path.join(spec, "saved_model.pb")):
            path = spec
        elif path is None:
            raise FileNotFoundError(
                f"folder {spec!r} holds neither {RUN_MODEL_FILENAME} (a training run) nor a "
                "SavedModel"
            )
        return load_keras_model(path)
    ending = spec.lower()
    if ending.endswith(".npz"):
        if _holds_luts(spec):
            from tfsr.lut import LutModel

            return LutModel.from_file(spec)
        from tfsr.models.sesr import load_collapsed

        return load_collapsed(spec)
    if ending.endswith((".keras", ".h5")):
        return load_keras_model(spec)
    raise ValueError(f"{spec!r} is not a model file tfsr loads: expected {_LOCAL_MODELS}")


def _is_keras_spec(spec: str) -> bool:
    if spec.lower().endswith((".keras", ".h5")):
        return True
    return os.path.isdir(spec) and os.path.exists(os.path.join(spec, "saved_model.pb"))


def _load_keras(spec: str, scale) -> Upscaler:
    _require_path(spec)
    return KerasUpscaler(load_keras_model(spec), scale, name=spec)


def _load_tflite(spec: str, scale) -> Upscaler:
    _require_path(spec)
    return TFLiteUpscaler(spec, scale)


def _is_pretrained_name(spec: str) -> bool:
    from tfsr.models.pretrained import is_pretrained_name

    if os.path.exists(spec):  # a local file or folder of that name comes first
        return False
    importlib.import_module("tfsr.models")  # the model families register their names
    return is_pretrained_name(spec)


def _load_pretrained(spec: str, scale) -> Upscaler:
    from tfsr.models import pretrained, pretrained_entry, pretrained_path

    entry = pretrained_entry(spec)
    scale = _resolve_scale(spec, scale, entry.scale)  # before loading the weights
    if entry.trained_scales is not None:
        lo, hi = entry.trained_scales
        if not all(lo <= s <= hi for s in scale_pair(scale)):
            warnings.warn(
                f"{spec} was trained on scales {lo:g} to {hi:g}; at {scale_name(scale)} expect "
                "lower quality",
                stacklevel=2,
            )
    if entry.filename.endswith(".npz"):  # collapsed SESR or LUT tables: told by the header
        return _load_npz(pretrained_path(spec), scale, name=spec, model_scale=entry.scale)
    return KerasUpscaler(pretrained(spec), scale, name=spec, model_scale=entry.scale)


register_upscaler_kind(
    "bicubic",
    "'bicubic'",
    lambda s: s == "bicubic",
    lambda s, scale: BicubicUpscaler(_resolve_scale("bicubic", scale, None)),
)
register_upscaler_kind(
    "keras", "a tf_keras .keras / .h5 file or SavedModel folder", _is_keras_spec, _load_keras
)
register_upscaler_kind(
    "tflite", "a .tflite file", lambda s: s.lower().endswith(".tflite"), _load_tflite
)
register_upscaler_kind(
    "pretrained", "a shipped pretrained name", _is_pretrained_name, _load_pretrained
)


def _load_run(spec: str, scale) -> Upscaler:
    return KerasUpscaler(load_keras_model(run_model_path(spec)), scale, name=spec)


register_upscaler_kind(
    "run",
    f"a finished train.py run folder (its {RUN_MODEL_FILENAME}; for a LUT run, the float net)",
    lambda s: run_model_path(s) is not None,
    _load_run,
)


def _load_npz(spec: str, scale, name: str | None = None, model_scale=None) -> Upscaler:
    """Shipped-format ``.npz`` files: collapsed SESR weights or LUT tables, told by the header.

    ``name`` and ``model_scale`` come from a pretrained entry when the file is a shipped one."""
    _require_path(spec)
    if _holds_luts(spec):
        from tfsr.lut import load_lut_upscaler

        return load_lut_upscaler(spec, scale, name=name)
    from tfsr.models.sesr import load_collapsed

    return KerasUpscaler(load_collapsed(spec), scale, name=name or spec, model_scale=model_scale)


def _holds_luts(path: str) -> bool:
    """Whether a tfsr ``.npz`` holds LUT tables rather than collapsed SESR weights, by its header
    (a file naming another format counts as SESR: its loader says what is wrong).

    Raises:
        NpzReadError: not a readable tfsr ``.npz`` (corrupt, truncated, no header).
    """
    from tfsr.npz_header import read_npz_header

    return read_npz_header(path).get("format") == "tfsr-lut"


register_upscaler_kind(
    "npz",
    "a tfsr .npz model (collapsed SESR or LUT)",
    lambda s: s.lower().endswith(".npz"),
    _load_npz,
)
