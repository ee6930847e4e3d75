"""One daemon per spool: an flock on work/.styled-serve.lock, and who holds it (``styled status``)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from styled.errors import SpoolError

LOCK_FILE = ".styled-serve.lock"
LOCK_PATIENCE_SECONDS = 2.0
LOCK_RETRY_SECONDS = 0.05


class SpoolLock:
    """An flock on work/.styled-serve.lock, held while a daemon serves the spool.

    Two daemons on one spool would each "recover" the other's running jobs. The lock file holds
    the pid, so that ``styled status`` can say who is serving; the kernel drops the lock when the
    process dies, even by kill -9, so a stale file never blocks a restart.
    """

    def __init__(self, work: Path):
        self.path = work / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(self) -> None:
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not _try_flock(descriptor):
            os.close(descriptor)
            raise SpoolError(f"another styled serve (pid {holder_pid(self.path) or '?'}) is using this spool",
                             where=str(self.path.parent), key="work",
                             hint="stop it first, or give this daemon a config with its own folders") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> SpoolLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _try_flock(descriptor: int) -> bool:
    """The exclusive lock, retried briefly: ``styled status`` holds a shared one for an instant."""
    deadline = time.monotonic() + LOCK_PATIENCE_SECONDS
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(LOCK_RETRY_SECONDS)


def holder_pid(lock_path: Path) -> int | None:
    """The pid of the daemon serving the spool, or None when no daemon holds the lock."""
    try:
        descriptor = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(descriptor, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)
