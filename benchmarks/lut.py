"""LUT inference vs the float network it came from: CPU time per frame and storage.

Question: how much faster is a transferred LUT model (``tfsr.lut.LutModel``: int8 tables, one
fused compiled op ``Tfsr>LutStage`` per stage) than the LUT-convertible float network
(``tfsr.lut.LutNet``, a ``tf.function``) it came from, and how large are its tables? (Issue #7:
at least 10x for ``rclut_x4``.)

Cases: the registered ``srlut_x4``, ``mulut_x4``, ``rclut_x4`` (default widths; timing does not
depend on the trained values, so untrained weights are used), x4 on one Y frame: by default
480x270 -> 1920x1080 (a 1080p output; a quarter of the work of a 4K frame, which scales linearly
with the pixels), ``--full``: 960x540 -> 3840x2160 (a 4K output). Methods: ``net`` (float
network), ``lut`` (``LutModel.upscale``: the compiled stage op), ``lut_twin`` (the pure-TF graph
of ``LutModel(x, training=True)``: the stage rule in TensorFlow ops with the pure-TF
interpolation per pattern and rotation, about what runs without the compiled library).
``--frame1080p`` adds one ``lut`` row per family on a 1920x1080 input (-> 7680x4320 for x4;
``rclut`` only by default) without the float network, which would take minutes there.

Frames: by default a natural image (BSD200 100075, Y, mirrored to size); ``--noise`` uses uniform
noise, the worst case for a LUT (every query reads random table rows; the float network's cost
does not depend on the content).

Metrics: ``ms``, median of 3 calls after one warm-up, the methods of a family called in turn,
round after round (``benchmarks.common.time_interleaved``); ``speedup`` = net ms / method ms in
the same run; ``cpu_ms``, the process CPU time per call (all threads; mean over the timed calls;
steadier than wall time on a busy machine) and ``cpu_speedup`` = net cpu_ms / method cpu_ms;
``tables_kb`` (table bytes / 1024) and ``file_kb`` (the compressed ``.npz`` on disk).

Run: ``python -m benchmarks.lut`` (a few minutes on 2 cores), ``--full`` for the 4K output frame,
``--quick`` (one timed call per method, no twin) for a fast check.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from benchmarks.common import print_table, time_interleaved, write_results  # noqa: E402

FAMILIES = ("srlut", "mulut", "rclut")


def _time(methods: dict, repeats: int) -> dict:
    """``{method: {ms, cpu_ms}}``: wall ms (median; the methods called in turn, round after
    round, by ``time_interleaved``) and process CPU ms per call (all threads; mean)."""
    for fn in methods.values():
        fn()  # warm-up (tracing)
    cpu = dict.fromkeys(methods, 0.0)

    def counted(name, fn):
        def call():
            start = time.process_time()
            fn()
            cpu[name] += time.process_time() - start

        return call

    wall = time_interleaved(
        {name: counted(name, fn) for name, fn in methods.items()}, warmup=0, rounds=repeats
    )
    return {
        name: {"ms": wall[name]["median_ms"], "cpu_ms": cpu[name] * 1e3 / repeats}
        for name in methods
    }


def _time_model(family: str, frame, quick: bool) -> tuple[dict, object, float, object]:
    """{method: {ms, cpu_ms}}, the tables, the .npz size in KB and the LUT model of one family."""
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
    }
    if not quick:
        methods["lut_twin"] = lambda: twin_fn(frame).numpy()
    repeats = 1 if quick else 3
    return _time(methods, repeats), tables, file_kb, model


def _frame(height: int, width: int, noise: bool):
    """(1, height, width, 1) float32 Y: a natural image (BSD200 100075.png, mirrored to size and
    cropped), or uniform noise (the worst case for the tables' cache locality)."""
    import numpy as np

    if noise:
        return np.random.default_rng(0).uniform(0, 1, (1, height, width, 1)).astype(np.float32)
    from tfsr.data.color import rgb_to_y
    from tfsr.data.io import read_image
    from tfsr.testing import shared_data_dir

    rgb = read_image(os.path.join(shared_data_dir(), "train", "BSD200", "100075.png"))
    y = np.asarray(rgb_to_y(rgb.astype(np.float32) / 255), np.float32)[..., 0]
    while y.shape[0] < height or y.shape[1] < width:
        y = np.pad(y, [(0, y.shape[0]), (0, y.shape[1])], mode="symmetric")
    return y[None, :height, :width, None]


def run(full: bool, quick: bool, families, frame1080p, noise: bool) -> list[dict]:
    from tfsr.ops import _loader

    height, width = (540, 960) if full else (270, 480)
    frame = _frame(height, width, noise)
    columns = ["model", "method", "input", "ms", "speedup", "cpu_ms", "cpu_speedup", "tables_kb"]
    rows = []
    for family in families:
        times, tables, file_kb, model = _time_model(family, frame, quick)
        common = {
            "model": f"{family}_x4",
            "frame": "noise" if noise else "natural",
            "tables_kb": tables.nbytes() / 1024,
            "file_kb": file_kb,
            "compiled_op": _loader.load("lut_interp") is not None,
        }
        start = len(rows)
        for method, t in times.items():
            rows.append(
                common
                | t
                | {
                    "method": method,
                    "input": f"{width}x{height}",
                    "speedup": times["net"]["ms"] / t["ms"],
                    "cpu_speedup": times["net"]["cpu_ms"] / t["cpu_ms"],
                }
            )
        if family in frame1080p:
            big = _frame(1080, 1920, noise)
            upscale = {"lut": lambda b=big, m=model: m.upscale(b).numpy()}
            t = _time(upscale, 1 if quick else 3)["lut"]
            rows.append(common | t | {"method": "lut", "input": "1920x1080"})
        print_table(rows[start:], columns)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="time the 960x540 -> 4K frame")
    parser.add_argument("--quick", action="store_true", help="one timed call, no twin")
    parser.add_argument("--noise", action="store_true", help="uniform noise frames")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated")
    parser.add_argument(
        "--frame1080p", default="rclut", help="families also timed on a 1920x1080 input ('' none)"
    )
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; expected some of {list(FAMILIES)}")
    frame1080p = [f for f in args.frame1080p.split(",") if f]
    rows = run(args.full, args.quick, families, frame1080p, args.noise)
    print()
    columns = ["model", "method", "input", "ms", "speedup", "cpu_ms", "cpu_speedup", "tables_kb"]
    print_table(rows, columns + ["file_kb"])
    key = {r["model"]: r for r in rows if r["method"] == "lut" and "speedup" in r}
    summary = (
        {f"{m}_speedup": key[m]["speedup"] for m in key}
        | {f"{m}_cpu_speedup": key[m]["cpu_speedup"] for m in key}
        | {f"{m}_tables_kb": key[m]["tables_kb"] for m in key}
    )
    summary |= {f"{r['model']}_1080p_ms": r["ms"] for r in rows if r["input"] == "1920x1080"}
    write_results("lut", summary, rows)


if __name__ == "__main__":
    main()
