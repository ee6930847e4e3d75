"""The claimed jobs waiting for a worker, each taken by a worker on the device its spec asks for.

``queue.Queue`` hands any job to any worker; a job with ``device: gpu:1`` must wait for the gpu:1
worker, and a job whose device no worker has must still be taken (and failed, saying so) rather
than wait for ever. Among the jobs a worker may take, the highest ``priority`` goes first, and
arrival breaks ties; a waiting job can be taken out (cancelled) or given another priority.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from styled.daemon.spool import WorkJob


def device_matches(wanted: str | None, worker: str) -> bool:
    """Whether a worker on ``worker`` may render a job that asks for ``wanted`` (None: any)."""
    if wanted in (None, "auto", worker):
        return True
    return wanted == "gpu" and worker.startswith("gpu")


@dataclass(frozen=True)
class Queued:
    work: WorkJob
    wants: str | None
    priority: int = 0
    arrival: int = 0

    def order(self) -> tuple[int, int]:
        return -self.priority, self.arrival


class JobQueue:
    """A thread-safe list of claimed jobs; knows a job from ``put`` until its worker's ``done``."""

    def __init__(self, devices: Sequence[str]):
        self.devices = tuple(devices)
        self._items: list[Queued] = []
        self._active: set = set()  # paths of the jobs workers have taken and not finished
        self._ready = threading.Condition()
        self._arrivals = itertools.count()

    def put(self, work: WorkJob, wants: str | None = None, priority: int = 0) -> None:
        with self._ready:
            self._items.append(Queued(work, wants, priority, next(self._arrivals)))
            self._ready.notify_all()

    def take(self, device: str, timeout: float) -> WorkJob | None:
        """The first job this device may render (highest priority, then the oldest), waiting up to
        ``timeout`` seconds; None if none."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while True:
                for item in sorted(self._items, key=Queued.order):
                    if self._takes(device, item.wants):
                        self._active.add(item.work.path)
                        self._items.remove(item)
                        return item.work
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._ready.wait(remaining):
                    return None

    def _takes(self, device: str, wants: str | None) -> bool:
        if device_matches(wants, device):
            return True
        return not any(device_matches(wants, other) for other in self.devices)  # nobody can: fail it

    def remove(self, path: Path) -> WorkJob | None:
        """Take a job that no worker has taken out of the queue (a cancel); None if it is not waiting."""
        with self._ready:
            for item in self._items:
                if item.work.path == path:
                    self._items.remove(item)
                    return item.work
        return None

    def reprioritise(self, path: Path, priority: int) -> bool:
        """Give a waiting job another priority; False if it is not waiting."""
        with self._ready:
            for index, item in enumerate(self._items):
                if item.work.path == path:
                    self._items[index] = replace(item, priority=priority)
                    return True
        return False

    def done(self, work: WorkJob) -> None:
        with self._ready:
            self._active.discard(work.path)

    def waiting(self) -> int:
        with self._ready:
            return len(self._items)

    def outstanding(self) -> int:
        """Jobs queued or being rendered."""
        with self._ready:
            return len(self._items) + len(self._active)

    def known(self) -> set:
        """The work folders queued or being rendered."""
        with self._ready:
            return {item.work.path for item in self._items} | self._active
