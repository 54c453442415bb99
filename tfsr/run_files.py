"""Names of the files a ``train.py`` run folder holds, for the tools that read run folders."""

from __future__ import annotations

import os

# The inference model a finished run leaves in its folder.
RUN_MODEL_FILENAME = "model.keras"


def run_model_path(folder: str | os.PathLike) -> str | None:
    """``folder``'s inference model file when ``folder`` is a finished run, else None."""
    path = os.path.join(os.fspath(folder), RUN_MODEL_FILENAME)
    return path if os.path.isdir(folder) and os.path.isfile(path) else None
