"""Shipped pretrained models, looked up by name.

Each model family registers its shipped names with :func:`register_pretrained`; the files live in
``tfsr/models/weights/``. ``tfsr.models.pretrained("sesr_m5_x2")`` returns a ready tf_keras model.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import tf_keras as keras

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")


@dataclass(frozen=True)
class PretrainedEntry:
    """One shipped model: its file in ``WEIGHTS_DIR``, scale and a loader.

    ``scale`` None is an arbitrary-scale model; ``trained_scales`` (lowest, highest) is then the
    range it was trained on (loading it at a scale outside warns)."""

    name: str
    filename: str
    scale: float | None
    description: str
    loader: Callable[[str], keras.Model] | None = None
    trained_scales: tuple[float, float] | None = None


_REGISTRY: dict[str, PretrainedEntry] = {}


def register_pretrained(entry: PretrainedEntry) -> None:
    """Adds a shipped model to the registry (called by the model families at import)."""
    _REGISTRY[entry.name] = entry


def _registry() -> dict[str, PretrainedEntry]:
    """The entries, after every built-in model family has registered its shipped models."""
    from tfsr.models.registry import model_names

    model_names()  # imports the families (sesr, sesr_dysample, meta_sesr, lut) once
    return _REGISTRY


def pretrained_names() -> list[str]:
    """Names of the shipped models whose files are present."""
    _registry()
    return sorted(n for n, e in _REGISTRY.items() if os.path.exists(_path(e)))


def _path(entry: PretrainedEntry) -> str:
    return os.path.join(WEIGHTS_DIR, entry.filename)


def is_pretrained_name(name: str) -> bool:
    return name in _registry()


def pretrained_entry(name: str) -> PretrainedEntry:
    if name not in _registry():
        known = ", ".join(pretrained_names()) or "none"
        raise ValueError(f"unknown pretrained model {name!r}; shipped names: {known}")
    return _REGISTRY[name]


def pretrained_path(name: str) -> str:
    """The file of the shipped model ``name``; FileNotFoundError when it is missing."""
    path = _path(pretrained_entry(name))
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"pretrained model {name!r} is not shipped in this copy of tfsr (no file {path}); "
            f"shipped names: {', '.join(pretrained_names()) or 'none'}"
        )
    return path


def pretrained(name: str) -> keras.Model:
    """Loads the shipped model ``name`` (for example ``"sesr_m5_x2"``)."""
    entry = pretrained_entry(name)
    path = pretrained_path(name)
    if entry.loader is not None:
        return entry.loader(path)
    return keras.models.load_model(path, compile=False)
