"""The training loop: resume, signals, SIGKILL, mismatched checkpoints, init_from, the gain."""

import collections
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tfsr.training import ConfigMismatchError, TrainConfig, Trainer, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY = dict(
    model="sesr_m3",
    scale=2,
    batch_size=2,
    patch_size=8,
    lr=1e-3,
    lr_schedule="constant",
    warmup_steps=0,
    val_every=0,
)


def _config(tmp_path, **kw):
    return TrainConfig(**{**TINY, "out_dir": str(tmp_path / "run"), **kw})


def _weights(model):
    return [w.numpy() for w in model.weights]


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    straight = train(_config(tmp_path / "a", steps=12, checkpoint_every=6), progress=False)
    assert straight.completed and straight.step == 12
    first = train(_config(tmp_path / "b", steps=6, checkpoint_every=6), progress=False)
    assert first.step == 6
    second = train(_config(tmp_path / "b", steps=12, checkpoint_every=6), progress=False)
    assert second.resumed_from == 6 and second.step == 12

    a = Trainer(_config(tmp_path / "a", steps=12))
    b = Trainer(_config(tmp_path / "b", steps=12))
    assert a.resumed_from == b.resumed_from == 12
    for wa, wb in zip(_weights(a.model), _weights(b.model), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    # Optimizer state came back too (Adam moments and iteration count).
    assert int(b.optimizer.iterations.numpy()) == 12
    for va, vb in zip(a.optimizer.variables, b.optimizer.variables, strict=True):
        np.testing.assert_allclose(va.numpy(), vb.numpy(), rtol=1e-5, atol=1e-7)


def test_jit_compiled_step_trains_like_the_plain_one(tmp_path):
    plain = Trainer(_config(tmp_path / "a", steps=3))
    xla = Trainer(_config(tmp_path / "b", steps=3, jit_compile=True))
    start = _weights(plain.model)
    for wa, wb in zip(start, _weights(xla.model), strict=True):
        np.testing.assert_array_equal(wa, wb)  # same seed, same start
    del plain, xla
    assert train(_config(tmp_path / "a", steps=3), progress=False).step == 3
    assert train(_config(tmp_path / "b", steps=3, jit_compile=True), progress=False).step == 3
    a = Trainer(_config(tmp_path / "a", steps=3))
    b = Trainer(_config(tmp_path / "b", steps=3, jit_compile=True))
    assert a.resumed_from == b.resumed_from == 3
    moved = False
    for wa, wb, w0 in zip(_weights(a.model), _weights(b.model), start, strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-3, atol=1e-5)
        moved = moved or not np.array_equal(wa, w0)
    assert moved


def test_checkpoint_of_other_model_is_a_clear_error(tmp_path):
    train(_config(tmp_path, steps=2, checkpoint_every=2), progress=False)
    with pytest.raises(ConfigMismatchError, match="model: checkpoint has 'sesr_m3', requested"):
        Trainer(_config(tmp_path, model="sesr_m5", steps=2))
    # Without the saved configuration, the checkpoint itself does not fit: still no partial load.
    os.remove(tmp_path / "run" / "train_config.json")
    with pytest.raises(ConfigMismatchError, match="does not match model 'sesr_m5'"):
        Trainer(_config(tmp_path, model="sesr_m5", steps=2))


def test_x4_starts_from_x2_run(tmp_path):
    x2 = train(_config(tmp_path / "x2", steps=3, checkpoint_every=3), progress=False)
    trainer = Trainer(
        _config(tmp_path / "x4", scale=4, steps=3, init_from=str(tmp_path / "x2" / "run"))
    )
    src = Trainer(_config(tmp_path / "x2", steps=3)).model
    # Every layer but the last block holds the x2 weights.
    same = [
        layer.name
        for layer in trainer.model.layers
        if layer.weights
        and all(
            np.array_equal(a.numpy(), b.numpy())
            for a, b in zip(layer.weights, src.get_layer(layer.name).weights, strict=True)
        )
    ]
    with_weights = {lay.name for lay in src.layers if lay.weights}
    assert with_weights - set(same) == {"last_block"}  # spread to the x4 channels
    assert x2.completed


def test_x4_starts_from_a_run_still_training(tmp_path):
    train(_config(tmp_path / "x2", steps=3, checkpoint_every=3), progress=False)
    os.remove(tmp_path / "x2" / "run" / "model.keras")  # not finished: checkpoints only
    trainer = Trainer(
        _config(tmp_path / "x4", scale=4, steps=3, init_from=str(tmp_path / "x2" / "run"))
    )
    src = Trainer(_config(tmp_path / "x2", steps=3)).model
    first = next(layer for layer in src.layers if layer.weights)
    for a, b in zip(first.weights, trainer.model.get_layer(first.name).weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # A run that resumes does not start from --init_from, and says so (it used to be silent).
    resumed = Trainer(_config(tmp_path / "x2", steps=3, init_from="/no/such/run"))
    assert resumed.resumed_from == 3
    assert resumed.notes == [
        "--init_from=/no/such/run not used: the run resumes from its checkpoint"
    ]


def test_out_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    from tfsr.training import run_from_config

    (tmp_path / "afile").write_text("")
    assert run_from_config(_config(tmp_path, steps=1, out_dir=str(tmp_path / "afile"))) == 2
    assert "error: [Errno 17] File exists" in capsys.readouterr().out


def test_run_from_config_reports_an_interrupt_in_one_line(tmp_path, monkeypatch, capsys):
    """A Ctrl-C that reaches the script (a second one, or one during the final evaluation, after
    the loop's signal handling has ended) is a message and exit code 130, not a traceback."""
    import tfsr.training as training

    def interrupted(config):
        raise KeyboardInterrupt

    config = _config(tmp_path, steps=1)
    real_train = training.train
    monkeypatch.setattr(training, "train", interrupted)
    assert training.run_from_config(config) == 130
    assert "before the first checkpoint: a rerun starts the run afresh" in capsys.readouterr().out
    real_train(config, progress=False)  # now the run has a checkpoint
    assert training.run_from_config(config) == 130
    assert "keeps its last checkpoint; rerun the same command" in capsys.readouterr().out


def test_missing_val_data_is_found_before_training(tmp_path):
    # It used to fail at the first validation, or after the whole run with --val_every=0.
    with pytest.raises(FileNotFoundError, match="--val_data=/no/such/set does not exist"):
        train(_config(tmp_path, steps=3, val_data="/no/such/set"), progress=False)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_init_from_a_file_that_is_no_model_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="init_from=.*junk.keras: cannot load tf_keras model"):
        Trainer(_config(tmp_path, steps=3, init_from=str(junk)))


def test_init_from_a_shipped_model_name_starts_from_its_function(tmp_path):
    from tfsr.models import pretrained

    trainer = Trainer(_config(tmp_path, model="sesr_m5", steps=3, init_from="sesr_m5_x2"))
    x = np.random.default_rng(0).uniform(0.0, 1.0, (1, 12, 10, 1)).astype("float32")
    np.testing.assert_allclose(
        trainer.model(x).numpy(), pretrained("sesr_m5_x2")(x).numpy(), atol=1e-4
    )


def test_init_from_a_collapsed_npz_and_its_errors(tmp_path, monkeypatch):
    from tfsr.models import pretrained
    from tfsr.models.pretrained import pretrained_path

    trainer = Trainer(_config(tmp_path, model="sesr_m5", init_from=pretrained_path("sesr_m5_x2")))
    x = np.random.default_rng(1).uniform(0.0, 1.0, (1, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(
        trainer.model(x).numpy(), pretrained("sesr_m5_x2")(x).numpy(), atol=1e-4
    )
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="init_from=.*junk.npz: .*not a tfsr .npz model"):
        Trainer(_config(tmp_path / "b", model="sesr_m5", init_from=str(junk)))
    with pytest.raises(ValueError, match="init_from=sesr_xl_x2: init_from: the SESR bodies differ"):
        Trainer(_config(tmp_path / "c", model="sesr_m5", init_from="sesr_xl_x2"))
    with pytest.raises(ValueError, match="init_from=rclut_x4: 'rclut_x4' is look-up tables"):
        Trainer(_config(tmp_path / "d", model="sesr_m5", init_from="rclut_x4"))
    lut_file = pretrained_path("rclut_x4")
    with pytest.raises(ValueError, match="init_from=.*rclut_x4.npz: .* is look-up tables"):
        Trainer(_config(tmp_path / "d2", model="sesr_m5", init_from=lut_file))
    with pytest.raises(FileNotFoundError, match="init_from=runs/typo: model file .* does not"):
        Trainer(_config(tmp_path / "d3", model="sesr_m5", init_from="runs/typo"))
    (tmp_path / "sesr_m5_x2").mkdir()  # a local folder of a shipped model's name comes first
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="hides the shipped model 'sesr_m5_x2'"):
        Trainer(_config(tmp_path / "e", model="sesr_m5", init_from="sesr_m5_x2"))


def test_diverged_loss_saves_nothing_and_resume_starts_before_it(tmp_path):
    train(_config(tmp_path, steps=2, checkpoint_every=2), progress=False)
    with pytest.raises(FloatingPointError, match="nothing was saved .last checkpoint: step 2."):
        train(_config(tmp_path, steps=50, checkpoint_every=100, lr=1e30), progress=False)
    resumed = Trainer(_config(tmp_path, steps=50))
    assert resumed.resumed_from == 2
    assert all(np.isfinite(w).all() for w in _weights(resumed.model))


def test_run_stopped_before_its_first_checkpoint_can_change_configuration(tmp_path):
    Trainer(_config(tmp_path, steps=3))  # writes train_config.json, no checkpoint
    assert Trainer(_config(tmp_path, model="sesr_m5", steps=3)).resumed_from == 0


def _start(out_dir, steps, every):
    cmd = [
        sys.executable,
        "train.py",
        f"--out_dir={out_dir}",
        f"--steps={steps}",
        f"--checkpoint_every={every}",
        "--model=sesr_m3",
        "--expanded_filters=16",
        "--batch_size=2",
        "--patch_size=8",
        "--val_every=0",
        "--lr_schedule=constant",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for_checkpoint(out_dir, at_least, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints"))
        if latest and int(latest.rsplit("-", 1)[1]) >= at_least:
            return int(latest.rsplit("-", 1)[1])
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint >= {at_least} after {timeout} s")


@pytest.mark.slow
def test_sigkill_loses_at_most_one_checkpoint_interval(tmp_path):
    out_dir, every = str(tmp_path / "run"), 10
    proc = _start(out_dir, steps=100000, every=every)
    _wait_for_checkpoint(out_dir, 3 * every, proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait()
    latest = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints"))
    saved_step = int(latest.rsplit("-", 1)[1])
    # The process was killed before writing the next checkpoint, so it had run fewer than
    # `every` steps past `saved_step`: that is all it can lose. The checkpoint must load whole.
    assert saved_step >= 3 * every and saved_step % every == 0
    trainer = Trainer(_config(tmp_path, steps=saved_step + 5, expanded_filters=16))
    assert trainer.resumed_from == saved_step
    assert trainer.model.get_layer("block_1").expanded_filters == 16
    assert int(trainer.optimizer.iterations.numpy()) == saved_step


@pytest.mark.slow
def test_sigterm_writes_checkpoint_and_rerun_resumes(tmp_path):
    out_dir = str(tmp_path / "run")
    proc = _start(out_dir, steps=100000, every=5)
    # Wait until training has taken steps (a periodic checkpoint; a fixed sleep after start-up
    # was not enough on a busy machine, where the first step's trace is slow).
    first = _wait_for_checkpoint(out_dir, 5, proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "SIGTERM: checkpoint written to" in out
    latest = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints"))
    assert latest is not None
    stopped_at = int(latest.rsplit("-", 1)[1])
    assert stopped_at >= first
    result = train(_config(tmp_path, steps=stopped_at + 3, expanded_filters=16), progress=False)
    assert result.resumed_from == stopped_at and result.step == stopped_at + 3


def test_signal_checkpoint_is_written_before_the_loop_returns(tmp_path, capsys):
    # Before the data pipeline and the step function are torn down: a SIGKILL that follows the
    # SIGTERM while that runs must not lose the stop's checkpoint.
    from tfsr.training import loop
    from tfsr.training.signals import StopRequest

    trainer = Trainer(_config(tmp_path, steps=10))
    stop = StopRequest()
    stop.requested, stop.signal_name = True, "SIGTERM"
    assert loop._run_steps(trainer, stop, progress=False) is False
    assert trainer.manager.latest_checkpoint.endswith("ckpt-0")
    assert "SIGTERM: checkpoint written to" in capsys.readouterr().out
    loop._checkpoint_on_signal(trainer, stop)  # seen again: the same checkpoint, not a second
    assert len(trainer.manager.checkpoints) == 1


def test_short_run_beats_bicubic(tmp_path):
    """A few hundred steps of SESR-M5 on the embedded photos already beat bicubic."""
    config = TrainConfig(
        model="sesr_m5", steps=300, batch_size=16, patch_size=32, out_dir=str(tmp_path / "run")
    )
    result = train(config, progress=False)
    assert result.metrics["psnr"] > result.metrics["bicubic_psnr"] + 0.1, result.metrics
    assert os.path.exists(result.inference_model_path)


def test_mixed_precision_run_saves_a_float32_model_and_restores_the_policy(tmp_path):
    import tf_keras as keras

    from tfsr.inference import load_keras_model

    result = train(_config(tmp_path, steps=2, mixed_precision=True, val_every=0), progress=False)
    assert keras.mixed_precision.global_policy().name == "float32"
    saved = load_keras_model(result.inference_model_path)
    assert {layer.compute_dtype for layer in saved.layers} == {"float32"}


def test_checkpoint_of_non_finite_weights_is_refused(tmp_path):
    trainer = Trainer(_config(tmp_path, steps=3))
    weight = trainer.model.get_layer("block_1").project_bias
    weight.assign(tf.fill(weight.shape, float("nan")))
    with pytest.raises(FloatingPointError, match="weights became non-finite by step 0 .*block_1"):
        trainer.save_checkpoint()
    assert trainer.manager.latest_checkpoint is None
    # Adam's second moment overflowing while the weights stay finite: no resumable checkpoint.
    weight.assign(tf.zeros(weight.shape))
    moment = next(v for v in trainer.optimizer.variables if v.name.startswith("v/"))
    moment.assign(tf.fill(moment.shape, float("inf")))
    with pytest.raises(FloatingPointError, match="non-finite by step 0 .v/"):
        trainer.save_checkpoint()
    assert trainer.manager.latest_checkpoint is None


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(out_dir, steps, *flags):
    """Two train.py workers of one multi-worker cluster on localhost (the chief is worker 0)."""
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "PYTHONUNBUFFERED": "1"}
        cmd = [
            sys.executable,
            "train.py",
            "--strategy=multi_worker",
            "--model=sesr_m3",
            "--expanded_filters=16",
            f"--steps={steps}",
            "--batch_size=4",
            "--patch_size=8",
            f"--out_dir={out_dir}",
            *flags,
        ]
        procs.append(
            subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    return procs


@pytest.mark.slow
def test_multi_worker_run_only_the_chief_writes(tmp_path):
    out_dir = str(tmp_path / "run")
    procs = _start_workers(out_dir, 4, "--val_every=2", "--checkpoint_every=2")
    outs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    assert "step 2: validation PSNR" in outs[0] and "Inference model:" in outs[0]
    assert "validation PSNR" not in outs[1] and "the chief wrote the model" in outs[1]
    assert sorted(os.listdir(out_dir)) == [
        "checkpoints",
        "logs",
        "model.keras",
        "results.json",
        "train_config.json",
    ]
    assert tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints")).endswith("ckpt-4")


@pytest.mark.slow
def test_multi_worker_signal_to_one_worker_stops_both_at_one_step(tmp_path):
    # Worker 1 alone gets SIGTERM. Had it left on its own, the chief would wait for it in the
    # next step's all-reduce until the timeout below.
    out_dir = str(tmp_path / "run")
    procs = _start_workers(out_dir, 100000, "--val_every=0", "--checkpoint_every=5")
    try:
        first = _wait_for_checkpoint(out_dir, 5, procs[0])
        procs[1].send_signal(signal.SIGTERM)
        outs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert [proc.returncode for proc in procs] == [1, 1], outs
    assert "another worker's signal: checkpoint written to" in outs[0], outs[0]
    assert "SIGTERM: checkpoint written to" in outs[1], outs[1]
    steps = [int(re.search(r"checkpoint written to \S*ckpt-(\d+)", out)[1]) for out in outs]
    assert steps[0] == steps[1] >= first, outs
    latest = tf.train.latest_checkpoint(os.path.join(out_dir, "checkpoints"))
    assert latest.endswith(f"ckpt-{steps[0]}")


def test_resume_before_the_last_logged_step_logs_each_step_once(tmp_path):
    from tfsr.training.event_logs import read_events

    def logged():
        paths = sorted(glob.glob(os.path.join(config.out_dir, "logs", "*tfevents*")))
        events = [e for path in paths for e in read_events(path)]
        return collections.Counter((v.tag, e.step) for e in events for v in e.summary.value)

    config = _config(tmp_path, steps=8, checkpoint_every=4, expanded_filters=16)
    train(config, progress=False)
    # As if killed after logging step 8 and before its checkpoint: the run resumes from step 4.
    ckpt_dir = os.path.join(config.out_dir, "checkpoints")
    for path in glob.glob(os.path.join(ckpt_dir, "ckpt-8*")):
        os.remove(path)
    four = os.path.join(ckpt_dir, "ckpt-4")
    tf.compat.v1.train.update_checkpoint_state(ckpt_dir, four, all_model_checkpoint_paths=[four])
    assert Trainer(config).resumed_from == 4
    assert logged()[("train/loss", 8)] == logged()[("val/psnr", 8)] == 1
    train(config, progress=False)
    counts = logged()
    assert counts[("train/loss", 8)] == counts[("val/psnr", 8)] == 1, counts
    assert max(counts.values()) == 1, counts


def test_each_checkpoint_is_written_once(tmp_path, monkeypatch):
    saved = []
    original = Trainer.save_checkpoint

    def counting(self):
        saved.append(int(self.step.numpy()))
        return original(self)

    monkeypatch.setattr(Trainer, "save_checkpoint", counting)
    train(_config(tmp_path, steps=4, checkpoint_every=2, val_every=0), progress=False)
    assert saved == [2, 4]
    train(_config(tmp_path, steps=5, checkpoint_every=2, val_every=0), progress=False)
    assert saved == [2, 4, 5]
