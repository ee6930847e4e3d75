"""``styled serve``: watch the inbox, render each job on a device worker, deliver to the outbox.

One main thread owns the inbox: it rescans on watchdog's hints and every ``rescan_seconds`` (the
hints are not the truth: inotify overflows drop them, and there is no initial scan), waits for
files to settle, claims jobs only when a worker is free, handles signals and talks to systemd.
One worker thread per configured device renders (TensorFlow releases the GIL) and delivers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import queue
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.events import FileSystemEventHandler

from styled.config import DaemonConfig, load_daemon_config
from styled.errors import StyledError
from styled.files import atomic_write_json
from styled.sdnotify import Notifier
from styled.status import clock
from styled.spool import (
    PoisonJobError,
    Settler,
    Spool,
    SpoolLock,
    Status,
    WorkJob,
    check_output_name,
    confine,
    now_iso,
    readiness,
    scan_inbox,
)

if TYPE_CHECKING:  # pragma: no cover
    from styled.engine import Checkpoint, Progress, Result
    from styled.jobs import Job

log = logging.getLogger(__name__)

#: The main loop wakes at least this often to ping systemd and refresh STATUS=.
HEARTBEAT_SECONDS = 1.0
#: While a job waits to settle, the inbox is polled this many times per settle period.
SETTLE_POLLS = 4
MIN_POLL_SECONDS = 0.1
WORKER_POLL_SECONDS = 0.5
#: Keys whose change needs a restart: the spool moving under running jobs, or new worker threads.
RESTART_KEYS = ("inbox", "outbox", "failed", "work", "devices")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class RenderFailed(StyledError):
    """The engine raised something that is not a StyledError: a bug, or the device gave up."""

    kind: str = field(default="render", init=False)


@dataclass
class RunSummary:
    """What one run of the daemon did; ``styled serve --once`` turns it into the exit code."""

    delivered: int = 0
    failed: int = 0
    interrupted: int = 0
    stop_signal: str | None = None


# --- the status board: what each worker is doing, for STATUS= and logs ------------------------


class StatusBoard:
    """Thread-safe map of worker -> one-line description of its job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: dict[str, str] = {}

    def set(self, worker: str, line: str | None) -> None:
        with self._lock:
            if line is None:
                self._lines.pop(worker, None)
            else:
                self._lines[worker] = line

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines.values())


def percent_done(progress: Progress) -> float:
    """Overall progress: from the ETA when the engine has one, else from the iteration counts."""
    if progress.eta is not None and progress.elapsed + progress.eta > 0:
        return 100.0 * progress.elapsed / (progress.elapsed + progress.eta)
    within = progress.iteration / progress.iterations if progress.iterations else 1.0
    return 100.0 * ((progress.scale - 1) + within) / max(progress.scales, 1)


class ProgressTracker:
    """``on_progress`` for one job: progress.json every few seconds, a log line every N%."""

    def __init__(self, work: WorkJob, name: str, config: DaemonConfig, board: StatusBoard, worker: str):
        self.work, self.name, self.config, self.board, self.worker = work, name, config, board, worker
        self._last_write = -float("inf")
        self._last_bucket = 0

    def __call__(self, progress: Progress) -> None:
        percent = percent_done(progress)
        summary = (f"scale {progress.scale}/{progress.scales}, iteration {progress.iteration}/"
                   f"{progress.iterations}, {percent:.0f}%, loss {progress.loss:.4g}, ETA {clock(progress.eta)}")
        self.board.set(self.worker, f"{self.name}: {summary}")
        now = time.monotonic()
        final = progress.scale == progress.scales and progress.iteration == progress.iterations
        if final or now - self._last_write >= self.config.progress_seconds:
            self._last_write = now
            self.write(progress, percent)
        bucket = int(percent // self.config.log_progress_percent)
        if bucket > self._last_bucket:
            self._last_bucket = bucket
            log.info("progress %s: %s", self.name, summary)

    def write(self, progress: Progress, percent: float) -> None:
        atomic_write_json(self.work.progress_path, {
            "name": self.name, "device": self.worker, "scale": progress.scale, "scales": progress.scales,
            "width": progress.width, "height": progress.height, "iteration": progress.iteration,
            "iterations": progress.iterations, "loss": progress.loss, "terms": dict(progress.terms),
            "percent": round(percent, 1), "elapsed": round(progress.elapsed, 3),
            "eta": None if progress.eta is None else round(progress.eta, 3), "updated": now_iso(),
        })


# --- running one job ----------------------------------------------------------------------------


class JobRunner:
    """Takes one claimed job from work/ to the outbox or failed/, on one device."""

    def __init__(self, daemon: Daemon, device: str, worker: str):
        self.daemon, self.device, self.worker = daemon, device, worker
        self._backbones: Callable[..., Any] | None = None

    def backbones(self) -> Callable[..., Any]:
        """This worker's memoised weight loader: jobs after the first skip reading the weights."""
        if self._backbones is None:
            from styled.weights import load_backbone

            self._backbones = functools.cache(load_backbone)
        return self._backbones

    def run(self, work: WorkJob) -> str:
        """Render and deliver; return 'delivered', 'failed', 'interrupted' or 'skipped'."""
        config = self.daemon.config
        state = work.state()
        name = state["name"]
        try:
            if state.get("status") == Status.FAILING and state.get("error"):
                return self._fail(work, state, error_from_dict(state["error"]))
            self._check_claim(work, state, config)
            job, library_files = self._prepare(work, state, config)
            if self.daemon.stop.is_set():
                return "skipped"
            result = self._render(work, state, job, config)
        except StyledError as error:
            return self._fail(work, state, public_error(error, work, state))
        except Exception as error:  # noqa: BLE001 - one job's bug must not take the worker down
            log.exception("render of %s raised", name)
            return self._fail(work, state, RenderFailed(
                f"the render failed: {type(error).__name__}: {error}",
                hint="this is a bug or the device ran out of memory; try a smaller size, or report it "
                     "with the inputs attached"))
        if result.interrupted:
            return self._interrupted(work, result)
        try:
            return self._deliver(work, job, result, library_files)
        except StyledError as error:
            return self._fail(work, work.state(), public_error(error, work, state))
        except Exception as error:  # noqa: BLE001 - e.g. the outbox's disk is full
            log.exception("delivery of %s failed", name)
            return self._fail(work, work.state(), RenderFailed(
                f"the result could not be delivered: {type(error).__name__}: {error}",
                where=str(self.daemon.config.outbox), hint="check the outbox's free space and permissions"))

    def _check_claim(self, work: WorkJob, state: dict[str, Any], config: DaemonConfig) -> None:
        if state.get("claim_error"):
            raise error_from_dict(state["claim_error"])
        if state.get("attempts", 0) >= config.max_attempts:
            raise PoisonJobError(
                f"the job took the worker down {state['attempts']} times (max_attempts is {config.max_attempts})",
                hint="it may need more memory than the device has, or trip a bug: try a smaller size, or "
                     "report it with the inputs attached")

    def _prepare(self, work: WorkJob, state: dict[str, Any], config: DaemonConfig) -> tuple[Job, list]:
        from styled.config import build_job_spec, load_job_file, merge_defaults
        from styled.jobs import load_job
        from styled.plugins import make_plugin_manager, validate_job

        spec_path = work.job_dir / state["spec"]
        _check_spec_file(work, spec_path, state)
        data, lines = load_job_file(spec_path, max_bytes=config.max_spec_bytes)
        spec = build_job_spec(merge_defaults(state.get("defaults", {}), data), source=str(spec_path), lines=lines)
        check_output_name(spec.output, _output_suffixes(), str(spec_path), lines.get("output"),
                          reserved=_reserved_names())
        spec = dataclasses.replace(spec, device=self.device)
        roots = [work.job_dir, *config.library]
        library_files: list[tuple[str, Path]] = []

        def resolve(key: str, value: str) -> Path:
            path = confine(value, roots, key=key, where=str(spec_path), line=lines.get(key),
                           flat=state["kind"] == "loose")
            if not _is_within(path, work.job_dir.resolve()):
                library_files.append((value, path))
            return path

        job = load_job(spec, resolve, name=state["name"], max_pixels=config.max_image_pixels)
        # Plugin options are checked like any spec key, and their paths (an inpainting mask) go
        # through the same confinement as the job's images.
        job = validate_job(make_plugin_manager(config.plugins_dir), job, resolve, lines=lines, source=str(spec_path))
        return job, library_files

    def _write_preview(self, work: WorkJob, job: Job) -> None:
        """A feed-forward AdaIN preview in work/NAME/ before a long optimisation (about a second).

        Made in this worker's thread, on its device; skipped after a resume, when it exists.
        write_preview never raises: a preview must not fail the job.
        """
        if job.spec.method == "adain" or work.preview_path.exists():
            return
        from styled.adain import write_preview

        if write_preview(job, work.preview_path) is not None:
            log.info("preview %s -> %s", job.name, work.preview_path)

    def _render(self, work: WorkJob, state: dict[str, Any], job: Job, config: DaemonConfig) -> Result:
        from styled.engine import RenderOptions, render
        from styled.plugins import make_plugin_manager

        resume = self._load_checkpoint(work, state["name"])
        changes: dict[str, Any] = {"status": Status.RENDERING, "attempts": state.get("attempts", 0) + 1,
                                   "device": self.device, "started": state.get("started") or now_iso()}
        if resume is not None:
            point = {"scale": resume.scale_index + 1, "iteration": resume.state.iteration,
                     "iterations_done": len(resume.history) + resume.state.iteration, "at": now_iso()}
            changes["resumed_from"] = [*state.get("resumed_from", []), point]
            log.info("resuming %s from its checkpoint at scale %d, iteration %d", state["name"],
                     point["scale"], point["iteration"])
        state = work.update(**changes)  # before the render, so that a crash counts as an attempt
        self._write_preview(work, job)
        log.info("rendering %s on %s (attempt %d)", state["name"], self.device, state["attempts"])
        tracker = ProgressTracker(work, state["name"], config, self.daemon.board, self.worker)
        options = RenderOptions(on_progress=tracker, on_checkpoint=self._checkpointer(work),
                                checkpoint_seconds=config.checkpoint_seconds,
                                should_stop=self.daemon.stop.is_set, resume=resume, backbones=self.backbones())
        try:
            return render(job, make_plugin_manager(config.plugins_dir), options)
        finally:
            self.daemon.board.set(self.worker, None)

    def _load_checkpoint(self, work: WorkJob, name: str) -> Checkpoint | None:
        from styled.engine import Checkpoint

        if not work.checkpoint_path.exists():
            return None
        try:
            return Checkpoint.load(work.checkpoint_path)
        except Exception as error:  # noqa: BLE001 - a damaged checkpoint only costs the time it saved
            log.warning("ignoring the damaged checkpoint of %s (%s); starting over", name, error)
            return None

    def _checkpointer(self, work: WorkJob):
        def save(checkpoint: Checkpoint) -> None:
            checkpoint.save(work.checkpoint_path)
            work.update(checkpoint={"scale": checkpoint.scale_index + 1,
                                    "iteration": checkpoint.state.iteration, "saved": now_iso()})

        return save

    def _interrupted(self, work: WorkJob, result: Result) -> str:
        checkpoint = result.checkpoint
        if checkpoint is not None:
            checkpoint.save(work.checkpoint_path)
        state = work.state()
        # A clean stop is not a crash: give the attempt back so it does not count towards poison.
        work.update(status=Status.INTERRUPTED, attempts=max(0, state.get("attempts", 1) - 1))
        where = (f"scale {checkpoint.scale_index + 1}, iteration {checkpoint.state.iteration}"
                 if checkpoint is not None else "the start")
        log.info("interrupted %s at %s; checkpoint saved, it resumes at the next start", state["name"], where)
        self.daemon.count("interrupted")
        return "interrupted"

    def _deliver(self, work: WorkJob, job: Job, result: Result, library_files: list) -> str:
        from styled.images import save_image
        from styled.report import REPORT_FILE, build_report, write_extras, write_report

        spool = self.daemon.spool
        state = work.update(status=Status.DELIVERING, finished=now_iso())
        temporary = spool.temporary_folder(spool.config.outbox, state["name"])
        try:
            save_image(temporary / job.spec.output, result.image, alpha=result.alpha, bit_depth=job.spec.bit_depth)
            warnings = write_extras(temporary, job, result)
            spool.copy_inputs(work, temporary / "inputs")
            _copy_library_files(library_files, temporary / "inputs" / "library")
            state["delivered"] = now_iso()
            report = build_report(result, job_info(state), inputs=_input_names(job))
            if warnings:
                report["warnings"] = warnings
            write_report(temporary / REPORT_FILE, report)
            with self.daemon.lock:
                target = spool.place(temporary, spool.config.outbox, state["name"])
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        work.update(status=Status.DELIVERED, delivered=state["delivered"], delivered_to=str(target))
        spool.finish(work)
        log.info("done %s -> %s (%d iterations, %.1f s, loss %.4g)", state["name"], target,
                 result.iterations, result.seconds, result.losses.get("total", 0.0))
        self.daemon.count("delivered")
        return "delivered"

    def _fail(self, work: WorkJob, state: dict[str, Any], error: StyledError) -> str:
        spool = self.daemon.spool
        with self.daemon.lock:
            target = spool.fail(work, error.as_dict(), failure_text(state, error, spool.config.failed))
        log.error("failed %s: %s (see %s)", state["name"], error, target / "error.txt")
        self.daemon.count("failed")
        return "failed"


def _check_spec_file(work: WorkJob, spec_path: Path, state: dict[str, Any]) -> None:
    from styled.errors import JobSpecError

    if work.job_dir.is_symlink() or spec_path.is_symlink():
        raise JobSpecError("the job is a symbolic link; jobs must be real files and folders",
                           where=str(spec_path), hint="copy the job into the inbox instead of linking it")
    if state["kind"] == "folder" and not spec_path.exists():
        raise JobSpecError("the job folder has no job.yaml", where=str(spec_path),
                           hint="add job.yaml naming the content and style images, e.g. 'content: photo.jpg'")


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _output_suffixes() -> tuple[str, ...]:
    from styled.images import SAVE_FORMATS

    return tuple(SAVE_FORMATS)


def _reserved_names() -> tuple[str, ...]:
    from styled.report import LOSS_PLOT_FILE, REPORT_FILE, SHEET_FILE

    return (REPORT_FILE, SHEET_FILE, LOSS_PLOT_FILE, "inputs")


def _copy_library_files(files: list[tuple[str, Path]], destination: Path) -> None:
    for value, path in files:
        target = destination / value
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(path, target)


def _input_names(job: Job) -> dict[str, Any]:
    return {"content": job.spec.content, "style": list(job.spec.style)}


def job_info(state: dict[str, Any]) -> dict[str, Any]:
    """The ``job`` section of report.json: identity, timestamps and how many tries it took."""
    resumed = state.get("resumed_from", [])
    return {
        "id": state["id"], "name": state["name"], "kind": state["kind"], "source": state["source"],
        "device": state.get("device"), "attempts": state.get("attempts"),
        "received": state.get("received"), "claimed": state.get("claimed"), "started": state.get("started"),
        "finished": state.get("finished"), "delivered": state.get("delivered"),
        "resumed": bool(resumed), "resumed_from": resumed,
    }


def error_from_dict(data: dict[str, Any]) -> StyledError:
    """Rebuild an error saved in state.json (its kind survives in ``as_dict``)."""
    from styled import errors
    from styled import spool as spool_module

    kinds = {cls(message="").kind: cls for cls in (
        errors.JobSpecError, errors.ConfigError, errors.ImageError, errors.WeightsError, errors.DeviceError,
        errors.PluginError, errors.SpoolError, spool_module.PoisonJobError, RenderFailed)}
    cls = kinds.get(data.get("error"), errors.SpoolError)
    return cls(message=data.get("message", "unknown error"), where=data.get("file"), key=data.get("key"),
               line=data.get("line"), hint=data.get("hint"))


def public_error(error: StyledError, work: WorkJob, state: dict[str, Any]) -> StyledError:
    """The error with work/NAME/job/... paths shown as the inbox paths the user wrote."""
    where = error.where
    if where:
        try:
            relative = Path(where).relative_to(work.job_dir)
        except ValueError:
            try:
                relative = Path(where).relative_to(work.job_dir.resolve())
            except ValueError:
                relative = None
        if relative is not None:
            source = Path(state["source"])
            base = source if state["kind"] == "folder" else source.parent
            where = str(base / relative)
    return dataclasses.replace(error, where=where)


def failure_text(state: dict[str, Any], error: StyledError, failed_folder: Path) -> str:
    """error.txt: what was wrong, where, and how to fix it, for a person."""
    problem = error.message
    if error.key and problem.startswith("must "):  # a rule's message: say which key it is about
        problem = f"'{error.key}' {problem}"
    lines = [f"The job '{state['name']}' could not be rendered.", "", f"Problem: {problem}"]
    if error.location():
        lines.append(f"Where:   {error.location()}")
    if error.hint:
        lines.append(f"Fix:     {error.hint}")
    lines += ["", f"The spec and its images are in {failed_folder}/{state['name']}/inputs/, untouched: fix them",
              "and move them back into the inbox to try again.", "",
              f"(error kind: {error.kind}; job id {state['id']}; error.json has the same for programs)"]
    return "\n".join(lines) + "\n"


# --- the daemon ---------------------------------------------------------------------------------


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
        self.runner = JobRunner(daemon, device, f"{device}#{index}")

    def run(self) -> None:
        jobs = self.styled.queue
        while not self.styled.stop.is_set():
            try:
                work = jobs.get(timeout=WORKER_POLL_SECONDS)
            except queue.Empty:
                continue
            try:
                self.runner.run(work)
            except Exception:  # noqa: BLE001 - the worker must outlive any one job
                log.exception("worker %s: unexpected error on %s", self.name, work.path)
            finally:
                jobs.task_done()
                self.styled.hint.set()  # a worker is free: look for the next job now
                self.styled.wake.set()


class Daemon:
    """The watched-folder daemon. ``run()`` returns when stopped (or, with ``once``, when drained)."""

    def __init__(self, config: DaemonConfig, *, config_path: Path | None = None, once: bool = False,
                 notifier: Notifier | None = None, manage_log_level: bool = True):
        self.config = config
        self.config_path = config_path or config.source
        self.once = once
        self.notifier = notifier or Notifier()
        self.manage_log_level = manage_log_level
        self.spool = Spool(config)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.hint = threading.Event()
        self.reload_requested = threading.Event()
        self.queue: queue.Queue[WorkJob] = queue.Queue()
        self.lock = threading.Lock()
        self.board = StatusBoard()
        self.summary = RunSummary()
        self.workers: list[Worker] = []
        self._settler = Settler()
        self._first_seen: dict[Path, str] = {}
        self._incomplete_since: dict[Path, float] = {}
        self._settling: list[Path] = []  # not settled yet: the inbox is polled until they are
        self._ready: list[Path] = []  # settled, waiting for a free worker (which wakes the loop)
        self._blocked: list[Path] = []  # *.part / *.tmp files inside: still being written
        self._healthy = True

    # --- public ---

    def run(self) -> RunSummary:
        """Recover, start the workers, serve; always stop the workers and tell systemd on the way out."""
        self._apply_log_level()
        self.spool.ensure_folders()
        with SpoolLock(self.config.work):
            import styled.engine  # noqa: F401 - load TensorFlow before READY=1, not in the first job

            check_plugins_and_library(self.config)
            self._recover()
            self._start_workers()
            try:
                with self._signals():
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

    # --- lifecycle ---

    def _serve(self) -> None:
        from watchdog.observers import Observer

        observer = Observer()
        observer.schedule(InboxEvents(self.hint, self.wake), str(self.config.inbox), recursive=True)
        with observer:
            log.info("watching %s with %d worker(s) on %s", self.config.inbox, len(self.workers),
                     ", ".join(self.config.devices))
            self.notifier.ready(self._status_line())
            self._loop(observer)

    def _recover(self) -> None:
        for work in self.spool.recover():
            log.info("recovered %s from %s; it will %s", work.name, work.path,
                     "resume from its checkpoint" if work.checkpoint_path.exists() else "start")
            self.queue.put(work)

    def _start_workers(self) -> None:
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
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
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
                self._scan_safely(now)
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
        with self.queue.mutex:
            return self.queue.unfinished_tasks

    def _drained(self) -> bool:
        if self._settling or self._ready or self._outstanding():
            return False
        for path in self._blocked:
            log.warning("leaving %s in the inbox: files in it are still being written (*.part, *.tmp)", path)
        return True

    def _scan_safely(self, now: float) -> None:
        try:
            self._scan(now)
        except OSError as error:  # the inbox vanished, a disk error: log, and try again next time
            log.error("could not scan %s: %s", self.config.inbox, error)

    def _scan(self, now: float) -> None:
        config = self.config
        free = self._free_workers()
        settling, ready_waiting, blocked, seen = [], [], [], set()
        for pending in scan_inbox(config.inbox):
            ready = readiness(pending, config)
            seen.update(ready.files)
            seen.add(pending.path)
            if pending.path not in self._first_seen:
                self._first_seen[pending.path] = now_iso()
                log.info("received %s (%s)", pending.path.name, "job folder" if pending.kind == "folder"
                         else "loose spec")
            still = self._settler.observe(ready.files, now)
            if ready.writing:
                blocked.append(pending.path)
            elif still < config.settle_seconds or not self._complete_or_given_up(pending.path, ready, now):
                settling.append(pending.path)
            elif free <= 0:
                ready_waiting.append(pending.path)
            elif self._claim(pending):
                free -= 1
        self._settler.forget_except(seen)
        for mapping in (self._first_seen, self._incomplete_since):
            for path in [p for p in mapping if p not in seen]:
                del mapping[path]
        self._settling, self._ready, self._blocked = settling, ready_waiting, blocked

    def _complete_or_given_up(self, path: Path, ready: Any, now: float) -> bool:
        """All referenced files are there, or they have been missing for missing_file_seconds
        (in --once mode nobody is still writing, so at once): the job is then claimed, and fails."""
        if not ready.missing:
            self._incomplete_since.pop(path, None)
            return True
        if self.once:
            return True
        since = self._incomplete_since.setdefault(path, now)
        if now - since >= self.config.missing_file_seconds:
            return True
        return False

    def _claim(self, pending: Any) -> bool:
        try:
            work = self.spool.claim(pending, received=self._first_seen.get(pending.path))
        except OSError as error:
            log.error("could not claim %s: %s", pending.path, error)
            return False
        if work is None:
            return False
        log.info("claimed %s -> %s", pending.path.name, work.path)
        self.queue.put(work)
        return True

    def _free_workers(self) -> int:
        return sum(1 for worker in self.workers if worker.is_alive()) - self._outstanding()

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
        jobs = self.board.lines()
        waiting = len(self._settling) + len(self._ready) + len(self._blocked) + self.queue.qsize()
        counts = f"{waiting} waiting, {self.summary.delivered} delivered, {self.summary.failed} failed"
        return f"{'; '.join(jobs)}; {counts}" if jobs else f"idle; {counts}"

    # --- reload ---

    def _reload(self) -> None:
        self.reload_requested.clear()
        self.notifier.reloading()
        path = self.config_path
        try:
            new = load_daemon_config(path)
            check_plugins_and_library(new)
        except StyledError as error:
            log.error("reload: %s; keeping the old config", error)
        else:
            self._apply(new)
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
        self._apply_log_level()

    def _apply_log_level(self) -> None:
        if self.manage_log_level:
            logging.getLogger("styled").setLevel(self.config.log_level)


def check_plugins_and_library(config: DaemonConfig) -> None:
    """Load ``plugins_dir`` once, so that a broken plugin stops the start (or the reload) rather
    than failing every job; warn about library folders that are not there (yet)."""
    from styled.plugins import make_plugin_manager

    make_plugin_manager(config.plugins_dir)
    for folder in config.library:
        if not folder.is_dir():
            log.warning("library folder %s does not exist; jobs cannot use its images", folder)


def config_changes(old: DaemonConfig, new: DaemonConfig) -> dict[str, tuple[Any, Any]]:
    """{key: (old, new)} for every setting that differs (the file's path excluded)."""
    before, after = old.to_dict(), new.to_dict()
    return {key: (before[key], after[key]) for key in before if key != "source" and before[key] != after[key]}
