"""Signals that end a run from outside: Ctrl-C (SIGINT) and a scheduler's SIGTERM.

Python turns SIGINT into KeyboardInterrupt but lets SIGTERM kill the process on the spot,
which would leave the MLflow run RUNNING and its buffered metrics unsent. Inside
`stop_on_signals`, both raise a KeyboardInterrupt (SIGTERM as `Terminated`), so both
unwind through the same cleanup: flush, mark the run KILLED, exit.

Only the first signal raises; later ones are ignored, so pressing Ctrl-C twice cannot
interrupt the close (Ctrl-\\ or SIGKILL still end the process). An exception raised by a
signal handler is swallowed when the signal lands while Python runs a finaliser
(SQLAlchemy has many), so the signal is also remembered, and `check()`, called once per
training step, raises it again.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # the shell's 128 + signal number


class _State:
    """What the handler has seen: every signal caught, and how deep we are in `deferred`."""

    received: list[int] = []
    held: list[int] = []
    depth = 0


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; handled exactly like Ctrl-C."""

    signum = signal.SIGTERM


def _interrupt(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _handler(signum, frame):
    first = not _State.received
    _State.received.append(signum)
    if not first:
        return  # the stop is under way: a second Ctrl-C must not cut the run's close short
    if _State.depth:
        _State.held.append(signum)  # raised when the deferred block ends
        return
    raise _interrupt(signum)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """The exit status a shell expects after the signal behind `interrupt`."""
    return EXIT_CODES[getattr(interrupt, "signum", signal.SIGINT)]


def check() -> None:
    """Raise the interrupt for a signal caught earlier, in case its first raise was lost."""
    if _State.received:
        raise _interrupt(_State.received[0])


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers
        return
    previous = {s: signal.signal(s, _handler) for s in EXIT_CODES}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _State.received.clear()
        _State.held.clear()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then raise the first one.

    Used around sending metrics and closing a run, so a signal can neither send a batch
    twice nor leave the run half-closed. Cheap enough for every step. It holds signals
    only inside `stop_on_signals` (the door's handlers); elsewhere it changes nothing.
    """
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
    if not _State.depth and _State.held:
        signum = _State.held[0]
        _State.held.clear()
        raise _interrupt(signum)
