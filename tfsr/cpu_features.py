"""The CPU's instruction-set flags, shared by the op build (what to compile for) and the op
loader (whether a compiled library can run here). No TensorFlow import."""

from __future__ import annotations

# Written by ``custom_ops/build.py`` next to the libraries: {"required": ["avx2", "fma"]}.
CPU_FEATURES_FILE = "cpu_features.json"


def cpu_features() -> set[str]:
    """The feature flags of this machine's CPU (``/proc/cpuinfo``; empty where unreadable)."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((line.split() for line in f if line.startswith("flags")), []))
    except OSError:
        return set()
