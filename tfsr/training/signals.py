"""Graceful stop on SIGINT / SIGTERM: the loop finishes its step, checkpoints and returns."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """Context manager that turns SIGINT and SIGTERM into a flag the training loop polls.

    The first signal sets ``requested``; the loop then writes a checkpoint and returns. A second
    SIGINT raises KeyboardInterrupt at once, for a user who really wants out. Outside the main
    thread (where Python cannot install handlers) it does nothing and ``requested`` stays False.
    """

    def __init__(self):
        self.requested = False
        self.signal_name: str | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def reclaim(self) -> None:
        """Installs the handlers again (when entered), over any that native code installed since.

        TensorFlow's multi-worker runtime installs a C handler for SIGTERM when the strategy is
        created (its preemption notifier); Python does not see that, and the signal would no
        longer reach :attr:`requested`.
        """
        for sig in self._previous:
            signal.signal(sig, self._handle)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
