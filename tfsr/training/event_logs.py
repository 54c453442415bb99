"""TensorBoard event files of a resumed run: the steps it will log again are dropped first."""

from __future__ import annotations

import glob
import os

import tensorflow as tf

from tfsr.atomic_file import atomic_output


def read_events(path: str) -> list:
    """The ``tf.compat.v1.Event`` records of an event file, up to a torn last record (a
    process killed while writing it) if there is one."""
    events = []
    try:
        for record in tf.data.TFRecordDataset(path):
            events.append(tf.compat.v1.Event.FromString(record.numpy()))
    except tf.errors.DataLossError:
        pass
    return events


def drop_events_after(log_dir: str, step: int) -> int:
    """Removes the summaries of steps after ``step`` from every event file in ``log_dir``.

    A run resumed from its checkpoint of ``step`` logs the steps after it again; without this,
    the curves of a run killed past its last checkpoint would hold those steps twice (what
    TensorBoard's fast loader shows then is the last file's values, its legacy loader both).
    Files are rewritten whole (:func:`tfsr.atomic_file.atomic_output`), and only those with
    something to drop (a torn last record goes with the rewrite). Returns the number of
    summaries dropped.
    """
    dropped = 0
    for path in sorted(glob.glob(os.path.join(log_dir, "*tfevents*"))):
        events = read_events(path)
        keep = [e for e in events if not (e.HasField("summary") and e.step > step)]
        if len(keep) == len(events):
            continue
        with atomic_output(path, tmp_name=f".rewrite-{os.getpid()}") as tmp:
            with tf.io.TFRecordWriter(tmp) as writer:
                for event in keep:
                    writer.write(event.SerializeToString())
        dropped += len(events) - len(keep)
    return dropped
