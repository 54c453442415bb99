"""The JSON header of tfsr's ``.npz`` model files (collapsed SESR weights, LUT tables).

The header is stored as the array ``header``: the UTF-8 bytes of a JSON object as uint8, so the
files load with ``allow_pickle=False`` and the header needs no string dtype.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
import zlib

import numpy as np


class NpzReadError(ValueError):
    """A file that is not a readable tfsr ``.npz``; ``reason`` says why, without the path."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path} is not a tfsr .npz model: {reason}")
        self.path = path
        self.reason = reason


def encode_header(header: dict) -> np.ndarray:
    """The ``header`` array for ``np.savez``."""
    return np.frombuffer(json.dumps(header, sort_keys=True).encode("utf-8"), np.uint8)


def decode_header(array: np.ndarray) -> dict:
    """The header dict from its array; ValueError when it is not a JSON object."""
    header = json.loads(np.asarray(array, np.uint8).tobytes().decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError(f"the header is not a JSON object: {header!r}")
    return header


def read_npz(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and the other arrays of a tfsr ``.npz`` file.

    Raises:
        FileNotFoundError: no such file.
        NpzReadError: (a ValueError naming the file) anything that is not a readable tfsr
            ``.npz``: not a zip, truncated or corrupted bytes (the zip's CRC-32), no ``header``
            array, or a header that is not a JSON object.
    """
    return _read(path, with_arrays=True)


def read_npz_header(path: str) -> dict:
    """The header of a tfsr ``.npz`` file (the other arrays are not read); errors as
    :func:`read_npz`."""
    return _read(path, with_arrays=False)[0]


def _read(path: str, with_arrays: bool) -> tuple[dict, dict[str, np.ndarray]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist")
    # NumPy takes any file that is neither a zip nor a .npy for a pickle and says so ("if you
    # trust the file ..."): not advice to give about a damaged model file.
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise NpzReadError(path, "it holds one array, not a zip of named arrays")
    if not magic.startswith(b"PK"):
        raise NpzReadError(path, "it is not a zip of arrays (an .npz); corrupted or truncated?")
    try:
        data = np.load(path, allow_pickle=False)
        with data:
            raw = data["header"] if "header" in data.files else None
            names = [n for n in data.files if n != "header"] if with_arrays else []
            arrays = {name: data[name] for name in names}
    # Zip headers are not covered by the CRC: a damaged one can name an unknown compression
    # method (NotImplementedError), claim encryption (RuntimeError) or break struct parsing;
    # a damaged .npy header can declare an array too large to allocate (MemoryError).
    except (
        MemoryError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
        RuntimeError,
        KeyError,
        struct.error,
    ) as error:
        reason = (
            f"cannot read it as .npz ({type(error).__name__}: {error}); corrupted or truncated?"
        )
        raise NpzReadError(path, reason) from error
    if raw is None:
        raise NpzReadError(path, "no 'header' array")
    # NumPy hands back the raw bytes of a member that is not a .npy array.
    not_arrays = sorted(
        n for n, a in {"header": raw, **arrays}.items() if not isinstance(a, np.ndarray)
    )
    if not_arrays:
        raise NpzReadError(path, f"members {not_arrays} are not .npy arrays")
    try:
        header = decode_header(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise NpzReadError(path, f"its header is not a JSON object ({error})") from error
    return header, arrays
