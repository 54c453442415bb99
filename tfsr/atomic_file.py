"""Writing a file so that readers see the old file or the whole new one, never a part."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def check_output_path(path: str) -> None:
    """Raises before any work is done when ``path`` cannot be written: FileNotFoundError when its
    folder does not exist, IsADirectoryError when ``path`` is a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"output folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"output {path!r} is a folder; give a file name")


@contextlib.contextmanager
def atomic_output(path: str, tmp_name: str | None = None) -> Iterator[str]:
    """A temporary path beside ``path`` for the block to write; moved onto ``path`` (one
    ``os.replace``) when the block finishes, removed when it raises.

    The temporary name keeps the extension (``model.keras`` -> ``model.tmp-PID.keras``), for
    writers that go by it (Keras, ``np.savez``); ``tmp_name`` replaces it (in the same folder),
    for folders that a reader scans by name (TensorBoard takes any ``*tfevents*`` file).

    Example::

        with atomic_output("results.json") as tmp:
            with open(tmp, "w") as f:
                json.dump(results, f)
    """
    root, ext = os.path.splitext(os.fspath(path))
    tmp = f"{root}.tmp-{os.getpid()}{ext}"
    if tmp_name is not None:
        tmp = os.path.join(os.path.dirname(os.fspath(path)), tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
