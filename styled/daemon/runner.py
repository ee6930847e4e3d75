"""Taking one claimed job from work/ to the outbox or failed/, on one device.

The daemon knows the engine only through ``render()`` and its types; the plugins through the
manager. Every failure inside a job becomes that job's failure, never the worker's.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from styled.daemon.config import DaemonConfig
from styled.daemon.failure import failure_text, left_out_notes, public_error
from styled.daemon.inbox import FOLDER, LOOSE
from styled.daemon.jobqueue import device_matches
from styled.daemon.limits import apply_limits
from styled.daemon.paths import check_output_name, confine, is_inside
from styled.daemon.control import cancelled_error, is_cancel_pending
from styled.daemon.spool import INPUTS_DIR, LATEST_SIDE, LIBRARY_INPUTS_DIR, RESUME_FILE, Spool, WorkJob
from styled.daemon.state import JobState, Status, now_iso
from styled.engine.types import Checkpoint, Progress, RenderOptions, Result, clock
from styled.errors import (
    JobSpecError,
    SpoolError,
    PoisonJobError,
    RenderFailed,
    StyledError,
    error_from_dict,
)
from styled.io.files import LeftOut, atomic_write_json
from styled.video import VIDEO_SUFFIXES, is_clip, video_output_name

if TYPE_CHECKING:  # pragma: no cover
    from styled.engine.job import Job
    from styled.video.render import ClipJob, ClipResult

log = logging.getLogger(__name__)

#: work/NAME/frames/: a clip's finished frames (styled.video.store), kept until it is delivered.
FRAMES_STORE_DIR = "frames"
DELIVERED, FAILED, INTERRUPTED, SKIPPED, ABANDONED = "delivered", "failed", "interrupted", "skipped", "abandoned"


class StatusBoard:
    """Thread-safe map of worker -> one-line description of its job (systemd's STATUS=, logs)."""

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


@dataclass(frozen=True)
class RunnerContext:
    """What a runner needs of the daemon: its current config, the spool, the stop flag, the board."""

    config: Callable[[], DaemonConfig]
    spool: Spool
    stop: threading.Event
    board: StatusBoard
    count: Callable[[str], None]
    #: The share of this machine's free memory one render may plan for (``max_memory: auto``).
    memory_share: float = 1.0


def percent_done(progress: Progress) -> float:
    """Overall progress: from the ETA when the engine has one, else from the iteration counts."""
    if progress.eta is not None and progress.elapsed + progress.eta > 0:
        return 100.0 * progress.elapsed / (progress.elapsed + progress.eta)
    within = progress.fraction / progress.iterations if progress.iterations else 1.0
    in_frame = ((progress.scale - 1) + within) / max(progress.scales, 1)
    if progress.frames:
        return 100.0 * ((progress.frame - 1) + in_frame) / progress.frames
    return 100.0 * in_frame


class ProgressTracker:
    """``on_progress`` for one job: progress.json every few seconds, a log line every N%."""

    def __init__(self, work: WorkJob, name: str, config: DaemonConfig, board: StatusBoard, worker: str):
        self.work, self.name, self.config, self.board, self.worker = work, name, config, board, worker
        self._last_write = -float("inf")
        self._last_bucket = 0

    def __call__(self, progress: Progress) -> None:
        percent = percent_done(progress)
        tile = f", tile {progress.tile}/{progress.tiles}" if progress.tiles else ""
        frame = f"frame {progress.frame}/{progress.frames}, " if progress.frames else ""
        summary = (f"{frame}scale {progress.scale}/{progress.scales}, iteration {progress.iteration}/"
                   f"{progress.iterations}{tile}, {percent:.0f}%, {progress.loss_text() or 'loss —'}, "
                   f"ETA {clock(progress.eta)}")
        self.board.set(self.worker, f"{self.name}: {summary}")
        now = time.monotonic()
        final = (progress.scale == progress.scales and progress.iteration == progress.iterations
                 and progress.frame == progress.frames)
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
            "iterations": progress.iterations, "tile": progress.tile, "tiles": progress.tiles, "done": progress.done,
            "loss": progress.loss if math.isfinite(progress.loss) else None, "terms": dict(progress.terms),
            "percent": round(percent, 1), "elapsed": round(progress.elapsed, 3),
            "eta": None if progress.eta is None else round(progress.eta, 3), "updated": now_iso(),
            "frame": progress.frame, "frames": progress.frames,
        })


@dataclass(frozen=True)
class Prepared:
    """A validated job, ready to render, and the library files it used (delivered with it)."""

    job: Job
    library_files: tuple[tuple[str, Path], ...]
    #: What the daemon changed (limits clamped), for the report's warnings.
    notes: tuple[str, ...] = ()
    #: A job whose content is a clip (docs/video.md); ``job`` is then its first frame's.
    clip: ClipJob | None = None


class JobRunner:
    """Takes one claimed job from work/ to the outbox or failed/, on one device."""

    def __init__(self, context: RunnerContext, device: str, worker: str):
        self.context, self.device, self.worker = context, device, worker
        #: What this worker's renders left with TensorFlow, for the next render's memory plan.
        self.held_memory = 0

    @functools.cached_property
    def backbones(self) -> Callable[..., Any]:
        """This worker's memoised weight loader: jobs after the first skip reading the weights."""
        from styled.nets.weights import load_backbone

        return functools.cache(load_backbone)

    def run(self, work: WorkJob) -> str:
        """Render and deliver; return #: work/NAME/frames/: a clip's finished frames (styled.video.store), kept until it is delivered.
FRAMES_STORE_DIR = "frames"
DELIVERED, FAILED, INTERRUPTED, SKIPPED or ABANDONED."""
        try:
            state = work.state()
        except (OSError, ValueError, TypeError):
            return self._abandoned(work)
        try:
            if state.status == Status.FAILING and state.error:
                return self._fail(work, state, error_from_dict(dict(state.error)))
            if state.status in (Status.RENDERED, Status.DELIVERING) and work.result_dir.is_dir():
                return publish_rendered(self.context.spool, work, self.context.count)
            self._check_claim(state)
            if is_cancel_pending(work):  # cancelled after the claim, before any worker took it
                return self._fail(work, state, cancelled_error(work))
            state = self._begin_attempt(work, state)
            prepared = self._prepare(work, state)
            if self.context.stop.is_set():
                work.update(status=Status.QUEUED, attempts=max(0, state.attempts - 1))
                return SKIPPED
            result = self._render(work, state, prepared)
        except StyledError as error:
            return self._fail(work, state, public_error(error, work, state))
        except Exception as error:  # noqa: BLE001 - one job's bug must not take the worker down
            if not work.path.exists():
                return self._abandoned(work)
            log.exception("render of %s raised", state.name)
            return self._fail(work, state, RenderFailed(
                f"the render failed: {type(error).__name__}: {error}",
                hint="this is a bug or the device ran out of memory; try a smaller size, or report it "
                     "with the inputs attached"))
        if result.interrupted:
            return self._interrupted(work, result)
        return self._deliver_or_fail(work, state, prepared, result)

    def _check_claim(self, state: JobState) -> None:
        config = self.context.config()
        if state.claim_error:
            raise error_from_dict(dict(state.claim_error))
        if state.strikes >= config.max_attempts:
            raise PoisonJobError(
                f"the job took the worker down {state.strikes} times in a row without making progress "
                f"(max_attempts is {config.max_attempts})",
                hint="it may need more memory than the device has, or trip a bug: try a smaller size, or "
                     "report it with the inputs attached")

    def _begin_attempt(self, work: WorkJob, state: JobState) -> JobState:
        """Record the attempt before anything of the job is read, so that a crash anywhere in it,
        parsing included, is seen by the next start (docs/daemon.md, "Poison jobs")."""
        return work.update(status=Status.PREPARING, attempts=state.attempts + 1, device=self.device,
                           worker=self.worker, started=state.started or now_iso())

    def _abandoned(self, work: WorkJob) -> str:
        log.warning("the work folder %s was removed while its job ran; the job is abandoned", work.path)
        self.context.count(FAILED)
        return ABANDONED

    def _prepare(self, work: WorkJob, state: JobState) -> Prepared:
        from styled.engine.job import load_job
        from styled.engine.spec import build_job_spec, load_job_file
        from styled.plugins.manager import make_plugin_manager, validate_job
        from styled.settings.sources import merge_defaults

        config = self.context.config()
        spec_path = work.job_dir / state.spec
        _check_spec_file(work, spec_path, state)
        data, lines = load_job_file(spec_path, max_bytes=config.max_spec_bytes)
        spec = build_job_spec(merge_defaults(state.defaults, data), source=str(spec_path), lines=lines)
        roots = [work.job_dir, *config.library]
        clip = spec.content is not None and is_clip(confine(spec.content, roots, key="content", where=str(spec_path),
                                                            line=lines.get("content"), flat=state.kind == LOOSE))
        output = video_output_name(spec.output, Path(spec.content)) if clip else spec.output
        check_output_name(output, VIDEO_SUFFIXES if clip else _output_suffixes(), str(spec_path),
                          lines.get("output"), reserved=_reserved_names())
        self._check_device(spec.device, str(spec_path), lines.get("device"))
        spec, notes = apply_limits(spec, config, source=str(spec_path), lines=lines)
        spec = dataclasses.replace(spec, device=self.device)
        library_files: list[tuple[str, Path]] = []

        left_out = {item["path"]: LeftOut(**item) for item in state.left_out}

        def resolve(key: str, value: str) -> Path:
            if value in left_out:
                raise SpoolError(f"{value!r} is {left_out[value].describe().split(': ', 1)[1]}, which styled does "
                                 "not read", where=str(spec_path), key=key, line=lines.get(key),
                                 hint="put the file itself into the job (links outside the folders a job may "
                                      "read, pipes and devices are never followed)")
            path = confine(value, roots, key=key, where=str(spec_path), line=lines.get(key),
                           flat=state.kind == LOOSE)
            if not is_inside(path, work.job_dir.resolve()):
                library_files.append((value, path))
            return path

        if clip:
            return self._prepare_clip(spec, resolve, state, config, (lines, str(spec_path)), library_files, notes)
        job = load_job(spec, resolve, name=state.name, max_pixels=config.max_image_pixels)
        # Plugin options are checked like any spec key, and their paths (an inpainting mask) go
        # through the same confinement as the job's images.
        job = validate_job(make_plugin_manager(config.plugins_dir), job, resolve, lines=lines, source=str(spec_path))
        return Prepared(job, tuple(library_files), tuple(notes))

    def _prepare_clip(self, spec, resolve, state: JobState, config: DaemonConfig, origin: tuple[dict, str],
                      library_files: list[tuple[str, Path]], notes: list[str]) -> Prepared:
        """A clip: opened and checked (frames, size, frame rate, audio) before anything renders."""
        from styled.plugins.manager import make_plugin_manager, validate_job
        from styled.video import require_video_libraries

        require_video_libraries()
        from styled.video.render import load_clip_job

        lines, source = origin
        clip_job = load_clip_job(spec, resolve, name=state.name, max_pixels=config.max_image_pixels,
                                 max_frames=config.max_video_frames)
        clip_job.check_output(Path(clip_job.output_name()))
        job = validate_job(make_plugin_manager(config.plugins_dir), clip_job.job, resolve, lines=lines, source=source)
        return Prepared(job, tuple(library_files), tuple(notes), clip=dataclasses.replace(clip_job, job=job))

    def _check_device(self, wanted: str, where: str, line: int | None) -> None:
        if not device_matches(wanted, self.device):
            devices = ", ".join(self.context.config().devices)
            raise JobSpecError(f"device '{wanted}' is not one of this daemon's devices ({devices})", where=where,
                               key="device", line=line,
                               hint="leave 'device' out to take any, or ask the operator to add it to 'devices'")

    def _write_preview(self, work: WorkJob, job: Job) -> None:
        """A feed-forward AdaIN preview in work/NAME/ before a long optimisation (about a second).

        Made in this worker's thread, on its device; skipped after a resume, when it exists.
        write_preview never raises: a preview must not fail the job.
        """
        if job.spec.method == "adain" or work.preview_path.exists():
            return
        from styled.engine.adain import write_preview

        if write_preview(job, work.preview_path) is not None:
            log.info("preview %s -> %s", job.name, work.preview_path)

    def _render(self, work: WorkJob, state: JobState, prepared: Prepared) -> Result | ClipResult:
        from styled.engine.memory import largest_network
        from styled.engine.render import render
        from styled.plugins.manager import make_plugin_manager

        config = self.context.config()
        job = prepared.job
        resume = None if prepared.clip else self._load_checkpoint(work, state.name, job)
        point = self._resume_point(work, prepared, resume)
        changes: dict[str, Any] = {"status": Status.RENDERING}
        if point is not None:
            changes["resumed_from"] = (*state.resumed_from, point)
            log.info("resuming %s from %s", state.name, describe_point(point))
        state = work.update(**changes)  # before the render, so that a crash counts as an attempt
        if not self.context.stop.is_set():
            self._write_preview(work, job)
        log.info("rendering %s on %s (attempt %d)", state.name, self.device, state.attempts)
        tracker = ProgressTracker(work, state.name, config, self.context.board, self.worker)
        options = RenderOptions(on_progress=tracker, on_checkpoint=self._checkpointer(work),
                                checkpoint_seconds=config.checkpoint_seconds,
                                should_stop=lambda: self.context.stop.is_set() or is_cancel_pending(work),
                                resume=resume, backbones=self.backbones,
                                memory_share=self.context.memory_share, scratch=work.path,
                                held_memory=self.held_memory)
        try:
            if prepared.clip is not None:
                from styled.video.render import render_clip

                return render_clip(prepared.clip, make_plugin_manager(config.plugins_dir), _frame_store(work), options)
            result = render(job, make_plugin_manager(config.plugins_dir), options)
            self.held_memory = max(self.held_memory, largest_network(result.memory))
            return result
        finally:
            self.context.board.set(self.worker, None)

    def _resume_point(self, work: WorkJob, prepared: Prepared, resume: Checkpoint | None) -> dict[str, Any] | None:
        """Where this attempt picks up: a checkpoint's scale and iteration, or a clip's first unfinished frame."""
        if prepared.clip is not None:
            from styled.video.render import fingerprint

            finished = _frame_store(work).open(fingerprint(prepared.clip))
            return {"frame": finished + 1, "at": now_iso()} if finished else None
        if resume is None:
            return None
        return {"scale": resume.scale_index + 1, "iteration": resume.state.iteration,
                "iterations_done": len(resume.history) + resume.state.iteration, "at": now_iso()}

    def _load_checkpoint(self, work: WorkJob, name: str, job: Job) -> Checkpoint | None:
        """The checkpoint this job resumes from: its own, or for a retried job the one it brought
        (job/resume-checkpoint.npz); None, with a warning, when it is damaged or does not fit the
        job (a retry with another size)."""
        brought = work.job_dir / RESUME_FILE
        if not work.checkpoint_path.exists() and brought.is_file() and not brought.is_symlink():
            shutil.copyfile(brought, work.checkpoint_path)
        if not work.checkpoint_path.exists():
            return None
        try:
            checkpoint = Checkpoint.load(work.checkpoint_path)
        except Exception as error:  # noqa: BLE001 - a damaged checkpoint only costs the time it saved
            log.warning("ignoring the damaged checkpoint of %s (%s); starting over", name, error)
            return None
        if not fits(checkpoint, job):
            log.warning("ignoring the checkpoint of %s: it was made for another size or scale; starting over", name)
            return None
        return checkpoint

    def _checkpointer(self, work: WorkJob) -> Callable[[Checkpoint], None]:
        def save(checkpoint: Checkpoint) -> None:
            checkpoint.save(work.checkpoint_path)
            save_latest_image(checkpoint, work.latest_path)
            work.update(checkpoint={"scale": checkpoint.scale_index + 1, "iteration": checkpoint.state.iteration,
                                    "done": len(checkpoint.history) + checkpoint.state.iteration,
                                    "saved": now_iso()})

        return save

    def _interrupted(self, work: WorkJob, result: Result | ClipResult) -> str:
        checkpoint = getattr(result, "checkpoint", None)
        if checkpoint is not None:
            checkpoint.save(work.checkpoint_path)
        state = work.state()
        if is_cancel_pending(work):
            return self._fail(work, state, cancelled_error(work))
        # A clean stop is not a crash: give the attempt back so it does not count towards poison.
        work.update(status=Status.INTERRUPTED, attempts=max(0, state.attempts - 1))
        if checkpoint is not None:
            where = f"scale {checkpoint.scale_index + 1}, iteration {checkpoint.state.iteration}; checkpoint saved"
        elif hasattr(result, "records"):
            where = f"frame {len(result.records) + 1}; the finished frames are kept"
        else:
            where = "the start"
        log.info("interrupted %s at %s; it resumes at the next start", state.name, where)
        self.context.count(INTERRUPTED)
        return INTERRUPTED

    def _deliver_or_fail(self, work: WorkJob, state: JobState, prepared: Prepared, result: Result) -> str:
        try:
            return self._deliver(work, prepared, result)
        except StyledError as error:
            return self._fail(work, work.state(), public_error(error, work, state))
        except Exception as error:  # noqa: BLE001 - e.g. the outbox's disk is full
            log.exception("delivery of %s failed", state.name)
            return self._fail(work, work.state(), RenderFailed(
                f"the result could not be delivered: {type(error).__name__}: {error}",
                where=str(self.context.config().outbox), hint="check the outbox's free space and permissions"))

    def _deliver(self, work: WorkJob, prepared: Prepared, result: Result) -> str:
        spool = self.context.spool
        state = work.update(status=Status.DELIVERING, finished=now_iso())
        delivered = now_iso()
        target = spool.publish(spool.config.outbox, state.name,
                               lambda folder: self.fill(folder, work, state.but(delivered=delivered), prepared, result))
        work.update(status=Status.DELIVERED, delivered=delivered, delivered_to=str(target))
        spool.finish(work)
        log.info("done %s -> %s (%d iterations, %.1f s, loss %.4g)", state.name, target,
                 result.iterations, result.seconds, result.losses.get("total", 0.0))
        self.context.count(DELIVERED)
        return DELIVERED

    def fill(self, folder: Path, work: WorkJob, state: JobState, prepared: Prepared, result: Result) -> None:
        """Write what a delivery holds into ``folder``: the result, report.json, the sheet, the loss
        plot and inputs/."""
        from styled.io.images import save_image
        from styled.report import REPORT_FILE, build_report, write_extras, write_report

        job = prepared.job
        if prepared.clip is not None:
            notes = self._fill_clip(folder, prepared, result)
        else:
            save_image(folder / job.spec.output, result.image, alpha=result.alpha, bit_depth=job.spec.bit_depth)
            notes = write_extras(folder, job, result)
        warnings = [*prepared.notes, *left_out_notes(state), *notes]
        self.context.spool.copy_inputs(work, folder / INPUTS_DIR)
        _copy_library_files(prepared.library_files, folder / INPUTS_DIR / LIBRARY_INPUTS_DIR)
        report = build_report(result, job_info(state), inputs=_input_names(job))
        warnings = [*report.get("warnings", []), *warnings]
        if warnings:
            report["warnings"] = warnings
        write_report(folder / REPORT_FILE, report)

    @staticmethod
    def _fill_clip(folder: Path, prepared: Prepared, result: ClipResult) -> list[str]:
        """The clip (audio copied), ``frames/`` when asked for, a sheet of the first frame, and the
        loss and temporal error per frame."""
        from styled.report import write_clip_extras
        from styled.video.render import FRAMES_DIR, write_result

        clip = prepared.clip
        frames = folder / FRAMES_DIR if clip.spec.frames else None
        notes = write_result(result, folder / clip.output_name(), frames)
        return notes + write_clip_extras(folder, clip.job, result.store.load(0), result.records)

    def _fail(self, work: WorkJob, state: JobState, error: StyledError) -> str:
        if not work.path.exists():
            return self._abandoned(work)
        return fail_job(self.context.spool, work, state, error, self.context.count)


def fail_job(spool: Spool, work: WorkJob, state: JobState, error: StyledError, count: Callable[[str], None]) -> str:
    """Move a job to failed/NAME with error.txt saying what is wrong, where and how to fix it."""
    target = spool.fail(work, error.as_dict(), failure_text(state, error, spool.config.failed))
    log.error("failed %s: %s (see %s)", state.name, error, target / "error.txt")
    count(FAILED)
    return FAILED


def publish_rendered(spool: Spool, work: WorkJob, count: Callable[[str], None]) -> str:
    """Deliver a job a cluster worker rendered (work/NAME/result/) to the outbox."""
    state, target = spool.publish_rendered(work)
    log.info("done %s -> %s (rendered by %s)", state.name, target, state.worker)
    count(DELIVERED)
    return DELIVERED


def save_latest_image(checkpoint: Checkpoint, path: Path) -> None:
    """The checkpoint's image as a small PNG beside it, for the web page; a failure is only logged."""
    import numpy as np

    from styled.io.images import resize_long_side, save_image

    try:
        pixels = np.asarray(checkpoint.state.image, dtype=np.float32).reshape(checkpoint.state.image.shape[-3:])
        if max(pixels.shape[:2]) > LATEST_SIDE:  # first, so that a print-size image is not copied whole
            pixels = resize_long_side(pixels, LATEST_SIDE)
        save_image(path, np.clip(pixels, 0.0, 1.0))
    except (OSError, ValueError, StyledError) as error:
        log.warning("could not write %s (%s)", path, error)


def fits(checkpoint: Checkpoint, job: Job) -> bool:
    """Whether a checkpoint belongs to a render of this job's size: its scale exists and its image
    has that scale's shape."""
    sizes = job.spec.scale_sizes()
    if not 0 <= checkpoint.scale_index < len(sizes):
        return False
    return tuple(checkpoint.state.image.shape[:2]) == job.output_shape(sizes[checkpoint.scale_index])


def _frame_store(work: WorkJob):
    """Where a clip's finished frames are kept between attempts (work/NAME/frames/)."""
    from styled.video.store import FrameStore

    return FrameStore(work.path / FRAMES_STORE_DIR)


def describe_point(point: dict[str, Any]) -> str:
    if "frame" in point:
        return f"frame {point['frame']} (the frames before it are finished)"
    return f"its checkpoint at scale {point['scale']}, iteration {point['iteration']}"


def _check_spec_file(work: WorkJob, spec_path: Path, state: JobState) -> None:
    if work.job_dir.is_symlink() or spec_path.is_symlink():
        raise JobSpecError("the job is a symbolic link; jobs must be real files and folders",
                           where=str(spec_path), hint="copy the job into the inbox instead of linking it")
    if state.kind == FOLDER and not spec_path.exists():
        raise JobSpecError("the job folder has no job.yaml", where=str(spec_path),
                           hint="add job.yaml naming the content and style images, e.g. 'content: photo.jpg'")


def _output_suffixes() -> tuple[str, ...]:
    from styled.io.images import SAVE_FORMATS

    return tuple(SAVE_FORMATS)


def _reserved_names() -> tuple[str, ...]:
    from styled.report import LOSS_PLOT_FILE, REPORT_FILE, SHEET_FILE

    return (REPORT_FILE, SHEET_FILE, LOSS_PLOT_FILE, INPUTS_DIR)


def _copy_library_files(files: tuple[tuple[str, Path], ...], destination: Path) -> None:
    for value, path in files:
        target = destination / value
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copy2(path, target)


def _input_names(job: Job) -> dict[str, Any]:
    return {"content": job.spec.content, "style": list(job.spec.style)}


def job_info(state: JobState) -> dict[str, Any]:
    """The ``job`` section of report.json: identity, timestamps and how many tries it took."""
    return {
        "id": state.id, "name": state.name, "kind": state.kind, "source": state.source,
        "device": state.device, "worker": state.worker, "attempts": state.attempts,
        "received": state.received, "claimed": state.claimed, "started": state.started,
        "finished": state.finished, "delivered": state.delivered,
        "resumed": bool(state.resumed_from), "resumed_from": [dict(point) for point in state.resumed_from],
    }
