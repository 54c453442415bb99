"""The JSON header of tfsr's ``.npz`` model files (collapsed SESR weights, LUT tables).

The header is stored as the array ``header``: the UTF-8 bytes of a JSON object as uint8, so the
files load with ``allow_pickle=False`` and the header needs no string dtype.
"""

from __future__ import annotations

import json

import numpy as np


def encode_header(header: dict) -> np.ndarray:
    """The ``header`` array for ``np.savez``."""
    return np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), np.uint8)


def decode_header(array: np.ndarray) -> dict:
    """The header dict from its array; ValueError when it is not a JSON object."""
    header = json.loads(np.asarray(array, np.uint8).tobytes().decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"the header is not a JSON object: {header!r}")
    return header


def read_npz_header(path: str) -> dict:
    """The header of a tfsr ``.npz`` file; ValueError naming the file when it has none."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return decode_header(data["header"])
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path} is not a tfsr .npz model (no readable header): {error}"
        ) from error
