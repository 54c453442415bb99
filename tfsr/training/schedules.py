"""Learning-rate schedules with linear warm-up."""

from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras


@keras.saving.register_keras_serializable(package="tfsr")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then constant, cosine (to ``final_fraction * peak``) or step.

    ``step`` halves the rate at 50% and again at 75% of ``total_steps``.
    """

    def __init__(self, peak, total_steps, warmup_steps=0, kind="cosine", final_fraction=0.01):
        super().__init__()
        if kind not in ("constant", "cosine", "step"):
            raise ValueError(f"schedule kind must be constant, cosine or step, got {kind!r}")
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = tf.cast(max(self.warmup_steps, 1), tf.float32)
        warmup = self.peak * tf.minimum(1.0, (step + 1.0) / warm)
        if self.kind == "constant":
            after = tf.constant(self.peak)
        elif self.kind == "cosine":
            span = tf.cast(max(self.total_steps - self.warmup_steps, 1), tf.float32)
            t = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            low = self.peak * self.final_fraction
            after = low + 0.5 * (self.peak - low) * (1.0 + tf.cos(math.pi * t))
        else:
            t = step / tf.cast(max(self.total_steps, 1), tf.float32)
            after = self.peak * tf.where(t < 0.5, 1.0, tf.where(t < 0.75, 0.5, 0.25))
        return tf.where(step < self.warmup_steps, warmup, after)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "final_fraction": self.final_fraction,
        }
