"""LUT models: the table form of a :class:`tfsr.lut.LutNet`, for inference and fine-tuning."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfsr.lut.lut_file import LutTables, load_lut_file
from tfsr.lut.lut_stage import lut_stage, table_unit
from tfsr.lut.networks import normalize_stages, stage_slots, total_scale
from tfsr.lut.patterns import (
    RC_WINDOWS,
    pattern_extent,
    quantize_levels,
    round_unit_values,
    run_stages,
)
from tfsr.ops.lut_interp import lut_side


def _int8(table: tf.Tensor) -> tf.Tensor:
    """A float table rounded half away from zero to int8 in [-127, 127] (as saved)."""
    return tf.cast(round_unit_values(table), tf.int8)


@keras.saving.register_keras_serializable(package="tfsr")
class LutModel(keras.Model):
    """Super-resolution by table look-ups: the stage rule of :mod:`tfsr.lut.patterns` with every
    unit replaced by 4-simplex interpolation in its 4-D table and every RC module by its 1-D tables.

    The tables are the model's weights (float32 variables holding the int8 values), so the model
    can be fine-tuned like any Keras model (MuLUT's LUT fine-tuning): in training the
    interpolation runs through the differentiable pure-TF twin (gradients reach the table entries
    and, through the interpolation weights and straight-through rounding, earlier stages);
    in inference each stage runs as one fused compiled op ``Tfsr>LutStage`` on the 8-bit image
    when built (:func:`tfsr.lut.lut_stage.lut_stage`, else its pure-TF twin), on the tables
    rounded to int8 (what :meth:`to_tables` saves; the same values as the float tables after
    loading). Both paths give the same outputs.

    Args:
        stages: stage list (see :class:`tfsr.lut.LutNet`).
        interval: sampling interval of the 4-D tables.

    Call arguments:
        inputs: (N, H, W, 1) Y in [0, 1]. training: use the differentiable twin.

    Input shape: (N, H, W, 1). Output shape: (N, rH, rW, 1) in [0, 1].

    Example:
        >>> model = LutModel.from_file("rclut_x4.npz")  # doctest: +SKIP
        >>> model(tf.zeros((1, 8, 8, 1))).shape  # doctest: +SKIP
        TensorShape([1, 32, 32, 1])

    References: SR-LUT (CVPR 2021), MuLUT (ECCV 2022), RC-LUT (ICCV 2023).
    """

    def __init__(self, stages, interval: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.stages = normalize_stages(stages)
        self.interval = interval
        self.scale = total_scale(self.stages)
        rows = lut_side(interval) ** 4
        self.luts, self.rcs, self.names = [], [], []
        for s, stage in enumerate(self.stages):
            for p in stage["patterns"]:
                self.names.append(f"{s}_{p}")
                self.luts.append(
                    self.add_weight(
                        f"lut_{s}_{p}", (rows, stage["scale"] ** 2), initializer="zeros"
                    )
                )
                self.rcs.append(
                    self.add_weight(f"rc_{s}_{p}", (RC_WINDOWS[p] ** 2, 256), initializer="zeros")
                    if stage["rc"]
                    else None
                )
        self._infer = None

    @classmethod
    def from_tables(cls, tables: LutTables, **kwargs) -> LutModel:
        tables.check()
        model = cls(tables.stages, tables.interval, **kwargs)
        for i, name in enumerate(model.names):
            model.luts[i].assign(tables.luts[f"lut_{name}"].astype(np.float32))
            if model.rcs[i] is not None:
                model.rcs[i].assign(tables.rcs[f"rc_{name}"])
        return model

    @classmethod
    def from_file(cls, path: str, **kwargs) -> LutModel:
        """The model stored in a LUT file (:func:`tfsr.lut.load_lut_file` errors apply)."""
        return cls.from_tables(load_lut_file(path), **kwargs)

    def to_tables(self) -> LutTables:
        """The current tables; 4-D entries rounded (half away from zero) to int8 in [-127, 127]."""
        tables = LutTables(stages=self.stages, interval=self.interval)
        for i, name in enumerate(self.names):
            tables.luts[f"lut_{name}"] = _int8(self.luts[i]).numpy()
            if self.rcs[i] is not None:
                tables.rcs[f"rc_{name}"] = self.rcs[i].numpy().astype(np.float32)
        return tables

    def _train_unit(self, s, p, levels):
        i = stage_slots(self.stages, s)[p]
        pattern = self.stages[s]["patterns"][p]
        # The loss sees the int8 values that will be saved (straight-through rounding): a
        # change below half a level would otherwise be trained and then rounded away.
        lut = self.luts[i] + tf.stop_gradient(round_unit_values(self.luts[i]) - self.luts[i])
        return table_unit(lut, self.rcs[i], pattern, self.interval, True)(levels)

    def call(self, inputs, training=None):
        levels = quantize_levels(tf.cast(inputs, tf.float32))
        if training:
            return run_stages(levels, self.stages, self._train_unit)
        x = tf.cast(levels, tf.uint8)
        for s, stage in enumerate(self.stages):
            slots = stage_slots(self.stages, s)
            luts = [_int8(self.luts[i]) for i in slots]
            rcs = [self.rcs[i] for i in slots] if stage["rc"] else []
            x = lut_stage(x, luts, rcs, stage, self.interval, last=s + 1 == len(self.stages))
        return x

    @property
    def min_side(self) -> int:
        """The smallest image side the stages take (symmetric padding): how far the patterns
        reach (S: 1 pixel, D and Y: 2), and w // 2 for an RC window of side w; the rule of the
        compiled ``Tfsr>LutStage`` op."""
        reach = [pattern_extent(p) for st in self.stages for p in st["patterns"]]
        reach += [RC_WINDOWS[p] // 2 for st in self.stages if st["rc"] for p in st["patterns"]]
        return max([1, *reach])

    def upscale(self, images) -> tf.Tensor:
        """Inference on (N, H, W, 1) float32 in [0, 1], one compiled graph for any size.

        Raises:
            ValueError: an image smaller than :attr:`min_side` on a side.
        """
        h, w = np.shape(images)[1:3]
        if min(h, w) < self.min_side:
            raise ValueError(
                f"{self.name} needs images of at least {self.min_side}x{self.min_side} pixels, "
                f"got {h}x{w}"
            )
        if self._infer is None:
            self._infer = tf.function(
                lambda x: self(x, training=False),
                input_signature=[tf.TensorSpec((None, None, None, 1), tf.float32)],
            )
        return self._infer(tf.convert_to_tensor(images, tf.float32))

    def get_config(self):
        return {
            "stages": normalize_stages(self.stages),
            "interval": self.interval,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
