"""The full meta-upscale CPU grid (hours) goes on after an interruption instead of starting over."""

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
