"""SIGINT and SIGTERM stop a command the way Ctrl-C does: cleanly, with its work resumable.

Python turns SIGINT into KeyboardInterrupt, but SIGTERM (what `kill`, systemd, Slurm and
Kubernetes send) ends the process at once, without the `finally` blocks that keep a run
directory whole. Here both raise ``Interrupted``, a KeyboardInterrupt, so the one clean-up
path serves both. A second signal while that clean-up runs is ignored: cut short, it
could delete half of what a resume needs.

Some libraries catch everything a traced function raises (OpenVINO's converter reports our
stop as "Couldn't get TorchScript module by tracing"). So the signal is also remembered:
``check()`` at stage boundaries raises it again, and the CLI reports any error that follows
a signal as the stop it is.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the stop signal this process got, if any


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by a signal."""

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT or SIGTERM raises Interrupted once; later ones are ignored.
    Yields the list that holds the signal once one came."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield _received
        return

    def handler(signum, frame):
        if _received:
            return
        _received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield _received
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


def check() -> None:
    """Raise the stop again if a signal came and something swallowed its exception."""
    if _received:
        raise Interrupted(_received[0])
