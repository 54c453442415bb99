"""Transfer to tables, the LUT file format, LUT inference, the upscaler kind and fine-tuning."""

import io
import json
import os
import zipfile
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tfsr.lut  # noqa: F401  (registers the .npz upscaler kind)
from tests.cli import run_python
from tfsr.inference import load_upscaler
from tfsr.lut import (
    LutFileError,
    LutModel,
    LutNet,
    finetune,
    load_lut_file,
    save_lut_file,
    transfer,
)
from tfsr.lut.conversion import load_run_net, transfer_run
from tfsr.lut.networks import functional_lut_net

STAGES = [{"scale": 1, "patterns": "SY", "rc": True}, {"scale": 2, "patterns": "S", "rc": True}]


@pytest.fixture(scope="module")
def net():
    keras.utils.set_random_seed(0)
    return LutNet(STAGES, filters=8, depth=1, rc_filters=4)


@pytest.fixture(scope="module")
def tables(net):
    return transfer(net)


@pytest.fixture(scope="module")
def lut_path(tables, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("lut") / "model.npz")
    save_lut_file(path, tables)
    return path


def _image(seed, shape=(1, 9, 11, 1)):
    return (np.round(np.random.default_rng(seed).uniform(0, 255, shape)) / 255).astype(np.float32)


def test_transfer_tables(net, tables):
    assert set(tables.luts) == {"lut_0_S", "lut_0_Y", "lut_1_S"}
    assert set(tables.rcs) == {"rc_0_S", "rc_0_Y", "rc_1_S"}
    assert tables.luts["lut_1_S"].shape == (17**4, 4) and tables.luts["lut_1_S"].dtype == np.int8
    assert tables.rcs["rc_0_S"].shape == (25, 256)
    # The RC tables are the mappings at every level; the first 4-D row is the unit at (0,0,0,0).
    np.testing.assert_allclose(tables.rcs["rc_0_Y"], net.rc_modules[1].mapping_table().numpy())
    np.testing.assert_array_equal(
        tables.luts["lut_1_S"][0], np.round(net.units[2](np.zeros((1, 4), np.float32))[0])
    )
    assert tables.nbytes() == 17**4 * (1 + 1 + 4) + 4 * 256 * (25 + 9 + 25)


def test_lut_model_follows_the_net(net, tables):
    x = _image(1)
    model = LutModel.from_tables(tables)
    y_net = net(x).numpy() * 255
    y_lut = model(x).numpy() * 255
    assert y_lut.shape == (1, 18, 22, 1)
    # Interpolation at interval 16 and int8 rounding: close, not equal.
    assert np.mean(np.abs(y_lut - y_net)) < 0.5
    assert np.max(np.abs(y_lut - y_net)) < 4


def test_compiled_and_twin_paths_agree_exactly(tables):
    model = LutModel.from_tables(tables)
    x = _image(2)
    np.testing.assert_array_equal(model(x, training=False).numpy(), model(x, training=True).numpy())
    # The compiled graph may fold the final scaling differently: last-ulp differences only.
    np.testing.assert_allclose(model.upscale(x).numpy(), model(x).numpy(), atol=1e-6)


def test_inference_errors_are_clear(net, tables):
    model = LutModel.from_tables(tables)
    assert model.min_side == 2  # 5x5 and 3x3 RC windows, 2x2 patterns
    with pytest.raises(ValueError, match="needs images of at least 2x2 pixels, got 1x7"):
        model.upscale(np.zeros((1, 1, 7, 1), np.float32))
    # Inference is not differentiable; a tape around it gives no gradient, not a LookupError.
    x = tf.constant(_image(3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)
    assert tape.gradient(y, x) is None
    with pytest.raises(ValueError, match="interval must be a power of two in \\[4, 128\\].* got 2"):
        transfer(net, interval=2)


@pytest.mark.parametrize("pure_tf", [False, True])
def test_min_side_is_the_reach_of_the_stages(monkeypatch, pure_tf):
    """The compiled op's rule: S reaches 1 pixel, D and Y 2, an RC window of side w w // 2. An
    S-only net takes a 1-pixel-high image (min_side used to say 2 for every net)."""
    if pure_tf:
        monkeypatch.setenv("TFSR_PURE_TF", "1")
    rng = np.random.default_rng(0)
    for patterns, rc, side in (("S", False, 1), ("SDY", False, 2), ("SDY", True, 3)):
        model = LutModel([{"patterns": patterns, "scale": 2, "rc": rc}])
        for v in [*model.luts, *(r for r in model.rcs if r is not None)]:
            v.assign(rng.uniform(-100, 100, v.shape).astype(np.float32))
        assert model.min_side == side
        y = model.upscale(rng.uniform(0, 1, (1, side, side + 3, 1)).astype(np.float32))
        assert y.shape == (1, 2 * side, 2 * side + 6, 1)


def test_file_round_trip(tables, lut_path):
    loaded = load_lut_file(lut_path)
    assert loaded.stages == tables.stages and loaded.interval == 16 and loaded.scale == 2
    for name, array in tables.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], array)
    with np.load(lut_path, allow_pickle=False) as data:
        header = json.loads(data["header"].tobytes())
    assert header["format"] == "tfsr-lut" and header["version"] == 1
    assert header["arrays"]["lut_1_S"] == {"shape": [83521, 4], "dtype": "int8"}


@pytest.fixture
def truncated_lut(lut_path, tmp_path):
    data = open(lut_path, "rb").read()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    return str(bad)


def test_truncated_file_is_a_clear_error(truncated_lut):
    with pytest.raises(LutFileError, match="not a valid tfsr LUT file.*corrupted or truncated"):
        load_lut_file(truncated_lut)


def test_corrupted_file_is_a_clear_error(lut_path, tmp_path):
    data = bytearray(open(lut_path, "rb").read())
    data[len(data) // 3] ^= 0xFF  # inside the compressed tables
    bad = tmp_path / "corrupted.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(LutFileError, match="not a valid tfsr LUT file"):
        load_lut_file(str(bad))


def test_an_array_too_large_to_allocate_is_a_clear_error(lut_path, tmp_path):
    bad = tmp_path / "huge.npz"
    with zipfile.ZipFile(lut_path) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        member = io.BytesIO()
        fields = {"descr": "<f4", "fortran_order": False, "shape": (2**40, 1)}  # 4 TiB
        np.lib.format.write_array_header_1_0(member, fields)
        dst.writestr("extra.npy", member.getvalue() + b"\0" * 16)
    with pytest.raises(LutFileError, match="corrupted or truncated"):
        load_lut_file(str(bad))


def _rewrite(src, dst, drop=(), replace=None, header=None):
    with np.load(src, allow_pickle=False) as data:
        arrays = {n: data[n] for n in data.files if n not in drop}
    arrays.update(replace or {})
    if header is not None:
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(dst, **arrays)
    return str(dst)


def test_mismatched_files_are_clear_errors(lut_path, tmp_path):
    with np.load(lut_path, allow_pickle=False) as data:
        header = json.loads(data["header"].tobytes())
    cases = [
        ({"drop": ["rc_0_S"]}, r"missing arrays \['rc_0_S'\]"),
        (
            {"replace": {"lut_0_S": np.zeros((17**4, 4), np.int8)}},
            r"lut_0_S has shape \(83521, 4\)",
        ),
        ({"replace": {"lut_0_S": np.zeros((17**4, 1), np.int16)}}, "int16, expected"),
        ({"replace": {"extra": np.zeros(3)}}, r"unexpected arrays \['extra'\]"),
        ({"header": {**header, "version": 99}}, "format version 99"),
        ({"header": {**header, "version": True}}, "format version True"),
        ({"header": {**header, "scale": 2.0}}, "header scale 2.0 but the stages make x2"),
        (
            {"replace": {"lut_0_S": np.full((17**4, 1), -128, np.int8)}},
            r"lut_0_S holds -128 \(entries are in \[-127, 127\]\)",
        ),
        ({"header": {**header, "format": "other"}}, "header format is 'other'"),
        ({"header": {**header, "scale": 3}}, "header scale 3 but the stages make x2"),
        ({"header": {**header, "interval": 12}}, "power of two"),
        ({"drop": ["header"]}, "no 'header' array"),
        (
            {"header": {**header, "arrays": {"lut_0_S": {"shape": [83521, 1]}}}},
            "'arrays' must map each array name to",
        ),
        ({"header": {**header, "arrays": [1]}}, "'arrays' must map each array name to"),
        (
            {"header": {**header, "stages": [{**header["stages"][0], "rc": "false"}]}},
            "rc must be true or false, got 'false'",
        ),
        ({"header": [header]}, "its header is not a JSON object"),
    ]
    for i, (change, message) in enumerate(cases):
        path = _rewrite(lut_path, tmp_path / f"bad{i}.npz", **change)
        with pytest.raises(LutFileError, match=message):
            load_lut_file(path)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(LutFileError, match="not a zip of arrays") as error:
        load_lut_file(str(tmp_path / "text.npz"))
    assert "pickle" not in str(error.value)  # NumPy's "if you trust the file" advice
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lut_file(str(tmp_path / "missing.npz"))


def _zip_rewrite(src, dst, edit):
    """Copies the zip ``src`` member by member through ``edit(name, bytes) -> bytes``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, edit(info.filename, zin.read(info.filename)))
    return str(dst)


def test_damaged_zip_headers_and_raw_members_are_clear_errors(lut_path, tmp_path):
    raw = _zip_rewrite(
        lut_path, tmp_path / "raw.npz", lambda name, b: b"x" * 81 if name == "lut_0_S.npy" else b
    )
    with pytest.raises(LutFileError, match=r"members \['lut_0_S'\] are not .npy arrays"):
        load_lut_file(raw)
    # The central directory's compression method of the first member (offset 10 of its entry),
    # which no CRC covers, set to an unknown one.
    data = bytearray(open(lut_path, "rb").read())
    entry = data.index(b"PK\x01\x02")
    data[entry + 10 : entry + 12] = (99).to_bytes(2, "little")
    bad = tmp_path / "method.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(LutFileError, match="cannot read it as .npz"):
        load_lut_file(str(bad))


def test_pickled_object_arrays_are_refused(lut_path, tmp_path):
    path = _rewrite(lut_path, tmp_path / "pickled.npz", replace={"lut_0_S": np.array([{}], object)})
    with pytest.raises(LutFileError, match="not a valid tfsr LUT file"):
        load_lut_file(path)


def test_load_upscaler_on_a_truncated_lut_file_is_a_clear_error(truncated_lut):
    with pytest.raises(ValueError, match="truncated.npz .*corrupted or truncated"):
        load_upscaler(truncated_lut)


def test_load_upscaler_finds_lut_files(tables, lut_path):
    up = load_upscaler(lut_path)
    assert up.scale == 2
    y = _image(3, (9, 11, 1))
    out = up.upscale_y(y)
    expected = LutModel.from_tables(tables)(y[None]).numpy()[0]
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert up.upscale_rgb(np.zeros((4, 5, 3), np.float32)).shape == (8, 10, 3)
    # Thinner than the tables' reach (2 pixels): edge-padded, then cropped.
    thin = y[:1, :5]
    padded = np.pad(thin, ((0, 1), (0, 0), (0, 0)), mode="edge")[None]
    expected = LutModel.from_tables(tables)(padded).numpy()[0, :2]  # the twin, on two rows
    np.testing.assert_allclose(up.upscale_y(thin), expected, atol=1e-6)
    assert up.upscale_y(y[:1, :1]).shape == (2, 2, 1)
    with pytest.raises(ValueError, match="upscales by 2, but scale 4 was asked for"):
        load_upscaler(lut_path, scale=4)


def test_finetune_lowers_the_loss_and_keeps_int8(tables):
    model = LutModel.from_tables(tables)
    rng = np.random.default_rng(5)
    lr = _image(6, (4, 8, 8, 1))
    hr = np.clip(np.repeat(np.repeat(lr, 2, 1), 2, 2) + rng.normal(0, 0.02, (4, 16, 16, 1)), 0, 1)
    data = tf.data.Dataset.from_tensors((lr, hr.astype(np.float32))).repeat()
    before = float(tf.reduce_mean(tf.abs(hr - model(lr))))
    losses = finetune(model, data, steps=6, lr=0.5)
    assert len(losses) == 6 and losses[0] == pytest.approx(before, rel=1e-4)
    after = float(tf.reduce_mean(tf.abs(hr - model(lr))))
    assert after < before
    tuned = model.to_tables()
    assert tuned.luts["lut_1_S"].dtype == np.int8
    assert np.any(tuned.luts["lut_1_S"] != tables.luts["lut_1_S"])
    assert np.any(tuned.rcs["rc_0_S"] != tables.rcs["rc_0_S"])  # RC tables are trained too
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        finetune(model, data, steps=-1)


def test_finetune_decay_takes_smaller_steps_than_a_constant_rate():
    keras.utils.set_random_seed(1)
    tables = transfer(LutNet([{"scale": 2, "patterns": "S"}], filters=4, depth=1))  # quick trace
    lr = _image(7, (2, 8, 8, 1))
    data = tf.data.Dataset.from_tensors((lr, np.ones((2, 16, 16, 1), np.float32))).repeat()
    moved = {}
    calls = []
    real_call = LutModel.call

    def counted_call(self, *args, **kwargs):  # runs once per trace of the training step
        calls.append(1)
        return real_call(self, *args, **kwargs)

    for decay in (True, False):
        model = LutModel.from_tables(tables)
        with mock.patch.object(LutModel, "call", counted_call):
            finetune(model, data, steps=4, lr=0.5, decay=decay)
        moved[decay] = sum(
            float(np.abs(v.numpy() - tables.luts[f"lut_{n}"]).sum())
            for v, n in zip(model.luts, model.names, strict=True)
        )
    # Adam moves an entry by about the rate each step: 4 steps of 0.5 vs a cosine from 0.5 to 0.
    assert 0 < moved[True] < 0.8 * moved[False]
    # One trace per fine-tuning (optimizer slots made inside the first call would mean two).
    assert len(calls) == 2


def test_transfer_run(net, tables, tmp_path):
    functional_lut_net(net).save(tmp_path / "model.keras")
    out = str(tmp_path / "out.npz")
    assert transfer_run(str(tmp_path), out).scale == 2
    # The file holds the net's tables, as the in-memory transfer makes them.
    expected, saved = tables.arrays(), load_lut_file(out).arrays()
    assert saved.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(saved[name], array)
    with pytest.raises(FileNotFoundError, match="nothing' has neither a model.keras nor check"):
        transfer_run(str(tmp_path / "nothing"), out)
    # A bad --out is refused before the transfer (it used to fail after it, fine-tuning lost).
    with pytest.raises(IsADirectoryError, match="is a folder"):
        transfer_run(str(tmp_path / "nothing"), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="output folder .* does not exist"):
        transfer_run(str(tmp_path / "nothing"), str(tmp_path / "no" / "out.npz"))
    with pytest.raises(ValueError, match="no saved training config"):
        transfer_run(str(tmp_path), out, finetune_steps=1)


def test_transfer_command_line(net, tmp_path):
    functional_lut_net(net).save(tmp_path / "model.keras")

    def run(*args):
        return run_python("-m", "tfsr.lut.transfer", *args)

    out = tmp_path / "out.npz"
    ok = run(f"--run={tmp_path}", f"--out={out}")
    assert ok.returncode == 0, ok.stderr
    assert "wrote" in ok.stdout and "3 4-D tables, 3 RC tables" in ok.stdout and out.is_file()
    assert "RuntimeWarning" not in ok.stderr  # the module is not imported before it runs
    # The saved net loads where nothing imported tfsr.lut first (its layers register then).
    code = "from tfsr.inference import load_upscaler; print(load_upscaler(%r).scale)"
    net_run = run_python("-c", code % str(tmp_path / "model.keras"))
    assert net_run.returncode == 0 and float(net_run.stdout.split()[-1]) == 2, net_run.stderr
    # (A missing run's message is test_transfer_run's; this checks how the command reports one.)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.keras").write_bytes(b"not a model")
    broken = run(f"--run={tmp_path / 'broken'}", f"--out={out}")
    assert broken.returncode == 1 and "error:" in broken.stderr
    assert f"cannot load tf_keras model {tmp_path / 'broken' / 'model.keras'}" in broken.stderr
    assert "Traceback" not in broken.stderr
    folder = run(f"--run={tmp_path}", f"--out={tmp_path}")
    assert folder.returncode == 1 and "is a folder" in folder.stderr, folder.stderr
    assert "Traceback" not in folder.stderr


def test_transfer_run_of_an_unfinished_run_uses_its_checkpoint(tmp_path):
    from tfsr.training import TrainConfig, train

    run = str(tmp_path / "run")
    train(
        TrainConfig(
            model="srlut_x4",
            scale=4,
            steps=2,
            batch_size=2,
            patch_size=8,
            lr_schedule="constant",
            warmup_steps=0,
            val_every=0,
            checkpoint_every=2,
            out_dir=run,
        ),
        progress=False,
    )
    finished = load_run_net(run, log=None)
    os.remove(os.path.join(run, "model.keras"))  # as if still training
    lines = []
    from_checkpoint = load_run_net(run, log=lines.append)
    assert "checkpoint of step 2" in lines[0]
    for a, b in zip(finished.get_weights(), from_checkpoint.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert transfer_run(run, str(tmp_path / "out.npz")).scale == 4


def test_fine_tuning_gradient_reaches_the_levels_through_rc_tables(tables):
    from tfsr.lut.lut_stage import table_unit
    from tfsr.lut.rc_module import table_slopes

    rows = tf.constant(np.outer([1.0, -2.0], np.arange(256.0)), tf.float32)
    np.testing.assert_allclose(table_slopes(rows).numpy(), [[1.0] * 256, [-2.0] * 256])
    unit = table_unit(
        tf.constant(tables.luts["lut_1_S"], tf.float32),
        tf.constant(tables.rcs["rc_1_S"]),
        "S",
        16,
        differentiable=True,
    )
    levels = tf.constant(np.round(np.random.default_rng(4).uniform(0, 255, (1, 6, 7, 1))))
    levels = tf.cast(levels, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(levels)
        out = unit(levels)
    grad = tape.gradient(out, levels)
    assert grad is not None and np.count_nonzero(grad.numpy()) > 0
