"""``styled worker``: the ``dask worker`` command line a styled render worker needs."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import threading
import time

from styled.errors import ClusterError

log = logging.getLogger(__name__)

INSTALL_HINT = "install the cluster extra: pip install 'styled[cluster]'"


def require_distributed() -> None:
    """ClusterError saying how to install Dask when ``distributed`` is missing."""
    if importlib.util.find_spec("distributed") is None:
        raise ClusterError("Dask distributed is not installed", hint=INSTALL_HINT)


def worker_command(scheduler: str, *, gpu: int | None = None, name: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a worker: one thread of Dask work (one render at a time), and
    with ``gpu`` only that GPU visible, offered as the resource ``GPU=1``."""
    require_distributed()
    argv = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--nthreads", "1", "--nworkers", "1"]
    if name:
        argv += ["--name", name]
    environment = dict(os.environ)
    if gpu is not None:
        argv += ["--resources", "GPU=1"]
        environment["CUDA_VISIBLE_DEVICES"] = str(gpu)
    else:
        environment["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker: never take a GPU a GPU worker owns
    return argv, environment


#: Waits before starting a worker that exited on its own again (a worker exits when it loses its
#: scheduler; the scheduler may be restarting).
RESTART_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
#: A worker that ran this long had a working scheduler: the next restart starts the waits again.
STEADY_SECONDS = 60.0


class WorkerSupervisor:
    """Runs ``dask worker`` and starts it again whenever it exits on its own, until stopped.

    ``dask worker`` exits when its scheduler goes away; a studio's render node should come back by
    itself when the scheduler does, as the daemon reconnects by itself.
    """

    def __init__(self, argv: list[str], environment: dict[str, str]):
        self.argv, self.environment = argv, environment
        self.stopping = threading.Event()
        self.stop_signal: int | None = None
        self.child: subprocess.Popen | None = None

    def stop(self, signum: int) -> None:
        """Pass a stop signal on to the worker (it lets its render checkpoint) and do not restart it."""
        self.stop_signal = signum
        self.stopping.set()
        self.signal_child()

    def signal_child(self) -> None:
        """Send the stop signal to a running worker; called by ``stop`` and, for a stop that came
        while a worker was being started, by ``run`` right after the start."""
        child = self.child
        if child is not None and self.stop_signal is not None and child.poll() is None:
            child.send_signal(self.stop_signal)

    def run(self) -> int:
        """The worker's last return code, once stopped."""
        failures = 0
        while True:
            started = time.monotonic()
            self.child = subprocess.Popen(self.argv, env=self.environment)
            if self.stopping.is_set():
                self.signal_child()
            code = self.child.wait()
            if self.stopping.is_set():
                return code
            failures = 0 if time.monotonic() - started >= STEADY_SECONDS else failures + 1
            wait = RESTART_SECONDS[min(failures, len(RESTART_SECONDS) - 1)]
            log.warning("the Dask worker exited (%d); starting it again in %.0f s", code, wait)
            if self.stopping.wait(wait):
                return code
