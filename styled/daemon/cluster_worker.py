"""The side of ``cluster:`` that runs inside each Dask worker process (docs/cluster.md).

The daemon registers :class:`StyledWorker` with the cluster; each worker process then sizes
TensorFlow's thread pools for its share of the cores, imports TensorFlow once and keeps the VGG
weights loaded between jobs. A render is the task :func:`render_claimed`: it takes the job's lease
(an flock on work/NAME/lease, so that two workers never render one job, even when a lost
scheduler or a restarted daemon submits it again while an earlier render still runs), judges
what an earlier attempt left, renders and checkpoints into work/NAME/ as the daemon's own workers
do, and leaves the delivery in work/NAME/result/ (or the error in state.json). The daemon alone
moves jobs to the outbox and failed/.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from styled.daemon.config import DaemonConfig
from styled.daemon.jobqueue import device_matches
from styled.daemon.runner import FAILED, JobRunner, Prepared, RunnerContext, StatusBoard
from styled.daemon.spool import CRASHED_IN, Spool, WorkJob, after_crash, progress_done
from styled.daemon.state import JobState, Status, now_iso
from styled.engine.types import Result
from styled.errors import ClusterError, StyledError
from styled.io.files import staged_folder

log = logging.getLogger(__name__)

PLUGIN_NAME = "styled"
#: How often a task waiting for another render's lease looks again.
LEASE_POLL_SECONDS = 0.5


def limit_tensorflow_threads(threads: int) -> None:
    """Size TensorFlow's pools before it starts: ``threads`` for one op, one op at a time beside it
    (styled's graph is a chain of convolutions; inter-op parallelism only adds contention)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)


class StopRequest:
    """A render's stop flag: the worker is closing, or the daemon asked (work/NAME/stop)."""

    def __init__(self, closing: threading.Event, work: WorkJob):
        self.closing, self.work = closing, work

    def is_set(self) -> bool:
        return self.closing.is_set() or self.work.stop_path.exists()


class StyledWorker(WorkerPlugin):
    """Per worker process: TensorFlow's threads, the engine loaded, the weights kept between jobs."""

    name = PLUGIN_NAME

    def __init__(self, config: DaemonConfig, threads: int | None, memory_share: float):
        self.config, self.threads, self.memory_share = config, threads, memory_share
        self.held_memory = 0  # what this process's renders left with TensorFlow

    def setup(self, worker: Any) -> None:
        from styled.daemon.warmup import load_engine, measure_precisions
        from styled.nets.weights import load_backbone

        logging.basicConfig(format=f"%(asctime)s %(levelname)s %(name)s [{worker.address}]: %(message)s")
        logging.getLogger("styled").setLevel(self.config.log_level)
        threads = self.threads or len(os.sched_getaffinity(0))  # None: this machine's cores
        limit_tensorflow_threads(threads)
        load_engine()
        measure_precisions(self.config)
        self.closing = threading.Event()
        self.backbones = functools.cache(load_backbone)
        self.address = worker.address
        log.info("styled worker %s ready: TensorFlow on %d thread(s)", worker.address, threads)

    def teardown(self, worker: Any) -> None:
        self.closing.set()  # a running render checkpoints at the end of its iteration

    def render(self, work: WorkJob) -> str:
        """Render one claimed job under its lease; return what became of it."""
        check_visible(work, self.address)
        holder = {"worker": self.address, "host": socket.gethostname(), "pid": os.getpid(), "since": now_iso()}
        with render_lease(work, holder, self.closing):
            state = settle_earlier_attempt(work)
            if state.status in (Status.RENDERED, Status.FAILING):
                return state.status
            context = RunnerContext(config=lambda: self.config, spool=Spool(self.config), stop=StopRequest(self.closing, work),
                                    board=StatusBoard(), count=lambda outcome: None, memory_share=self.memory_share)
            runner = StagingRunner(context, default_device(state), self.address)
            runner.backbones = self.backbones  # the weights stay loaded between jobs
            runner.held_memory = self.held_memory  # and so does what TensorFlow took for them
            try:
                return runner.run(work)
            finally:
                self.held_memory = runner.held_memory


def render_claimed(work_path: str) -> str:
    """The Dask task: render the job in ``work_path`` on this worker (see the module docstring)."""
    plugin = get_worker().plugins[PLUGIN_NAME]
    return plugin.render(WorkJob(Path(work_path)))


def check_visible(work: WorkJob, address: str) -> None:
    """A worker that cannot see the spool must say so, never render nothing."""
    if not work.state_path.is_file():
        raise ClusterError(f"the worker {address} on {socket.gethostname()} cannot see the job's work folder",
                           where=str(work.path),
                           hint="mount the spool's work folder on every worker at the same path as on the daemon "
                                "(an NFS or SMB share), then drop the job again")


@contextlib.contextmanager
def render_lease(work: WorkJob, holder: dict[str, Any], closing: threading.Event) -> Iterator[None]:
    """Hold work/NAME/lease (flock) while rendering; wait while an earlier render holds it. The
    kernel drops the lock when its process dies, so a killed worker never blocks the job."""
    descriptor = os.open(work.lease_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(descriptor, work, closing)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _acquire(descriptor: int, work: WorkJob, closing: threading.Event) -> None:
    waited = False
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if closing.is_set():
                raise ClusterError("the worker closed while waiting for an earlier render of the job to finish",
                                   where=str(work.path)) from None
            if not waited:
                log.info("%s: an earlier render still holds %s (%s); waiting for it", work.path.name,
                         work.lease_path, read_holder(work))
                waited = True
            time.sleep(LEASE_POLL_SECONDS)


def read_holder(work: WorkJob) -> dict[str, Any]:
    """Who holds (or last held) the job's lease: worker address, host, pid, since when."""
    try:
        data = json.loads(work.lease_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def settle_earlier_attempt(work: WorkJob) -> JobState:
    """With the lease held, nobody else renders the job: an attempt found mid-render crashed (its
    worker was killed), and counts as the daemon's own crashes do; a result already staged is
    marked rendered."""
    state = work.state()
    if work.result_dir.is_dir() and state.status in CRASHED_IN:
        return work.update(status=Status.RENDERED)
    if state.status in CRASHED_IN:
        state = work.save_state(after_crash(state, progress_done(work, state)))
    return state


def default_device(state: JobState) -> str:
    """The worker's GPU for a job that asks for one (the scheduler gave it a worker with a GPU
    resource), else the worker's best device."""
    from styled.nets.devices import resolve_device

    wanted = state.wants_device
    return resolve_device("gpu" if wanted is not None and wanted.startswith("gpu") else wanted or "auto").name


class StagingRunner(JobRunner):
    """A JobRunner that leaves its delivery in work/NAME/result/ and its failure in state.json,
    for the daemon to publish."""

    def _check_device(self, wanted: str, where: str, line: int | None) -> None:
        if not device_matches(wanted, self.device) and not (wanted.startswith("gpu") and self.device.startswith("gpu")):
            super()._check_device(wanted, where, line)

    def _deliver(self, work: WorkJob, prepared: Prepared, result: Result) -> str:
        # Still "rendering" while staging: a worker killed here leaves a job to render again.
        state = work.update(finished=now_iso())
        with staged_folder(work.path, work.result_dir.name) as folder:
            self.fill(folder, work, state, prepared, result)
            os.rename(folder, work.result_dir)
        work.update(status=Status.RENDERED)
        log.info("rendered %s on %s (%d iterations, %.1f s)", state.name, self.worker, result.iterations,
                 result.seconds)
        return Status.RENDERED

    def _fail(self, work: WorkJob, state: JobState, error: StyledError) -> str:
        if not work.path.exists():
            return self._abandoned(work)
        work.update(status=Status.FAILING, error=error.as_dict(), finished=now_iso())
        log.info("%s failed on %s: %s", state.name, self.worker, error)
        return FAILED

