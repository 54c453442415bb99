"""The full meta-upscale CPU grid (hours) goes on after an interruption instead of starting over."""

import json

import pytest

from benchmarks import meta_upscale


def test_full_grid_goes_on_from_the_configurations_it_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(meta_upscale, "PARTIAL", str(tmp_path / "partial.jsonl"))
    monkeypatch.setattr(meta_upscale, "RESULTS_DIR", str(tmp_path))
    configs = [((8, 8), 2.0, 1, 3, ("ours",)), ((8, 8), 2.5, 1, 3, ("ours",))]
    monkeypatch.setattr(meta_upscale, "grid", lambda quick: iter(configs))
    calls, written = [], []
    interrupt_at = [3]  # the first run is stopped in its fourth configuration

    def fake_run_config(mode, out, scale, batch, c_out, methods):
        if len(calls) == interrupt_at[0]:
            interrupt_at[0] = None
            raise KeyboardInterrupt
        calls.append((mode, scale))
        row = {"method": "ours", "mode": mode, "out": "8x8", "scale": scale, "batch": batch}
        return [{**row, "c_out": c_out, "ms": 1.0, "peak_mb": 1.0}]

    monkeypatch.setattr(meta_upscale, "run_config", fake_run_config)
    monkeypatch.setattr(meta_upscale, "write_results", lambda name, s, rows: written.append(rows))
    monkeypatch.setattr(meta_upscale, "write_memory_svg", lambda rows: None)

    with pytest.raises(KeyboardInterrupt):
        meta_upscale.main([])
    assert calls == [("fwd", 2.0), ("fwd_bwd", 2.0), ("fwd", 2.5)]
    assert not written

    meta_upscale.main([])  # the rerun only does what is left
    assert calls[3:] == [("fwd_bwd", 2.5)]
    assert [(r["mode"], r["scale"]) for r in written[0]] == [
        ("fwd", 2.0),
        ("fwd_bwd", 2.0),
        ("fwd", 2.5),
        ("fwd_bwd", 2.5),
    ]
    assert not (tmp_path / "partial.jsonl").exists()  # removed once the JSON is written


def test_memory_curve_takes_the_curve_case_of_each_method():
    base = {"mode": "fwd_bwd", "scale": 2.5, "batch": 1, "c_out": 3}
    rows = [
        {**base, "method": "ours", "out": "540x960", "peak_mb": 51.0, "io_mb": 40.0},
        {**base, "method": "ours", "out": "135x240", "peak_mb": 11.0, "io_mb": 3.0},
        {**base, "method": "im2col_per_pixel", "out": "135x240", "peak_mb": 975.0, "io_mb": 3.0},
        {**base, "method": "ours", "out": "135x240", "batch": 16, "peak_mb": 99.0, "io_mb": 9.0},
        {**base, "method": "im2col_per_pixel", "out": "540x960", "error": "skipped", "io_mb": 40.0},
    ]
    curve = meta_upscale.memory_curve(rows)
    assert curve == {
        "ours": [(135 * 240, 11.0), (540 * 960, 51.0)],
        "im2col per-pixel (published)": [(135 * 240, 975.0)],
        "output + x gradient": [(135 * 240, 1.5), (540 * 960, 20.0)],
    }
    svg = meta_upscale.memory_svg(curve, "title")
    assert svg.startswith("<svg") and svg.count("<polyline") == 3 and "540x960" in svg
    # The floor is dashed, wherever it comes in the legend (the baseline may have no rows).
    del curve["im2col per-pixel (published)"]
    lines = meta_upscale.memory_svg(curve, "t").splitlines()
    dashed = [line for line in lines if "dasharray" in line]
    legend = next(line for line in lines if ">output + x gradient<" in line)
    colour = legend.split('fill="')[1].split('"')[0]
    assert len(dashed) == 1 and f'stroke="{colour}"' in dashed[0]


def test_gpu_benchmark_summary():
    """benchmarks.meta_upscale_gpu runs on the GPU machine (no TensorFlow); its summary here."""
    from benchmarks import meta_upscale_gpu

    row = {"dtype": "float32", "c_out": 3, "batch": 1, "out": "1080x1920"}
    rows = [
        {**row, "scale": 2.0, "torch_speedup": 20.0, "fwd_peak_fraction": 0.07},
        {**row, "scale": 3.7, "torch_speedup": 19.0, "fwd_peak_fraction": 0.06},
        {**row, "batch": 16, "scale": 2.0, "torch_speedup": 7.5},
        {**row, "out": "2160x3840", "scale": 3.7, "torch_fwd_ms": "OOM"},
    ]
    summary = meta_upscale_gpu.summarize(rows)
    assert summary["min_torch_speedup_fwd"] == 7.5
    assert summary["speedup_1080p_by_scale"] == {"2.0": 20.0, "3.7": 19.0}
    assert summary["fwd_peak_fraction_1080p"] == {"2.0": 0.07, "3.7": 0.06}


def test_resume_redoes_a_configuration_skipped_for_memory_that_fits_now(tmp_path, monkeypatch):
    partial = tmp_path / "partial.jsonl"
    monkeypatch.setattr(meta_upscale, "PARTIAL", str(partial))
    shape = {"out": "8x8", "scale": 2.0, "batch": 1, "c_out": 3, "mode": "fwd"}
    skipped = {
        **shape,
        "method": "im2col_per_pixel",
        "error": "skipped: needs ~9 GB, 1 GB available",
    }
    measured = {**shape, "method": "ours", "ms": 1.0, "peak_mb": 1.0}
    lines = [
        {"config": "fwd 8x8 x2 N1 Co3", "rows": [measured, skipped]},  # fits now: redone
        {"config": "fwd 8x8 x2.5 N1 Co3", "rows": [{**measured, "scale": 2.5}]},
    ]
    partial.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"config": "cut')
    assert list(meta_upscale._load_partial()) == ["fwd 8x8 x2.5 N1 Co3"]


def test_memory_svg_failure_leaves_the_file_alone(tmp_path, monkeypatch):
    svg = tmp_path / "curve.svg"
    svg.write_text("<svg>old</svg>")
    monkeypatch.setattr(meta_upscale, "SVG_PATH", str(svg))
    with pytest.raises(ValueError):
        meta_upscale.write_memory_svg([])  # no rows of the curve's case: nothing to draw
    assert svg.read_text() == "<svg>old</svg>"  # it used to be left empty
