"""The tfsr LUT file: every table of a LUT model in one ``.npz`` with a JSON header.

Arrays (``np.load(..., allow_pickle=False)``):

- ``header``: uint8 bytes of a UTF-8 JSON object::

      {"format": "tfsr-lut", "version": 1, "interval": 16, "scale": 4, "rotations": 4,
       "stages": [{"scale": 1, "patterns": "SDY", "rc": true}, ...],
       "arrays": {"lut_0_S": {"shape": [83521, 1], "dtype": "int8"}, ...}}

- ``lut_{stage}_{pattern}``: (L**4, scale**2) int8, the 4-D table of one unit
  (L = 256 / interval + 1; rows as in :func:`tfsr.ops.lut_interp_4d`);
- ``rc_{stage}_{pattern}``: (window**2, 256) float32, the RC module's 1-D tables (RC stages only).

The zip's CRC-32 catches corrupted bytes, the header's list of arrays catches missing, extra and
mis-shaped arrays; every failure is a :class:`LutFileError` (a ValueError) naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from tfsr.atomic_file import atomic_output
from tfsr.lut.networks import normalize_stages, total_scale
from tfsr.lut.patterns import RC_WINDOWS, ROTATIONS
from tfsr.npz_header import NpzReadError, encode_header, read_npz
from tfsr.ops.lut_interp import lut_side

FORMAT = "tfsr-lut"
VERSION = 1


class LutFileError(ValueError):
    """A LUT file that is missing pieces, corrupted, truncated or of another format/version."""


@dataclass
class LutTables:
    """The tables of a LUT model.

    Attributes:
        stages: normalised stage list (see :class:`tfsr.lut.LutNet`).
        interval: sampling interval of the 4-D tables.
        luts: ``{"lut_{s}_{p}": (L**4, scale**2) int8}``.
        rcs: ``{"rc_{s}_{p}": (window**2, 256) float32}`` for RC stages.
    """

    stages: list
    interval: int = 16
    luts: dict = field(default_factory=dict)
    rcs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.stages = normalize_stages(self.stages)

    @property
    def scale(self) -> int:
        return total_scale(self.stages)

    def expected_arrays(self) -> dict:
        """{name: (shape, dtype)} of every array these stages need."""
        rows = lut_side(self.interval) ** 4
        out = {}
        for s, stage in enumerate(self.stages):
            for p in stage["patterns"]:
                out[f"lut_{s}_{p}"] = ((rows, stage["scale"] ** 2), "int8")
                if stage["rc"]:
                    out[f"rc_{s}_{p}"] = ((RC_WINDOWS[p] ** 2, 256), "float32")
        return out

    def arrays(self) -> dict:
        return {**self.luts, **self.rcs}

    def check(self, where: str = "LUT tables") -> None:
        """Raises LutFileError when an array is missing, extra, or of the wrong shape/dtype."""
        have = self.arrays()
        expected = self.expected_arrays()
        missing = sorted(set(expected) - set(have))
        extra = sorted(set(have) - set(expected))
        if missing or extra:
            raise LutFileError(f"{where}: missing arrays {missing}, unexpected arrays {extra}")
        for name, (shape, dtype) in expected.items():
            a = have[name]
            if tuple(a.shape) != tuple(shape) or a.dtype != np.dtype(dtype):
                raise LutFileError(
                    f"{where}: array {name} has shape {tuple(a.shape)} {a.dtype}, expected "
                    f"{tuple(shape)} {dtype}"
                )
            if dtype == "float32" and not np.all(np.isfinite(a)):
                raise LutFileError(f"{where}: array {name} has non-finite values")
            if dtype == "int8" and a.size and a.min() < -127:
                raise LutFileError(f"{where}: array {name} holds -128 (entries are in [-127, 127])")

    def header(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "interval": self.interval,
            "scale": self.scale,
            "rotations": ROTATIONS,
            "stages": self.stages,
            "arrays": {
                n: {"shape": list(s), "dtype": d} for n, (s, d) in self.expected_arrays().items()
            },
        }

    def nbytes(self) -> int:
        """Bytes of table data (the storage figure papers report)."""
        return sum(a.nbytes for a in self.arrays().values())


def save_lut_file(path: str, tables: LutTables) -> None:
    """Writes ``tables`` to ``path`` (a ``.npz``), atomically."""
    tables.check()
    header = encode_header(tables.header())
    with atomic_output(path) as tmp, open(tmp, "wb") as f:  # a file: no ".npz" appended
        np.savez_compressed(f, header=header, **tables.arrays())


def _fail(path, message):
    raise LutFileError(f"{path} is not a valid tfsr LUT file: {message}")


def _exact(value, expected: int) -> bool:
    """``value == expected`` as a JSON integer (JSON's true and 4.0 compare equal to 1 and 4)."""
    return type(value) is int and value == expected


def load_lut_file(path: str) -> LutTables:
    """Reads and checks a LUT file.

    Raises:
        FileNotFoundError: no such file.
        LutFileError: not a zip/npz, corrupted or truncated bytes, bad or missing header, another
            format or version, missing/extra/mis-shaped arrays.
    """
    path = os.fspath(path)
    try:
        header, arrays = read_npz(path)
    except NpzReadError as e:
        _fail(path, e.reason)
    if header.get("format") != FORMAT:
        _fail(path, f"header format is {header.get('format')!r}, expected {FORMAT!r}")
    if not _exact(header.get("version"), VERSION):
        _fail(path, f"format version {header.get('version')!r}; this tfsr reads version {VERSION}")
    if not _exact(header.get("rotations"), ROTATIONS):
        _fail(path, f"rotations {header.get('rotations')!r}, expected {ROTATIONS}")
    try:
        stages = normalize_stages(header.get("stages"))
        interval = header.get("interval")
        lut_side(interval)
    except ValueError as e:
        _fail(path, f"bad header: {e}")
    tables = LutTables(
        stages=stages,
        interval=interval,
        luts={n: a for n, a in arrays.items() if n.startswith("lut_")},
        rcs={n: a for n, a in arrays.items() if not n.startswith("lut_")},
    )
    if not _exact(header.get("scale"), tables.scale):
        _fail(path, f"header scale {header.get('scale')!r} but the stages make x{tables.scale}")
    listed_arrays = header.get("arrays")
    try:
        listed = {n: (tuple(v["shape"]), v["dtype"]) for n, v in listed_arrays.items()}
    except (AttributeError, KeyError, TypeError):
        _fail(
            path,
            "the header's 'arrays' must map each array name to {'shape': [...], 'dtype': ...}, "
            f"got {str(listed_arrays)[:200]}",
        )
    if listed != tables.expected_arrays():
        _fail(path, "the header's array list does not match its stages")
    tables.check(where=path)
    return tables
