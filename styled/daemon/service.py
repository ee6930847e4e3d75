"""``styled serve``: watch the inbox, render each job on a device worker, deliver to the outbox.

One main thread owns the inbox: it rescans on watchdog's hints and every ``rescan_seconds`` (the
hints are not the truth: inotify overflows drop them, and there is no initial scan), waits for
files to settle, claims jobs only when a worker is free, handles signals and talks to systemd.
One worker thread per configured device renders (TensorFlow releases the GIL) and delivers.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEventHandler

from styled.daemon import control
from styled.daemon.config import (
    RESTART_KEYS,
    DaemonConfig,
    config_changes,
    load_daemon_config,
)
from styled.daemon.inbox import FOLDER, InboxWatch, Pending, PluginFiles, Readiness, readiness, scan_inbox
from styled.daemon.jobqueue import JobQueue
from styled.daemon.lock import SpoolLock
from styled.daemon.runner import JobRunner, RunnerContext, StatusBoard, fail_job
from styled.daemon.sdnotify import Notifier
from styled.daemon.spool import Spool, WorkJob
from styled.daemon.state import now_iso
from styled.daemon.warmup import load_engine, measure_precisions
from styled.errors import StyledError

log = logging.getLogger(__name__)

#: The main loop wakes at least this often to ping systemd and refresh STATUS=.
HEARTBEAT_SECONDS = 1.0
#: While a job waits to settle, the inbox is polled this many times per settle period.
SETTLE_POLLS = 4
MIN_POLL_SECONDS = 0.1
WORKER_POLL_SECONDS = 0.5
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class RunSummary:
    """What one run of the daemon did; ``styled serve --once`` turns it into the exit code."""

    delivered: int = 0
    failed: int = 0
    interrupted: int = 0
    stop_signal: str | None = None


class InboxEvents(FileSystemEventHandler):
    """watchdog handler: only notes that something changed. It never raises, because an exception
    here kills the observer thread, and never touches the files: the main loop does that."""

    def __init__(self, hint: threading.Event, wake: threading.Event):
        super().__init__()
        self.hint, self.wake = hint, wake

    def dispatch(self, event: Any) -> None:
        try:
            self.hint.set()
            self.wake.set()
        except Exception:  # noqa: BLE001 - see the class docstring
            pass


class Worker(threading.Thread):
    """Renders claimed jobs from the queue on one device until the daemon stops."""

    def __init__(self, daemon: Daemon, device: str, index: int):
        super().__init__(name=f"styled-worker-{index}-{device}", daemon=True)
        self.styled = daemon
        self.runner = JobRunner(daemon.runner_context(), device, f"{device}#{index}")

    def slots(self) -> int:
        """Jobs this worker renders at once."""
        return 1

    def run(self) -> None:
        jobs = self.styled.queue
        while not self.styled.stop.is_set():
            work = jobs.take(self.runner.device, timeout=WORKER_POLL_SECONDS)
            if work is None:
                continue
            try:
                self.runner.run(work)
            except Exception as error:  # noqa: BLE001 - the worker must outlive any one job
                log.error("worker %s: %s could not be finished (%s: %s); the next rescan retries it",
                          self.name, work.path.name, type(error).__name__, error)
            finally:
                jobs.done(work)
                self.styled.hint.set()  # a worker is free: look for the next job now
                self.styled.wake.set()


class Daemon:
    """The watched-folder daemon. ``run()`` returns when stopped (or, with ``once``, when drained)."""

    def __init__(self, config: DaemonConfig, *, config_path: Path | None = None, once: bool = False,
                 notifier: Notifier | None = None, manage_log_level: bool = True, keep_signals: bool = False):
        self.config = config
        self.config_path = config_path or config.source
        self.once = once
        self.notifier = notifier or Notifier()
        self.manage_log_level = manage_log_level
        #: The CLI's process exits right after run(): leaving the stop handlers in place means a
        #: late SIGTERM during the exit is a no-op instead of a kill (exit -15, no clean end).
        self.keep_signals = keep_signals
        self.spool = Spool(config)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.hint = threading.Event()
        self.reload_requested = threading.Event()
        #: With ``cluster:``, one dispatcher thread takes every job (docs/cluster.md).
        self.queue = JobQueue(("cluster",) if config.cluster else config.devices)
        self.dispatch: Any = None
        #: Which plugin options name files, from the plugins loaded at the start (or reload).
        self.plugin_files: PluginFiles | None = None
        self.lock = threading.Lock()
        self.board = StatusBoard()
        self.summary = RunSummary()
        self.workers: list[Worker] = []
        self.watch = InboxWatch(config.settle_seconds, config.missing_file_seconds, patient=not once)
        self._received: dict[Path, str] = {}  # when each pending job was first seen, for its report
        self._settling: tuple[Path, ...] = ()  # not settled yet: the inbox is polled until they are
        self._ready: tuple[Path, ...] = ()  # settled, waiting for a free worker (which wakes the loop)
        self._blocked: tuple[Path, ...] = ()  # *.part / *.tmp files inside: still being written
        self._healthy = True
        self._noted: set[str] = set()  # problems already logged, so a bad entry is logged once

    # --- public ---

    def run(self) -> RunSummary:
        """Recover, start the workers, serve; always stop the workers and tell systemd on the way out."""
        self._apply_log_level()
        self.spool.ensure_folders()
        # The stop handlers stay installed until the workers are joined: a second SIGTERM or
        # Ctrl-C while the running jobs checkpoint must not kill the process half-way.
        with SpoolLock(self.config.work), self._signals():
            if self.config.cluster is None:  # the cluster's workers load it themselves
                load_engine()  # TensorFlow before READY=1, not in the first job
            self._use_plugins(check_plugins_and_library(self.config))
            if self.config.cluster is None:
                measure_precisions(self.config)
            self._recover()
            self._start_workers()
            try:
                if self.once:
                    self._loop(observer=None)
                else:
                    self._serve()
            finally:
                self._shutdown()
        return self.summary

    def request_stop(self, reason: str = "stop requested") -> None:
        self.summary.stop_signal = self.summary.stop_signal or reason
        self.stop.set()
        self.wake.set()

    def request_reload(self) -> None:
        self.reload_requested.set()
        self.wake.set()

    def count(self, outcome: str) -> None:
        with self.lock:
            setattr(self.summary, outcome, getattr(self.summary, outcome) + 1)

    def runner_context(self) -> RunnerContext:
        """What a worker's JobRunner sees of the daemon (the config is read afresh after a reload)."""
        return RunnerContext(config=lambda: self.config, spool=self.spool, stop=self.stop, board=self.board,
                             count=self.count, memory_share=1 / max(1, len(self.config.devices)))

    # --- lifecycle ---

    def _serve(self) -> None:
        from watchdog.observers import Observer

        observer = Observer()
        observer.schedule(InboxEvents(self.hint, self.wake), str(self.config.inbox), recursive=True)
        with observer:
            log.info("watching %s; rendering on %s", self.config.inbox, self._renderers())
            self.notifier.ready(self._status_line())
            self._loop(observer)

    def _recover(self) -> None:
        for work in self.spool.recover():
            log.info("recovered %s from %s; it will %s", work.name, work.path,
                     "resume from its checkpoint" if work.checkpoint_path.exists() else "start")
            self.enqueue(work)

    def enqueue(self, work: WorkJob) -> None:
        """Queue a claimed job for a worker on the device it asks for, at its priority."""
        try:
            state = work.state()
            wants, priority = state.wants_device, state.priority
        except (OSError, ValueError, TypeError):
            wants, priority = None, 0  # the runner reports the damaged state
        self.queue.put(work, wants, priority)

    def _sweep(self) -> None:
        """Work folders no worker holds and no queue lists (a claim, a delivery or a failure that
        could not finish): finish or retry them, so nothing is stranded in work/."""
        known = self.queue.known()
        for work in self.spool.work_jobs():
            if work.path in known:
                continue
            try:
                recovered = self.spool.recover_one(work)
            except Exception as error:  # noqa: BLE001 - a damaged folder must not stop the loop
                self._note(f"sweep {work.path}", f"cannot recover {work.path}: {type(error).__name__}: {error}")
                continue
            if recovered is not None:
                log.info("retrying %s, which an earlier step left unfinished", work.path.name)
                self.enqueue(recovered)

    def _note(self, key: str, message: str) -> None:
        """Log a problem once per key, however often a scan meets it."""
        if key not in self._noted:
            self._noted.add(key)
            log.error("%s", message)

    def _renderers(self) -> str:
        if self.dispatch is not None:
            return self.dispatch.status_line()
        return f"{len(self.workers)} worker(s) on {', '.join(self.config.devices)}"

    def _start_workers(self) -> None:
        if self.config.cluster is not None:
            from styled.daemon.cluster_command import require_distributed

            require_distributed()
            from styled.daemon.cluster import ClusterDispatch

            self.dispatch = ClusterDispatch(self)
            self.dispatch.open()
            self.dispatch.start()
            self.workers.append(self.dispatch)
            return
        for index, device in enumerate(self.config.devices, start=1):
            worker = Worker(self, device, index)
            worker.start()
            self.workers.append(worker)

    def _shutdown(self) -> None:
        self.stop.set()
        self.notifier.stopping()
        if self.summary.stop_signal:
            log.info("stopping (%s): checkpointing the running jobs", self.summary.stop_signal)
        for worker in self.workers:
            worker.join()
        log.info("stopped: %d delivered, %d failed, %d interrupted", self.summary.delivered,
                 self.summary.failed, self.summary.interrupted)

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT stop, SIGHUP reloads; handlers only set flags (the loop does the work)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handlers = {sig: self._on_stop_signal for sig in STOP_SIGNALS}
        handlers[signal.SIGHUP] = lambda signum, frame: self.request_reload()
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            yield
        finally:
            if not self.keep_signals:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        if self.stop.is_set():
            log.info("%s: already stopping; the running jobs checkpoint at the end of their current iteration",
                     signal.Signals(signum).name)
        self.request_stop(signal.Signals(signum).name)

    # --- the main loop ---

    def _loop(self, observer: Any) -> None:
        next_rescan, last_scan = 0.0, -float("inf")
        while not self.stop.is_set():
            if self.reload_requested.is_set():
                self._reload()
            now = time.monotonic()
            if now >= next_rescan or self._scan_wanted(now - last_scan):
                self.hint.clear()
                self._scan_safely(now, full=now >= next_rescan)
                last_scan = now
                if now >= next_rescan:
                    next_rescan = now + self.config.rescan_seconds
            self._heartbeat(observer)
            if self.once and self._drained():
                break
            self.wake.wait(self._sleep_seconds(next_rescan, last_scan))
            self.wake.clear()

    def _poll_seconds(self) -> float:
        return max(MIN_POLL_SECONDS, self.config.settle_seconds / SETTLE_POLLS)

    def _scan_wanted(self, since_last: float) -> bool:
        """A hint, or jobs settling; at most one scan per MIN_POLL_SECONDS, however many events
        a large copy into the inbox fires."""
        if self._settling and since_last >= self._poll_seconds():
            return True
        return self.hint.is_set() and since_last >= MIN_POLL_SECONDS

    def _sleep_seconds(self, next_rescan: float, last_scan: float) -> float:
        now = time.monotonic()
        timeout = min(HEARTBEAT_SECONDS, next_rescan - now)
        if self._settling:
            timeout = min(timeout, last_scan + self._poll_seconds() - now)
        if self.hint.is_set():
            timeout = min(timeout, last_scan + MIN_POLL_SECONDS - now)
        return max(0.0, timeout)

    def _outstanding(self) -> int:
        """Jobs queued or being rendered (a job counts from its claim until its worker is done)."""
        return self.queue.outstanding()

    def _drained(self) -> bool:
        if self._settling or self._ready or self._outstanding():
            return False
        for path in self._blocked:
            log.warning("leaving %s in the inbox: files in it are still being written (*.part, *.tmp)", path)
        return True

    def _scan_safely(self, now: float, full: bool = False) -> None:
        try:
            self._scan(now)
            if full:
                self._sweep()
        except OSError as error:  # the inbox vanished, a disk error: log, and try again next time
            log.error("could not scan %s: %s", self.config.inbox, error)

    def _scan(self, now: float) -> None:
        observed = [(pending, ready) for pending in scan_inbox(self.config.inbox)
                    if (ready := self._readiness(pending)) is not None]
        plan = self.watch.plan(observed, now, self._free_workers())
        for pending in plan.new:
            self._received[pending.path] = now_iso()
            log.info("received %s (%s)", pending.path.name, "job folder" if pending.kind == FOLDER else "loose spec")
        self._carry_out_requests()
        for pending in plan.claim:
            self._claim(pending)
        self._received = {path: when for path, when in self._received.items() if path in self.watch.first_seen}
        self._settling, self._ready, self._blocked = plan.settling, plan.waiting, plan.writing

    def _readiness(self, pending: Pending) -> Readiness | None:
        """What the entry waits for; None, logged once, when it cannot even be looked at."""
        try:
            return readiness(pending, self.config, self.plugin_files)
        except Exception as error:  # noqa: BLE001 - one entry must not stop the scan of the others
            self._note(f"look {pending.path}", f"skipping {pending.path} for now: {type(error).__name__}: {error}")
            return None

    def _claim(self, pending: Pending) -> bool:
        try:
            work = self.spool.claim(pending, received=self._received.get(pending.path))
        except Exception as error:  # noqa: BLE001 - a claim that fails half-way is finished by the sweep
            self._note(f"claim {pending.path}", f"could not claim {pending.path}: {type(error).__name__}: {error}; "
                                                "it is retried at the next rescan")
            return False
        if work is None:
            return False
        log.info("claimed %s -> %s", pending.path.name, work.path)
        self.enqueue(work)
        return True

    # --- requests: cancel, priority (styled.daemon.control) ---

    def _carry_out_requests(self) -> None:
        for request in control.read_requests(self.config):
            try:
                handled = (self._cancel if request.action == control.CANCEL else self._reprioritise)(request)
                if not handled:
                    log.warning("%s %s (from %s): no such job is waiting or running", request.action, request.name,
                                request.by)
            except Exception as error:  # noqa: BLE001 - a request must not stop the loop
                log.error("could not %s %s: %s: %s", request.action, request.name, type(error).__name__, error)
            finally:
                control.finish_request(request)

    def _cancel(self, request: control.Request) -> bool:
        """Mark the job cancelled: a waiting one fails now, a running one when its render stops."""
        jobs = control.work_jobs_named(self.config, request.name)
        for work in jobs:
            control.mark_cancelled(work, request)
            if self.queue.remove(work.path) is not None:
                self._fail_cancelled(work)
            else:
                log.info("cancelling %s: its render stops at its next iteration", request.name)
        if jobs:
            return True
        for name, pending in control.inbox_jobs(self.config):
            if name == request.name:
                work = self.spool.claim(pending, received=self._received.get(pending.path))
                if work is not None:
                    control.mark_cancelled(work, request)
                    self._fail_cancelled(work)
                    return True
        return False

    def _fail_cancelled(self, work: WorkJob) -> None:
        state = work.state()
        log.info("cancelled %s before it started", state.name)
        fail_job(self.spool, work, state, control.cancelled_error(work), self.count)

    def _reprioritise(self, request: control.Request) -> bool:
        changed = False
        for work in control.work_jobs_named(self.config, request.name):
            if request.value is not None and self.queue.reprioritise(work.path, request.value):
                work.update(priority=request.value)
                log.info("%s now has priority %d", request.name, request.value)
                changed = True
        return changed

    def _free_workers(self) -> int:
        return sum(worker.slots() for worker in self.workers if worker.is_alive()) - self._outstanding()

    # --- health, systemd ---

    def _heartbeat(self, observer: Any) -> None:
        healthy = all(worker.is_alive() for worker in self.workers) and (observer is None or observer.is_alive())
        if healthy != self._healthy:
            (log.info if healthy else log.error)("health: %s", "ok" if healthy else
                                                 "a worker or the inbox observer has died; systemd's "
                                                 "watchdog will restart the service")
            self._healthy = healthy
        if healthy and self.notifier.watchdog_due():
            self.notifier.ping()
        self.notifier.status(self._status_line())

    def _status_line(self) -> str:
        jobs = self.board.lines() + (self.dispatch.job_lines() if self.dispatch is not None else [])
        waiting = len(self._settling) + len(self._ready) + len(self._blocked) + self.queue.waiting()
        counts = f"{waiting} waiting, {self.summary.delivered} delivered, {self.summary.failed} failed"
        if self.dispatch is not None:
            counts = f"{counts}; {self.dispatch.status_line()}"
        return f"{'; '.join(jobs)}; {counts}" if jobs else f"idle; {counts}"

    # --- reload ---

    def _reload(self) -> None:
        self.reload_requested.clear()
        self.notifier.reloading()
        path = self.config_path
        try:
            new = load_daemon_config(path)
            plugins = check_plugins_and_library(new)
        except StyledError as error:
            log.error("reload: %s; keeping the old config", error)
        else:
            self._apply(new)
            self._use_plugins(plugins)
        self.notifier.ready(self._status_line())

    def _apply(self, new: DaemonConfig) -> None:
        old = self.config
        changes = config_changes(old, new)
        kept = {key: getattr(old, key) for key in changes if key in RESTART_KEYS}
        for key in kept:
            log.warning("reload: '%s' changed to %s; restart styled to apply it", key, changes[key][1])
        new = dataclasses.replace(new, **kept)
        for key, (before, after) in changes.items():
            if key not in kept:
                log.info("reload: %s: %s -> %s", key, before, after)
        if not changes:
            log.info("reload: %s has not changed", self.config_path)
        self.config = new
        self.spool.config = new
        self.watch.settle_seconds, self.watch.missing_file_seconds = new.settle_seconds, new.missing_file_seconds
        self._apply_log_level()

    def _use_plugins(self, plugins: Any) -> None:
        from styled.plugins.manager import plugin_file_finder

        self.plugin_files = plugin_file_finder(plugins)
        self.spool.plugin_files = self.plugin_files

    def _apply_log_level(self) -> None:
        if self.manage_log_level:
            logging.getLogger("styled").setLevel(self.config.log_level)


def check_plugins_and_library(config: DaemonConfig) -> Any:
    """Load ``plugins_dir`` once, so that a broken plugin stops the start (or the reload) rather
    than failing every job; warn about library folders that are not there (yet). Returns the
    plugin manager."""
    from styled.plugins.manager import make_plugin_manager

    plugins = make_plugin_manager(config.plugins_dir)
    for folder in config.library:
        if not folder.is_dir():
            log.warning("library folder %s does not exist; jobs cannot use its images", folder)
    return plugins
