"""LUT-convertible networks (SR-LUT, MuLUT, RC-LUT styles) and their registered builders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf
import tf_keras as keras

from tfsr.checks import int_at_least
from tfsr.lut.lut_unit import LutUnit
from tfsr.lut.patterns import RC_WINDOWS, check_pattern, gather_pattern, quantize_levels, run_stages
from tfsr.lut.rc_module import RcModule

MAX_STAGE_SCALE = 16  # the compiled LutStage kernel's limit


def normalize_stages(stages) -> list[dict]:
    """Checks a stage list; returns plain dicts ``{"scale", "patterns", "rc"}``.

    Each stage is a dict with ``scale`` (positive int, at most ``MAX_STAGE_SCALE``),
    ``patterns`` (non-empty string of distinct letters among S, D, Y) and optionally ``rc``
    (bool, default False).
    """
    if not isinstance(stages, Sequence) or isinstance(stages, str) or not stages:
        raise ValueError(f"stages must be a non-empty list of dicts, got {stages!r}")
    out = []
    for i, stage in enumerate(stages):
        if not isinstance(stage, Mapping) or "scale" not in stage or "patterns" not in stage:
            raise ValueError(f"stage {i} must be a dict with 'scale' and 'patterns', got {stage!r}")
        scale, patterns = stage["scale"], stage["patterns"]
        try:
            int_at_least("scale", scale)
        except ValueError as error:
            raise ValueError(f"stage {i}: {error}") from None
        if scale > MAX_STAGE_SCALE:
            raise ValueError(
                f"stage {i}: scale {scale} is above {MAX_STAGE_SCALE} (the compiled stage op's "
                "limit); split it into stages"
            )
        if not isinstance(patterns, str) or not patterns or len(set(patterns)) != len(patterns):
            raise ValueError(
                f"stage {i}: patterns must be a string of distinct letters, got {patterns!r}"
            )
        for p in patterns:
            check_pattern(p)
        unknown = set(stage) - {"scale", "patterns", "rc"}
        if unknown:
            raise ValueError(f"stage {i}: unknown keys {sorted(unknown)}")
        rc = stage.get("rc", False)
        if not isinstance(rc, bool):
            raise ValueError(f"stage {i}: rc must be true or false, got {rc!r}")
        out.append({"scale": int(scale), "patterns": str(patterns), "rc": bool(rc)})
    return out


def total_scale(stages) -> int:
    scale = 1
    for stage in stages:
        scale *= int(stage["scale"])
    return scale


def stage_slots(stages, s: int) -> range:
    """Indices of stage ``s``'s units (one per pattern, in order) in a flat per-unit list."""
    start = sum(len(st["patterns"]) for st in stages[:s])
    return range(start, start + len(stages[s]["patterns"]))


@keras.saving.register_keras_serializable(package="tfsr")
class LutNet(keras.Model):
    """A multi-stage network of 4-pixel units that transfers to look-up tables.

    Stage s runs, for each of its patterns, a :class:`LutUnit` (optionally after an
    :class:`RcModule` with the pattern's window: 5x5 for S, 7x7 for D, 3x3 for Y) in the rotation
    ensemble, averages, adds the result to its (nearest-upscaled) input and, between stages,
    re-quantises to 8-bit levels; see :mod:`tfsr.lut.patterns` for the exact rule, shared with
    :class:`tfsr.lut.LutModel`, the table form (:func:`tfsr.lut.transfer`).

    Args:
        stages: list of ``{"scale": int, "patterns": "SDY", "rc": bool}``; the product of the
            scales is the model's scale.
        filters: hidden width of the units.
        depth: hidden layers of the units.
        rc_filters: hidden width of the RC modules' 1-D MLPs.
        dense: densely connected unit layers (MuLUT's units; :class:`LutUnit`).

    Call arguments:
        inputs: (N, H, W, 1) Y in [0, 1] (quantised to 8-bit levels first).

    Input shape: (N, H, W, 1). Output shape: (N, rH, rW, 1) in [0, 1].

    Example:
        >>> net = LutNet([{"scale": 2, "patterns": "S"}], filters=8, depth=1)
        >>> net(tf.zeros((1, 4, 4, 1))).shape
        TensorShape([1, 8, 8, 1])

    The net always computes in float32, whatever the global mixed-precision policy: it becomes
    8-bit tables, and its RC thresholds and level arithmetic are exact in float32 only.

    References: SR-LUT (CVPR 2021), MuLUT (ECCV 2022), RC-LUT (ICCV 2023).
    """

    def __init__(
        self,
        stages,
        filters: int = 64,
        depth: int = 4,
        rc_filters: int = 16,
        dense: bool = False,
        **kwargs,
    ):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.stages = normalize_stages(stages)
        self.filters = filters
        self.depth = depth
        self.rc_filters = rc_filters
        self.dense = bool(dense)
        self.scale = total_scale(self.stages)
        self.units = []
        self.rc_modules = []
        for s, stage in enumerate(self.stages):
            for p in stage["patterns"]:
                self.units.append(
                    LutUnit(
                        stage["scale"],
                        filters=filters,
                        depth=depth,
                        dense=dense,
                        name=f"unit_{s}_{p}",
                        dtype="float32",
                    )
                )
                self.rc_modules.append(
                    RcModule(RC_WINDOWS[p], filters=rc_filters, name=f"rc_{s}_{p}", dtype="float32")
                    if stage["rc"]
                    else None
                )

    def slot(self, stage: int, pattern: int) -> int:
        """Index of (stage, pattern number) in ``units`` / ``rc_modules``."""
        return stage_slots(self.stages, stage)[pattern]

    def _unit(self, s, p, levels):
        i = self.slot(s, p)
        if self.rc_modules[i] is not None:
            levels = self.rc_modules[i](levels)
        return self.units[i](gather_pattern(levels, self.stages[s]["patterns"][p]))

    def call(self, inputs):
        return run_stages(quantize_levels(tf.cast(inputs, tf.float32)), self.stages, self._unit)

    def get_config(self):
        return {
            "stages": normalize_stages(self.stages),
            "filters": self.filters,
            "depth": self.depth,
            "rc_filters": self.rc_filters,
            "dense": self.dense,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# Registered model families (train.py --model): name -> stage recipe for scale 4. Other scales
# change the last stage's scale.
MODEL_STAGES = {
    "srlut": [{"scale": 4, "patterns": "S"}],
    "mulut": [{"scale": 1, "patterns": "SDY"}, {"scale": 4, "patterns": "SDY"}],
    # RC-LUT without the D pattern in stage 1 (its 7x7 RC window and 4-D table): the x4 tables
    # then fit in 1.5 MB (1527 KB of tables, vs 1658 KB with "SDY"); the S (5x5) and Y (3x3)
    # RC windows still reach beyond the 2x2 patterns.
    "rclut": [
        {"scale": 1, "patterns": "SY", "rc": True},
        {"scale": 4, "patterns": "S", "rc": True},
    ],
}


# Unit widths of the registered models: small enough to train on a CPU (SR-LUT/MuLUT use 64).
DEFAULT_FILTERS = 32
DEFAULT_DEPTH = 3
DEFAULT_RC_FILTERS = 16


def lut_net(
    family: str,
    scale: int = 4,
    filters: int = DEFAULT_FILTERS,
    depth: int = DEFAULT_DEPTH,
    rc_filters: int = DEFAULT_RC_FILTERS,
    dense: bool = False,
):
    """Builds a :class:`LutNet` of a registered family (``srlut``, ``mulut``, ``rclut``).

    Args:
        family: the recipe in ``MODEL_STAGES``.
        scale: upscaling factor (the last stage's scale).
        filters, depth, rc_filters, dense: see :class:`LutNet`.
    """
    if family not in MODEL_STAGES:
        raise ValueError(f"unknown LUT family {family!r}; expected one of {sorted(MODEL_STAGES)}")
    stages = [dict(st) for st in MODEL_STAGES[family]]
    stages[-1]["scale"] = scale
    net = LutNet(
        stages, filters=filters, depth=depth, rc_filters=rc_filters, dense=dense, name=family
    )
    net(tf.zeros((1, 4, 4, 1)))  # build
    return net


def functional_lut_net(net: LutNet) -> keras.Model:
    """``net`` wrapped in a Functional model with a (None, None, 1) input (what
    :class:`tfsr.inference.KerasUpscaler` and ``train.py``'s saved ``model.keras`` use)."""
    inputs = keras.Input((None, None, 1))
    return keras.Model(inputs, net(inputs), name=net.name)


def find_lut_net(model: keras.Model) -> LutNet:
    """The :class:`LutNet` of ``model``: itself, or the one inside a Functional wrapper."""
    if isinstance(model, LutNet):
        return model
    found = [layer for layer in getattr(model, "layers", []) if isinstance(layer, LutNet)]
    if len(found) != 1:
        raise ValueError(f"model {model.name!r} is not (and does not wrap exactly one) LutNet")
    return found[0]


def _register() -> None:
    from tfsr.models.pretrained import PretrainedEntry, register_pretrained
    from tfsr.models.registry import ModelSpec, model_names, register_model

    # The registry fills itself with the built-in names on first use; that must happen before
    # adding these, or importing this module first would hide the others.
    model_names()

    models = {  # name: (family, unit options, description)
        "srlut_x4": (
            "srlut",
            {},
            "SR-LUT-style: one S-pattern unit, rotation ensemble (LUT-convertible)",
        ),
        "mulut_x4": (
            "mulut",
            {},
            "MuLUT-style: S/D/Y patterns, 2 stages with 8-bit re-quantisation",
        ),
        "rclut_x4": (
            "rclut",
            {},
            "RC-LUT-style: S/Y then S stages with RC modules (per-position 1-D mappings)",
        ),
        "rclut_wide_x4": (
            "rclut",
            {"filters": 64},
            "rclut_x4 with 64-wide units as in the papers (the same tables)",
        ),
        "srlut_dense_x4": (
            "srlut",
            {"filters": 64, "depth": 5, "dense": True},
            "srlut_x4 with MuLUT's units: 64 wide, 5 densely connected layers (the same table)",
        ),
        "rclut_dense_x4": (
            "rclut",
            {"filters": 64, "depth": 5, "dense": True},
            "rclut_x4 with MuLUT's units: 64 wide, 5 densely connected layers (the same tables)",
        ),
    }
    for name, (family, options, description) in models.items():
        register_model(
            ModelSpec(
                name=name,
                build=lambda scale=4, activation=None, _f=family, _o=options, **kw: lut_net(
                    _f, scale=scale, **_o
                ),
                to_inference=functional_lut_net,
                description=description,
                takes_activation=False,
            )
        )
    register_pretrained(
        PretrainedEntry(
            name="rclut_x4",
            filename="rclut_x4.npz",
            scale=4,
            description="RC-LUT-style x4 look-up tables (a rclut_x4 net: 70,000 steps on 24x24 "
            "patches, then 5,000 on 48x48; transferred without fine-tuning), trained on the "
            "291 set",
            loader=_load_lut_model,
        )
    )


def _load_lut_model(path: str) -> keras.Model:
    from tfsr.lut.lut_model import LutModel

    return LutModel.from_file(path)


_register()
