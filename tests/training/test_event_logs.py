"""Dropping the TensorBoard summaries after a step (a resumed run logs them again); the run
itself: tests/training/test_loop.py."""

import glob
import os

import tensorflow as tf

from tfsr.training.event_logs import drop_events_after, read_events


def _write(log_dir, steps, value):
    writer = tf.summary.create_file_writer(log_dir, filename_suffix=f".{value}")
    with writer.as_default():
        for step in steps:
            tf.summary.scalar("loss", float(value + step), step=step)
    writer.close()


def _summaries(log_dir):
    """[(tag, step, value)] of every file, in file order."""
    out = []
    for path in sorted(glob.glob(os.path.join(log_dir, "*tfevents*"))):
        for event in read_events(path):
            for v in event.summary.value:
                out.append((v.tag, event.step, float(tf.make_ndarray(v.tensor))))
    return out


def test_drops_the_later_steps_of_every_file_and_keeps_the_rest(tmp_path):
    log_dir = str(tmp_path)
    _write(log_dir, range(11), 0)
    _write(log_dir, range(3, 7), 100)
    assert drop_events_after(log_dir, 4) == 6 + 2
    assert _summaries(log_dir) == [("loss", s, s) for s in range(5)] + [
        ("loss", s, 100 + s) for s in (3, 4)
    ]
    for path in glob.glob(os.path.join(log_dir, "*tfevents*")):  # the file_version header stays
        assert read_events(path)[0].file_version.startswith("brain.Event")
    mtimes = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(log_dir, "*"))}
    assert drop_events_after(log_dir, 4) == 0  # nothing left to drop: no file is rewritten
    assert mtimes == {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(log_dir, "*"))}
    assert sorted(os.listdir(log_dir)) == sorted(os.path.basename(p) for p in mtimes)


def test_a_torn_last_record_is_read_up_to_and_rewritten_away(tmp_path):
    log_dir = str(tmp_path)
    _write(log_dir, range(6), 0)
    (path,) = glob.glob(os.path.join(log_dir, "*tfevents*"))
    with open(path, "ab") as f:  # a process killed while writing a record
        f.write(b"\x40\x00\x00\x00\x00\x00\x00\x00\x12\x34")
    assert [s for _, s, _ in _summaries(log_dir)] == list(range(6))
    assert drop_events_after(log_dir, 2) == 3
    assert [s for _, s, _ in _summaries(log_dir)] == [0, 1, 2]
    assert len(list(tf.data.TFRecordDataset(path))) == 4  # whole records only, header included
