"""Running the command lines as a user does: ``python ...`` in a fresh process from the repository
root. CLI modules define absl flags at import, so tests never import them in-process."""

import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(*args: str, env: dict | None = None, timeout: float = 300):
    """``python ARGS`` from the repository root; stdout and stderr captured as text.

    TensorFlow's C++ logging is off (``TF_CPP_MIN_LOG_LEVEL=3``); ``env`` adds or overrides
    variables of the current environment.
    """
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        cwd=REPO_ROOT,
        timeout=timeout,
    )
