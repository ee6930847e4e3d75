"""``cluster:``: the daemon's claimed jobs rendered on Dask workers (docs/cluster.md).

The spool stays the source of truth. The daemon's main thread still scans, settles and claims;
this thread submits each claimed job as one Dask task keyed by the job's id and attempt (so a
rescan or a reconnect never submits it twice), and when a task ends it reads the job's state.json
to see what became of it: a worker that rendered it left the delivery in work/NAME/result/, which
this thread publishes to the outbox; a recorded failure goes to failed/; anything else (a killed
worker, a lost scheduler, a stop) is submitted again and resumes from its checkpoint.

``distributed`` is imported only here, and this module only when ``cluster:`` is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from styled.daemon.cluster_worker import StyledWorker, render_claimed
from styled.daemon.config import CLUSTER_FILE, ClusterConfig, DaemonConfig
from styled.daemon.jobqueue import JobQueue
from styled.daemon.runner import fail_job, publish_rendered
from styled.daemon.spool import Spool, WorkJob, read_json_object
from styled.daemon.state import JobState, Status, now_iso
from styled.errors import ClusterError, RenderFailed, StyledError, error_from_dict
from styled.io.files import atomic_write_json

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
#: Waits between attempts to reach a lost scheduler.
BACKOFF_SECONDS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
#: At a stop, how long the running renders get to checkpoint before the workers are let go.
STOP_WAIT_SECONDS = 60.0
#: A staged result in these states is published (again, if a crash interrupted the first try).
PUBLISHABLE = (Status.RENDERED, Status.DELIVERING)


class DaemonSide(Protocol):
    """What the dispatcher uses of the daemon (styled.daemon.service.Daemon)."""

    config: DaemonConfig
    spool: Spool
    queue: JobQueue
    stop: threading.Event
    wake: threading.Event

    def count(self, outcome: str) -> None: ...


def task_key(state: JobState) -> str:
    """The Dask key of a job's next attempt: the same for a resubmission of an attempt that never
    began, new once a worker has begun it."""
    return f"styled-{state.id}-{state.attempts + 1}"


def threads_per_worker(settings: ClusterConfig) -> int | None:
    """TensorFlow threads per worker: the setting, or this machine's cores shared by local workers
    (None: each remote worker takes its own machine's cores)."""
    if settings.threads is not None:
        return settings.threads
    if settings.local is None:
        return None
    return max(1, len(os.sched_getaffinity(0)) // settings.local.workers)


def start_local_cluster(settings: ClusterConfig) -> Any:
    """A LocalCluster of worker processes (spawned, never forked from a process that loaded
    TensorFlow), one thread of Dask work each; they render on the CPU (docs/cluster.md: GPUs)."""
    from distributed import LocalCluster

    assert settings.local is not None
    return LocalCluster(n_workers=settings.local.workers, threads_per_worker=1, processes=True,
                        dashboard_address=settings.dashboard, env={"CUDA_VISIBLE_DEVICES": ""},
                        silence_logs=dask_log_level())


def dask_log_level() -> int:
    """Dask's own INFO lines (every connection, every worker) only under ``--debug``."""
    return logging.DEBUG if logging.getLogger("styled").getEffectiveLevel() <= logging.DEBUG else logging.WARNING


@dataclass
class Submitted:
    work: WorkJob
    name: str
    key: str
    future: Any


@dataclass
class Connection:
    """The client and what the daemon knows of the cluster, for slots and ``styled status``."""

    client: Any = None
    #: The dashboard's address, read once at the connection (the main thread must never wait on
    #: the client: it may be closing).
    dashboard: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    workers: dict[str, Any] = field(default_factory=dict)


class ClusterDispatch(threading.Thread):
    """Submits the daemon's claimed jobs to Dask and settles them when their tasks end."""

    def __init__(self, daemon: DaemonSide):
        super().__init__(name="styled-cluster", daemon=True)
        self.styled = daemon
        self.settings: ClusterConfig = daemon.config.cluster
        self.cluster: Any = None
        self.connection = Connection()
        self.submitted: dict[Path, Submitted] = {}
        self._lock = threading.Lock()
        self._status_at = 0.0

    # --- what the daemon's main thread asks ---

    @property
    def config(self) -> DaemonConfig:
        return self.styled.config

    @property
    def address(self) -> str:
        if self.cluster is not None:
            return self.cluster.scheduler_address
        return self.settings.scheduler or ""

    def slots(self) -> int:
        """Jobs the cluster can render at once (one per worker); one while it has none, so a job
        is claimed and waits in work/ rather than in the inbox."""
        with self._lock:
            return max(1, len(self.connection.workers))

    def status_line(self) -> str:
        """systemd's STATUS= and the start's log line: the scheduler, its workers, the dashboard.
        Called from the main thread: it reads only what this thread recorded, never the client."""
        with self._lock:
            workers = len(self.connection.workers)
            connected, dashboard = self.connection.client is not None, self.connection.dashboard
        if not connected:
            return f"cluster {self.address} unreachable, reconnecting"
        return f"cluster {self.address}, {workers} worker(s), dashboard {dashboard}"

    def job_lines(self) -> list[str]:
        """One line per job on the cluster: its progress (progress.json) and its worker."""
        lines = []
        for submitted in self.submitted.copy().values():  # a copy: this runs on the main thread
            progress = read_json_object(submitted.work.progress_path)
            where = progress.get("device") or "waiting for a worker"
            percent = f"{progress['percent']:.0f}%" if isinstance(progress.get("percent"), (int, float)) else "starting"
            lines.append(f"{submitted.name}: {percent} on {where}")
        return lines

    def open(self) -> None:
        """Start the local cluster, or make the first connection (retried in the background when
        the scheduler is not up yet)."""
        logging.getLogger("distributed").setLevel(dask_log_level())
        if self.settings.local is not None:
            log.info("starting a local Dask cluster of %d worker process(es)", self.settings.local.workers)
            try:
                self.cluster = start_local_cluster(self.settings)
            except Exception as error:  # noqa: BLE001 - say what failed, in the library's terms
                raise ClusterError(f"cannot start the local Dask cluster: {type(error).__name__}: {error}",
                                   where=str(self.config.source or ""), key="cluster.local",
                                   hint="check the dashboard port is free (cluster.dashboard) and the "
                                        "machine's memory") from None
        self._connect()

    # --- the thread ---

    def run(self) -> None:
        last_fault = ""
        while not self.styled.stop.is_set():
            try:
                self._step()
            except Exception as error:  # noqa: BLE001 - the dispatcher must outlive any one fault
                fault = f"{type(error).__name__}: {error}"
                if fault != last_fault:  # once, not four times a second
                    log.exception("cluster dispatch: %s; retrying", fault)
                last_fault = fault
            self.styled.stop.wait(POLL_SECONDS)
        self._stop_renders()

    def _step(self) -> None:
        if self.connection.client is None:
            if time.monotonic() >= self.connection.retry_at:
                self._connect()
            return
        if not self._connected():
            self._lost()
            return
        self._keep_local_workers()
        self._submit_waiting()
        self._settle_finished()
        if time.monotonic() >= self._status_at:  # each is a round trip to the scheduler
            self._status_at = time.monotonic() + self.config.progress_seconds
            self._refresh_workers()
            self._write_status()

    # --- connection ---

    def _connect(self) -> None:
        from distributed import Client

        target = self.cluster if self.cluster is not None else self.settings.scheduler
        try:
            client = Client(target, timeout=self.settings.connect_seconds, set_as_default=False)
            client.register_plugin(StyledWorker(self.config, threads_per_worker(self.settings),
                                                self._memory_share()), name=StyledWorker.name)
        except Exception as error:  # noqa: BLE001 - OSError, TimeoutError, CommClosedError...
            self._retry_later(error)
            return
        with self._lock:
            self.connection.client, self.connection.failures = client, 0
            self.connection.dashboard = _dashboard_link(client)
        log.info("connected to the Dask scheduler %s (dashboard: %s)", self.address, self.connection.dashboard)
        self._refresh_workers()

    def _memory_share(self) -> float:
        return 1.0 / self.settings.local.workers if self.settings.local is not None else 1.0

    def _retry_later(self, error: BaseException) -> None:
        connection = self.connection
        wait = BACKOFF_SECONDS[min(connection.failures, len(BACKOFF_SECONDS) - 1)]
        connection.failures += 1
        connection.retry_at = time.monotonic() + wait
        log.warning("cannot reach the Dask scheduler %s (%s: %s); the claimed jobs wait in %s; retrying in "
                    "%.0f s", self.address, type(error).__name__, error, self.config.work, wait)

    def _connected(self) -> bool:
        return self.connection.client.status == "running"

    def _lost(self) -> None:
        """The scheduler went away: keep every claimed job, resubmit them after reconnecting."""
        log.error("lost the Dask scheduler %s; keeping %d claimed job(s) in %s and reconnecting", self.address,
                  len(self.submitted), self.config.work)
        for submitted in list(self.submitted.values()):
            self._requeue(submitted)
        self.submitted.clear()
        with self._lock:
            client, self.connection.client = self.connection.client, None
            self.connection.workers = {}
        with _silenced("distributed.client"):  # its reconnection attempt logs the loss once more
            _close_quietly(client)
        self._retry_later(ConnectionError("the connection closed"))

    def _keep_local_workers(self) -> None:
        """A local cluster keeps ``workers`` processes. Dask's nanny restarts a worker that dies, but
        a worker that dies again and again (a poison job) can be given up on; start a new one."""
        if self.cluster is None:
            return
        wanted = self.settings.local.workers
        if len(self.cluster.workers) < wanted:
            log.warning("the local cluster has %d of its %d worker(s); starting %d more",
                        len(self.cluster.workers), wanted, wanted - len(self.cluster.workers))
            self.cluster.scale(wanted)

    def _refresh_workers(self) -> None:
        try:
            workers = dict(self.connection.client.scheduler_info(n_workers=-1).get("workers", {}))
        except TypeError:  # older distributed: no n_workers
            workers = dict(self.connection.client.scheduler_info().get("workers", {}))
        with self._lock:
            self.connection.workers = workers

    # --- submitting and settling ---

    def _submit_waiting(self) -> None:
        while True:
            work = self.styled.queue.take("cluster", timeout=0)
            if work is None:
                return
            try:
                self._submit(work)
            except BaseException:  # e.g. the connection closed: the job waits for the next try
                if work.path not in self.submitted:
                    self.styled.enqueue(work)
                    self.styled.queue.done(work)
                raise

    def _submit(self, work: WorkJob) -> None:
        try:
            state = work.state()
        except (OSError, ValueError, TypeError):
            log.warning("%s has no readable state; the sweep looks at it again", work.path)
            self.styled.queue.done(work)
            return
        if self._settle(work, state):
            return
        if state.wants_device and state.wants_device.startswith("gpu") and self.settings.local is not None:
            self._fail(work, state, ClusterError(
                f"the job asks for device '{state.wants_device}', and a local cluster's workers render on the CPU",
                where=str(work.job_dir / state.spec), key="device",
                hint="leave 'device' out, or start `styled worker --gpu N` on a GPU machine and set "
                     "cluster.scheduler (docs/cluster.md)"))
            return
        work.stop_path.unlink(missing_ok=True)
        key = task_key(state)
        resources = {"GPU": 1} if state.wants_device and state.wants_device.startswith("gpu") else None
        future = self.connection.client.submit(render_claimed, str(work.path), key=key, pure=False,
                                               resources=resources, retries=0)
        self.submitted[work.path] = Submitted(work, state.name, key, future)
        log.info("submitted %s to the cluster as %s", state.name, key)

    def _settle_finished(self) -> None:
        for path, submitted in list(self.submitted.items()):
            if submitted.future.done():
                del self.submitted[path]
                self._finished(submitted)

    def _finished(self, submitted: Submitted) -> None:
        """A task ended: its job's state.json says what happened; a task error that is not a
        worker's death fails the job (a worker that cannot see the spool says so here)."""
        work = submitted.work
        failure = self._task_failure(submitted)
        try:
            state = work.state()
        except (OSError, ValueError, TypeError):
            self.styled.queue.done(work)
            return
        if failure is not None:
            self._fail(work, state, failure)
        elif not self._settle(work, state):
            self._requeue(submitted)

    def _task_failure(self, submitted: Submitted) -> StyledError | None:
        future = submitted.future
        if future.status == "error":
            error = future.exception()
            future.release()  # so that the next attempt's key is a new task
            if isinstance(error, StyledError):
                return error
            if type(error).__name__ != "KilledWorker":
                return RenderFailed(f"the cluster task failed: {type(error).__name__}: {error}",
                                    hint="this is a bug, or a worker that cannot run styled: see its log")
            log.warning("%s: the workers rendering it died (%s); submitting it again", submitted.name, error)
        elif future.status != "finished":
            log.warning("%s: its task was %s; submitting it again", submitted.name, future.status)
        elif future.result() == Status.INTERRUPTED and not self.styled.stop.is_set():
            log.info("%s was interrupted on its worker; submitting it again", submitted.name)
        return None

    def _settle(self, work: WorkJob, state: JobState) -> bool:
        """Publish or fail what a worker finished; False when the job still needs rendering."""
        if state.status in PUBLISHABLE and work.result_dir.is_dir():
            self._finish_with(work, lambda: publish_rendered(self.styled.spool, work, self.styled.count))
            return True
        if state.status == Status.FAILING and state.error:
            self._fail(work, state, error_from_dict(dict(state.error)))
            return True
        return False

    def _fail(self, work: WorkJob, state: JobState, error: StyledError) -> None:
        self._finish_with(work, lambda: fail_job(self.styled.spool, work, state, error, self.styled.count))

    def _finish_with(self, work: WorkJob, step: Any) -> None:
        try:
            step()
        finally:
            self.styled.queue.done(work)
            self.styled.wake.set()

    def _requeue(self, submitted: Submitted) -> None:
        if self.styled.stop.is_set():
            self.styled.queue.done(submitted.work)  # it resumes at the next start
            return
        self.styled.enqueue(submitted.work)
        self.styled.queue.done(submitted.work)

    # --- stopping ---

    def _stop_renders(self) -> None:
        """Ask each running render to checkpoint (work/NAME/stop), wait for them, let go of the
        cluster. The jobs stay in work/ and resume at the next start."""
        for submitted in self.submitted.values():
            try:
                submitted.work.stop_path.touch()
            except OSError as error:  # its folder is gone or unwritable: the render runs to its end
                log.warning("cannot ask the render of %s to stop (%s); it finishes its run", submitted.name, error)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while self.submitted and time.monotonic() < deadline and self.connection.client is not None:
            self._settle_finished()
            time.sleep(POLL_SECONDS)
        for submitted in self.submitted.values():
            self.styled.queue.done(submitted.work)
        _close_quietly(self.connection.client)
        _close_quietly(self.cluster)
        (self.config.work / CLUSTER_FILE).unlink(missing_ok=True)

    # --- status ---

    def _write_status(self) -> None:
        """work/.cluster.json for ``styled status``: scheduler, dashboard, workers and their jobs."""
        running = {submitted.key: submitted.name for submitted in self.submitted.values()}
        try:
            processing = self.connection.client.processing()
        except Exception:  # noqa: BLE001 - the status is best effort
            processing = {}
        with self._lock:
            workers = [{"address": address, "name": str(info.get("name", "")), "host": info.get("host"),
                        "resources": info.get("resources", {}),
                        "jobs": [running.get(key, key) for key in processing.get(address, ())]}
                       for address, info in self.connection.workers.items()]
        atomic_write_json(self.config.work / CLUSTER_FILE, {
            "scheduler": self.address, "dashboard": self.connection.dashboard,
            "workers": workers, "updated": now_iso(),
        })


def _dashboard_link(client: Any) -> str | None:
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - no dashboard (bokeh missing, or turned off)
        return None


@contextlib.contextmanager
def _silenced(logger: str) -> Iterator[None]:
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        target.setLevel(level)


def _close_quietly(thing: Any) -> None:
    if thing is None:
        return
    try:
        thing.close()
    except Exception as error:  # noqa: BLE001 - closing after a loss may fail; nothing is at stake
        log.debug("closing %s: %s", type(thing).__name__, error)
