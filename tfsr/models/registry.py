"""Trainable model names (the values of ``train.py --model``) and how to build each.

A :class:`ModelSpec` says how to build a model for a scale and how to turn the trained model into
its inference form. Model families add their names with :func:`register_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tf_keras as keras


@dataclass(frozen=True)
class ModelSpec:
    """How to build one trainable model.

    Attributes:
        name: the ``--model`` value.
        build: ``build(scale=..., activation=...) -> keras.Model`` for training.
        to_inference: turns the trained model into its deployable form (for SESR: collapsed
            plain convolutions); identity when None.
        description: one line for ``--help``.
        train_scales: for arbitrary-scale models (inputs ``[lr, scale]``): the scales (numbers or
            (scale_v, scale_h) pairs) drawn, one per batch, in training; None for a model of
            one scale, trained at ``--scale``.
        validation_scales: arbitrary-scale models: the scales measured in validation.
        patch_size: arbitrary-scale models: default LR patch side (a multiple of every training
            scale's denominator).
        options: keyword arguments of ``build`` that a run may set (``train.py``'s
            ``--expanded_filters`` is ``expanded_filters``).
        takes_activation: False for a model whose activations are fixed (the LUT nets), for
            which ``build`` ignores ``activation`` and ``train.py`` rejects ``--activation``.
    """

    name: str
    build: Callable[..., keras.Model]
    to_inference: Callable[[keras.Model], keras.Model] | None = None
    description: str = ""
    train_scales: tuple | None = None
    validation_scales: tuple | None = None
    patch_size: int | None = None
    options: tuple[str, ...] = ()
    takes_activation: bool = True

    def build_run_model(self, scale, activation, **options) -> keras.Model:
        """``build`` with the run options that are set (not 0 or empty).

        Raises:
            ValueError: a set option that this model does not take.
        """
        given = {key: value for key, value in options.items() if value}
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            flags = ", ".join(f"--{key}" for key in unknown)
            raise ValueError(f"model {self.name!r} takes no {flags}")
        return self.build(scale=scale, activation=activation, **given)

    @property
    def multi_scale(self) -> bool:
        """True for arbitrary-scale models (one random scale per training batch)."""
        return self.train_scales is not None

    def inference_model(self, model: keras.Model) -> keras.Model:
        return self.to_inference(model) if self.to_inference is not None else model


_MODELS: dict[str, ModelSpec] = {}
_builtin_loaded = False


def register_model(spec: ModelSpec) -> None:
    _MODELS[spec.name] = spec


def _register_builtin() -> None:
    from tfsr.models import sesr

    for variant in sesr.SESR_CONFIGS:
        register_model(
            ModelSpec(
                name=f"sesr_{variant}",
                build=lambda scale, activation="prelu", _v=variant, **kw: sesr.sesr_model(
                    _v, scale=scale, activation=activation, **kw
                ),
                to_inference=sesr.collapse_model,
                description=f"SESR-{variant.upper()} (collapsible linear blocks)",
                options=("expanded_filters",),
            )
        )
    from tfsr.lut import networks  # noqa: F401  (registers srlut_x4, mulut_x4, rclut_x4)
    from tfsr.models import (
        meta_sesr,  # noqa: F401  (registers meta_sesr)
        sesr_dysample,  # noqa: F401  (registers sesr_dysample)
    )


def model_names() -> list[str]:
    global _builtin_loaded
    if not _builtin_loaded:
        _builtin_loaded = True
        _register_builtin()
    return sorted(_MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered under ``name``; ValueError listing the known names otherwise."""
    names = model_names()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names)}")
    return _MODELS[name]
