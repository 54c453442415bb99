"""LUT inference vs the float network it came from: CPU time per frame and storage.

Question: how much faster is a transferred LUT model (``tfsr.lut.LutModel``: 4-simplex
interpolation in int8 tables, compiled op ``Tfsr>LutInterp4D``) than the LUT-convertible float
network (``tfsr.lut.LutNet``, a ``tf.function``) it came from, and how large are its tables?

Cases: the registered ``srlut_x4``, ``mulut_x4``, ``rclut_x4`` (default widths; timing does not
depend on the trained values, so untrained weights are used), x4 on one Y frame: by default
480x270 -> 1920x1080 (a 1080p output; a quarter of the work of a 4K frame, which scales linearly
with the pixels), ``--full``: 960x540 -> 3840x2160 (a 4K output). Methods: ``net`` (float
network), ``lut`` (compiled op), ``lut_twin`` (pure-TF interpolation).

Metrics: ``ms``, median of 3 calls after one warm-up (``benchmarks.common.time_call``);
``speedup`` = net ms / method ms in the same run; ``tables_kb`` (table bytes / 1024) and
``file_kb`` (the compressed ``.npz`` on disk).

Run: ``python -m benchmarks.lut`` (a few minutes on 2 cores), ``--full`` for the 4K output frame.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import print_table, time_call, write_results  # noqa: E402

FAMILIES = ("srlut", "mulut", "rclut")


def _time_model(family: str, frame) -> tuple[dict, object, float]:
    """{method: median ms}, the tables and the .npz size in KB of one family."""
    import tensorflow as tf

    import tfsr.lut as lut

    net = lut.lut_net(family, scale=4)
    tables = lut.transfer(net)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.npz")
        lut.save_lut_file(path, tables)
        file_kb = os.path.getsize(path) / 1024
    model = lut.LutModel.from_tables(tables)
    net_fn = tf.function(lambda x: net(x, training=False))
    twin_fn = tf.function(lambda x: model(x, training=True))
    methods = {
        "net": lambda: net_fn(frame).numpy(),
        "lut": lambda: model.upscale(frame).numpy(),
        "lut_twin": lambda: twin_fn(frame).numpy(),
    }
    times = {m: time_call(fn, warmup=1, repeats=3)["median_ms"] for m, fn in methods.items()}
    return times, tables, file_kb


def run(full: bool) -> list[dict]:
    import numpy as np

    from tfsr.ops import _loader

    height, width = (540, 960) if full else (270, 480)
    frame = np.random.default_rng(0).uniform(0, 1, (1, height, width, 1)).astype(np.float32)
    columns = ["model", "method", "input", "ms", "speedup", "tables_kb", "file_kb"]
    rows = []
    for family in FAMILIES:
        times, tables, file_kb = _time_model(family, frame)
        for method, ms in times.items():
            rows.append(
                {
                    "model": f"{family}_x4",
                    "method": method,
                    "input": f"{width}x{height}",
                    "ms": ms,
                    "speedup": times["net"] / ms,
                    "tables_kb": tables.nbytes() / 1024,
                    "file_kb": file_kb,
                    "compiled_op": _loader.load("lut_interp") is not None,
                }
            )
        print_table(rows[-3:], columns)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="time the 960x540 -> 4K frame")
    args = parser.parse_args()
    rows = run(args.full)
    print()
    print_table(rows, ["model", "method", "input", "ms", "speedup", "tables_kb", "file_kb"])
    key = {r["model"]: r for r in rows if r["method"] == "lut"}
    summary = {f"{m}_speedup": key[m]["speedup"] for m in key} | {
        f"{m}_tables_kb": key[m]["tables_kb"] for m in key
    }
    write_results("lut", summary, rows)


if __name__ == "__main__":
    main()
