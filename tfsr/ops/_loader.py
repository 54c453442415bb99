"""Lazy loading of the compiled op libraries, with the pure-TF twins as fallback.

``tfsr/ops/_compiled/_<family>_ops.so`` (built by ``make ops`` / ``python -m custom_ops.build``) is
loaded on first use. When it is missing or fails to load, the op's pure-TensorFlow twin is used and
one warning per process says why and how to build. ``TFSR_PURE_TF=1`` forces the twins without a
warning.
"""

from __future__ import annotations

import json
import os
import threading
import warnings

import tensorflow as tf

from tfsr.cpu_features import CPU_FEATURES_FILE, cpu_features

COMPILED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_compiled")
FAMILIES = ("meta_upscale", "lut_interp")  # every family custom_ops/build.py makes

_lock = threading.Lock()
_libraries: dict[str, object | None] = {}
_warned = False


class CompiledOpFallbackWarning(RuntimeWarning):
    """A compiled op library could not be used; its pure-TF twin runs instead."""


def pure_tf_forced() -> bool:
    """True when ``TFSR_PURE_TF=1`` asks for the pure-TF twins."""
    return os.environ.get("TFSR_PURE_TF", "") == "1"


def library_path(family: str) -> str:
    return os.path.join(COMPILED_DIR, f"_{family}_ops.so")


def _missing_cpu_features(family: str) -> list[str]:
    """Instruction sets ``family``'s library was compiled for (``cpu_features.json``, written by
    the build: ``{"libraries": {family: [...]}}``, or an older ``{"required": [...]}`` for all)
    that this CPU lacks: loading it anyway would kill the process (SIGILL) at the first such
    instruction, with no chance to fall back."""
    try:
        with open(os.path.join(COMPILED_DIR, CPU_FEATURES_FILE)) as f:
            saved = json.load(f)
        required = saved["libraries"][family] if "libraries" in saved else saved["required"]
    except (OSError, ValueError, KeyError, TypeError):
        return []  # built before the file existed, or unreadable: nothing known to check
    have = cpu_features()
    return [feature for feature in required if feature not in have]


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, CompiledOpFallbackWarning, stacklevel=4)


# Often first called while a tf.function traces a model: plain Python, not for AutoGraph (which
# would warn that it cannot read the source of os.path.exists).
@tf.autograph.experimental.do_not_convert
def load(family: str):
    """The loaded op module of ``family``, or None when its pure-TF twin must be used."""
    if family in _libraries:
        return _libraries[family]
    with _lock:
        if family in _libraries:
            return _libraries[family]
        library = None
        if not pure_tf_forced():
            path = library_path(family)
            if not os.path.exists(path):
                _warn_once(
                    f"tfsr: compiled op library {path} not found; using the pure-TensorFlow "
                    "implementation (slower, more memory). Build it with `make ops` "
                    "(python -m custom_ops.build); set TFSR_PURE_TF=1 to silence this."
                )
            elif missing := _missing_cpu_features(family):
                _warn_once(
                    f"tfsr: {path} was built for a CPU with {', '.join(missing)}, which this "
                    "CPU lacks; using the pure-TensorFlow implementation. Rebuild on this "
                    "machine with `make ops`; set TFSR_PURE_TF=1 to silence this."
                )
            else:
                try:
                    library = tf.load_op_library(path)
                except Exception as e:  # noqa: BLE001 - any failure means: use the twin
                    _warn_once(
                        f"tfsr: could not load {path} ({type(e).__name__}: {e}); using the "
                        "pure-TensorFlow implementation. Rebuild with `make ops` for this "
                        "TensorFlow; set TFSR_PURE_TF=1 to silence this."
                    )
        _libraries[family] = library
        return library


def custom_ops_available() -> bool:
    """Whether tfsr runs its compiled ops (False: the pure-TF twins are in use).

    Loads the libraries if needed, which also registers their ops: call it before
    ``tf.saved_model.load`` of a model saved with compiled ops.
    """
    return all(load(family) is not None for family in FAMILIES)
