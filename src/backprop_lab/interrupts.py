"""Signals that end a run from outside: Ctrl-C (SIGINT) and a scheduler's SIGTERM.

Python turns SIGINT into KeyboardInterrupt but lets SIGTERM kill the process on the spot,
which would leave the MLflow run RUNNING and its buffered metrics unsent. Inside
`stop_on_signals`, both raise a KeyboardInterrupt (SIGTERM as `Terminated`), so both
unwind through the same cleanup: flush, mark the run KILLED, exit.

An exception raised by a signal handler is swallowed when the signal lands while Python
runs a finaliser (SQLAlchemy has many), so the signal is also remembered, and `check()`,
called once per training step, raises it again.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number
_received: list[int] = []  # signals caught inside stop_on_signals, in order of arrival


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled exactly like Ctrl-C."""

    signum = signal.SIGTERM


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _handler(signum, frame):
    _received.append(signum)
    raise _interrupt(signum)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit status a shell expects after the signal behind `interrupt`."""
    return EXIT_CODES[getattr(interrupt, "signum", signal.SIGINT)]


def check() -> None:
    """Raise the interrupt for a signal caught earlier, in case its first raise was lost."""
    if _received:
        raise _interrupt(_received[0])


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread."""
    if not _main_thread():
        yield  # only the main thread may install handlers
        return
    previous = {s: signal.signal(s, _handler) for s in EXIT_CODES}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received.clear()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs, then deliver the first one.

    Used around closing a run, so a second Ctrl-C cannot leave it half-closed.
    """
    if not _main_thread():
        yield
        return
    pending: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: pending.append(signum))
                for s in EXIT_CODES}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if pending:
        signal.raise_signal(pending[0])
