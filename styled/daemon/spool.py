"""The spool: inbox -> work -> outbox | failed, with nothing lost, doubled or half-delivered.

Layout (each folder from the daemon config)::

    inbox/NAME/job.yaml + images     a job folder
    inbox/NAME.yaml                  a loose spec naming images that lie in the inbox
    work/NAME/state.json             the job's life (styled.daemon.state.JobState)
    work/NAME/job/                   the claimed spec and inputs, untouched
    work/NAME/progress.json          scale, iteration, loss, ETA
    work/NAME/preview.png            a quick AdaIN rendering, written within seconds of the claim
    work/NAME/checkpoint.npz         where a restart resumes
    work/NAME/latest.png             the checkpoint's image, at most 768 px, for the web page
    work/NAME/result/                what a cluster worker rendered, for the daemon to publish
    work/NAME/lease                  held (flock) by the cluster worker rendering the job
    work/NAME/stop                   the daemon asks that worker to checkpoint and stop
    work/NAME/cancel                 the job was cancelled: its render stops and it fails (control.py)
    outbox/NAME/                     result, report.json, sheet.png, loss.png, inputs/
    failed/NAME/                     error.txt, error.json, inputs/, checkpoint.npz (to resume from)

Every move that a reader may see is one rename: the claim (inbox -> work), the delivery (a finished
staged folder -> outbox or failed). state.json records each step *before* it is taken, so that
:meth:`Spool.recover` can finish or undo whatever a crash interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from styled.daemon.config import DaemonConfig
from styled.daemon.inbox import (
    LOOSE,
    Pending,
    PluginFiles,
    cached_references,
    read_spec_leniently,
    scan_inbox,
    spec_priority,
    spec_references,
)
from styled.daemon.paths import UNNAMED, confine, is_inside, job_name
from styled.daemon.state import JobState, Status, now_iso, read_state, write_state
from styled.errors import SpoolError, error_from_dict
from styled.io.files import (
    LeftOut,
    atomic_write_json,
    copy_regular_file,
    copy_regular_tree,
    atomic_write_text,
    fsync_path,
    is_temporary,
    make_folder,
    numbered,
    place_folder,
    remove_folder,
    staged_folder,
)

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
PROGRESS_FILE = "progress.json"
PREVIEW_FILE = "preview.png"
#: The image of the latest checkpoint, small, for the web page (the checkpoint itself is float data).
LATEST_FILE = "latest.png"
#: Long side of latest.png: enough for a page, cheap to write at every checkpoint of a print-size render.
LATEST_SIDE = 768
CHECKPOINT_FILE = "checkpoint.npz"
RESULT_DIR = "result"
LEASE_FILE = "lease"
STOP_FILE = "stop"
CANCEL_FILE = "cancel"
#: A retried job's checkpoint, among its inputs in the inbox: the render resumes from it.
RESUME_FILE = "resume-checkpoint.npz"
JOB_DIR = "job"
DROP_DIR = "drop"
INPUTS_DIR = "inputs"
#: Library images a job used are delivered under inputs/LIBRARY_INPUTS_DIR/.
LIBRARY_INPUTS_DIR = "library"
ERROR_TEXT_FILE = "error.txt"
ERROR_JSON_FILE = "error.json"
REPORT_JSON_FILE = "report.json"
#: A finished job's work folder is renamed to this prefix before it is removed, so removal is atomic.
DONE_PREFIX = ".done-"


@dataclass(frozen=True)
class WorkJob:
    """A claimed job: ``work/NAME/``."""

    path: Path

    @property
    def state_path(self) -> Path:
        return self.path / STATE_FILE

    @property
    def job_dir(self) -> Path:
        return self.path / JOB_DIR

    @property
    def drop_dir(self) -> Path:
        """Where the claim's rename puts the inbox entry, until it is copied into job/."""
        return self.path / DROP_DIR

    @property
    def progress_path(self) -> Path:
        return self.path / PROGRESS_FILE

    @property
    def preview_path(self) -> Path:
        return self.path / PREVIEW_FILE

    @property
    def latest_path(self) -> Path:
        return self.path / LATEST_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def result_dir(self) -> Path:
        """A cluster worker's finished delivery (result, report, sheet, loss plot, inputs)."""
        return self.path / RESULT_DIR

    @property
    def lease_path(self) -> Path:
        return self.path / LEASE_FILE

    @property
    def stop_path(self) -> Path:
        return self.path / STOP_FILE

    @property
    def cancel_path(self) -> Path:
        return self.path / CANCEL_FILE

    @property
    def name(self) -> str:
        """The job's name, from its state (the folder's name when state.json cannot be read)."""
        try:
            return self.state().name
        except (OSError, ValueError, TypeError):
            return self.path.name

    def state(self) -> JobState:
        return read_state(self.state_path)

    def save_state(self, state: JobState) -> JobState:
        write_state(self.state_path, state)
        return state

    def update(self, **changes: Any) -> JobState:
        """Read, change and atomically rewrite state.json; return the new state."""
        return self.save_state(self.state().but(**changes))


class Spool:
    """The four folders and the moves between them. Claims happen on one thread; deliveries from
    several workers may run at once (placing a folder takes the spool's own lock)."""

    def __init__(self, config: DaemonConfig, plugin_files: PluginFiles | None = None):
        self.config = config
        #: Which plugin options name files, so that a loose spec's masks come with it.
        self.plugin_files = plugin_files
        self._placing = threading.Lock()

    # --- set-up and recovery ---

    def ensure_folders(self) -> None:
        """Create missing folders; refuse spool folders on different filesystems (rename would fail)."""
        devices = {}
        for key, folder in self.config.folders().items():
            try:
                folder.mkdir(parents=True, exist_ok=True)
                devices[key] = folder.stat().st_dev
            except OSError as error:
                raise SpoolError(f"cannot create the {key} folder: {error.strerror}", where=str(folder),
                                 key=key, hint="check the path and its permissions") from None
        if devices["inbox"] != devices["work"]:
            raise SpoolError("inbox and work are on different filesystems, so a claim cannot be one rename",
                             where=str(self.config.source or ""), key="work",
                             hint="put the work folder on the same filesystem as the inbox")

    def recover(self) -> list[WorkJob]:
        """Finish or undo what a crash interrupted; return the jobs still to render, oldest first."""
        self._remove_temporaries()
        jobs = []
        for path in sorted(self.config.work.iterdir(), key=_path_mtime):
            if path.name.startswith(DONE_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_dir() and not path.name.startswith("."):
                try:
                    job = self.recover_one(WorkJob(path))
                except Exception as error:  # noqa: BLE001 - one damaged folder must not stop the start
                    log.error("cannot recover %s (%s: %s); the next rescan tries again", path,
                              type(error).__name__, error)
                    continue
                if job is not None:
                    jobs.append(job)
        return jobs

    def _remove_temporaries(self) -> None:
        for folder in (self.config.outbox, self.config.failed):
            _remove_temporaries(folder, "a delivery that a crash interrupted")

    def recover_one(self, job: WorkJob) -> WorkJob | None:
        """Finish or undo what happened to one work folder; return it if it is still to render."""
        try:
            state = job.state()
        except (OSError, ValueError, TypeError):
            if not os.path.lexists(job.job_dir):
                log.info("removing %s: a claim that never happened", job.path)
                shutil.rmtree(job.path, ignore_errors=True)
            else:  # state.json is written before the claim's rename, so this is outside tampering
                log.error("%s has no readable %s; leaving it for a person to look at", job.path, STATE_FILE)
            return None
        if state.status == Status.CLAIMING:
            return self._recover_claim(job, state)
        self._release_loose_images(state.release)
        if state.status in CRASHED_IN and self.config.cluster is None:
            # With a cluster, the render may still be running on a worker: the worker that next
            # holds the job's lease judges the crash (styled.daemon.cluster_worker).
            state = job.save_state(after_crash(state, progress_done(job, state)))
        if state.status in (Status.DELIVERING, Status.DELIVERED) and self.find_delivered(self.config.outbox, state):
            log.info("%s was already delivered; cleaning up", state.name)
            self.finish(job)
            return None
        if state.status in (Status.FAILING, Status.FAILED) and self.find_delivered(self.config.failed, state):
            self.finish(job)
            return None
        return job

    def _recover_claim(self, job: WorkJob, state: JobState) -> WorkJob | None:
        """A crash during a claim: finish it if the entry was taken, else forget it."""
        if not os.path.lexists(job.job_dir) and not os.path.lexists(job.drop_dir):
            log.info("removing %s: a claim that never happened", job.path)
            shutil.rmtree(job.path, ignore_errors=True)
            return None
        _remove_temporaries(job.path)
        return self._copy_claimed(job)

    def find_delivered(self, folder: Path, state: JobState) -> Path | None:
        """The outbox (or failed) folder holding this job id, if a delivery got that far."""
        pattern = re.compile(rf"^{re.escape(state.name)}(-\d+)?$")
        for path in folder.iterdir():
            if pattern.match(path.name) and delivered_id(path) == state.id:
                return path
        return None

    # --- claiming ---

    def claim(self, pending: Pending, received: str | None = None) -> WorkJob | None:
        """Take a settled inbox entry with one rename, then copy what it holds; None when it vanished.

        The rename makes the claim atomic (the entry is in the inbox or in work/, never both). The
        job is then rendered only from a copy the daemon made: regular files, opened without
        following links, so that nothing the user does to the entry afterwards, and no link, pipe
        or device in it, can change what is read.
        """
        try:
            name, claim_error = job_name(pending.raw_name), None
        except SpoolError as error:
            name, claim_error = UNNAMED, dataclasses.replace(error, where=str(pending.path))
        if pending.is_link:
            claim_error = SpoolError("is a symbolic link; jobs must be real files and folders",
                                     where=str(pending.path), hint="copy the job into the inbox instead")
        job = self._new_work_folder(name)
        job.save_state(JobState(id=uuid.uuid4().hex, name=name, kind=pending.kind, spec=pending.spec_path.name,
                                source=str(pending.path), received=received or now_iso(),
                                defaults=dict(self.config.defaults),
                                claim_error=claim_error.as_dict() if claim_error else None))
        try:
            self._take(pending, job)
        except FileNotFoundError:
            shutil.rmtree(job.path, ignore_errors=True)
            return None
        fsync_path(self.config.work)
        return self._copy_claimed(job)

    def _new_work_folder(self, name: str) -> WorkJob:
        for candidate in numbered(name):
            try:
                return WorkJob(make_folder(self.config.work / candidate))
            except FileExistsError:
                continue
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self, pending: Pending, job: WorkJob) -> None:
        """The one rename: the job folder (or the loose spec) into work/NAME/drop."""
        if pending.kind == LOOSE:
            make_folder(job.drop_dir)
            os.rename(pending.path, job.drop_dir / pending.path.name)
        else:
            os.rename(pending.path, job.drop_dir)

    def _copy_claimed(self, job: WorkJob) -> WorkJob:
        """Copy the taken entry into work/NAME/job/ (staged, so a crash leaves no half copy),
        remove what was taken, record ``queued`` and tidy the inbox."""
        state = job.state()
        if not os.path.lexists(job.job_dir):
            with staged_folder(job.path, JOB_DIR) as staging:
                copy = staging / JOB_DIR
                state = self._copy_loose(job, state, copy) if state.kind == LOOSE else self._copy_folder(job, state, copy)
                os.rename(copy, job.job_dir)
                staging.rmdir()
        _remove_taken(job.drop_dir)
        spec = read_spec_leniently(job.job_dir / state.spec, self.config.max_spec_bytes)
        state = job.save_state(state.but(status=Status.QUEUED, claimed=state.claimed or now_iso(),
                                         wants_device=wanted_device(spec, self.config),
                                         priority=spec_priority(spec, self.config.defaults)))
        self._release_loose_images(state.release)
        return job

    def _copy_folder(self, job: WorkJob, state: JobState, copy: Path) -> JobState:
        left_out = copy_regular_tree(job.drop_dir, copy, name=Path(state.source).name)
        return _with_left_out(state, left_out)

    def _copy_loose(self, job: WorkJob, state: JobState, copy: Path) -> JobState:
        """The spec, and each image it names that lies in the inbox (library images stay where they are)."""
        make_folder(copy)
        spec = job.drop_dir / state.spec
        left_out = [item for item in [copy_regular_file(spec, copy / state.spec)] if item is not None]
        data = read_spec_leniently(copy / state.spec, self.config.max_spec_bytes) if not left_out else None
        claim_error = error_from_dict(dict(state.claim_error)) if state.claim_error else None
        inbox, release = self.config.inbox.resolve(), list(state.release)
        for key, value in spec_references(data, self.plugin_files):
            try:
                path = confine(value, [self.config.inbox, *self.config.library], key=key,
                               where=state.source, flat=True)
            except SpoolError as error:
                claim_error = claim_error or error
                continue
            if is_inside(path, inbox) and os.path.lexists(path) and not os.path.lexists(copy / value):
                missing = copy_regular_file(path, copy / value, owner=os.lstat(spec).st_uid)
                left_out.extend([missing] if missing is not None else [])
                release.append(value)
        state = state.but(release=tuple(dict.fromkeys(release)),
                          claim_error=claim_error.as_dict() if claim_error else None)
        return _with_left_out(state, left_out)

    def _release_loose_images(self, names: tuple[str, ...]) -> None:
        """Remove claimed loose images from the inbox unless another pending spec still names them."""
        if not names:
            return
        wanted = set()
        for pending in scan_inbox(self.config.inbox):
            if pending.kind == LOOSE and not pending.is_link:
                wanted.update(value for _, value in cached_references(pending.path, self.config.max_spec_bytes,
                                                                      self.plugin_files))
        for name in names:
            if name not in wanted:
                (self.config.inbox / name).unlink(missing_ok=True)

    # --- delivery ---

    def publish(self, parent: Path, name: str, fill: Callable[[Path], None]) -> Path:
        """Fill a staged folder and rename it to ``parent/NAME`` (or NAME-2, ...); return where it went."""
        with staged_folder(parent, name) as temporary:
            fill(temporary)
            with self._placing:
                return place_folder(temporary, parent, name)

    def publish_rendered(self, job: WorkJob) -> tuple[JobState, Path]:
        """Deliver what a cluster worker left in work/NAME/result/ to the outbox, stamped with the
        time of delivery; return the state and where it went."""
        state = job.update(status=Status.DELIVERING)
        delivered = now_iso()

        def fill(folder: Path) -> None:
            shutil.copytree(job.result_dir, folder, symlinks=True, copy_function=link_or_copy, dirs_exist_ok=True)
            report = read_json_object(folder / REPORT_JSON_FILE)
            if isinstance(report.get("job"), dict):
                report["job"]["delivered"] = delivered
                # a rename over the hard link to result/report.json: result/ itself is not changed
                atomic_write_json(folder / REPORT_JSON_FILE, report)

        target = self.publish(self.config.outbox, state.name, fill)
        state = job.update(status=Status.DELIVERED, delivered=delivered, delivered_to=str(target))
        self.finish(job)
        return state, target

    def copy_inputs(self, job: WorkJob, destination: Path) -> None:
        """The claimed spec and images as the claim copied them: regular files only, no links."""
        if job.job_dir.is_dir() and not job.job_dir.is_symlink():
            shutil.copytree(job.job_dir, destination, symlinks=True, copy_function=link_or_copy)
        else:
            make_folder(destination)

    def fail(self, job: WorkJob, error: dict[str, Any], text: str) -> Path:
        """Move a job to failed/NAME with error.txt, error.json and its inputs; return where it went."""
        state = job.update(status=Status.FAILING, error=error, finished=now_iso())

        def fill(folder: Path) -> None:
            self.copy_inputs(job, folder / INPUTS_DIR)
            if job.checkpoint_path.is_file():  # a retry resumes from it (styled.daemon.control)
                link_or_copy(job.checkpoint_path, folder / CHECKPOINT_FILE)
            atomic_write_json(folder / ERROR_JSON_FILE, {**error, "job": _job_summary(state),
                                                         "left_out": [dict(item) for item in state.left_out]})
            atomic_write_text(folder / ERROR_TEXT_FILE, text)

        target = self.publish(self.config.failed, state.name, fill)
        job.update(status=Status.FAILED, delivered_to=str(target))
        self.finish(job)
        return target

    def finish(self, job: WorkJob) -> None:
        """Remove a delivered (or failed) job from work/: rename it aside first, so it is atomic."""
        remove_folder(job.path, DONE_PREFIX)

    def work_jobs(self) -> Iterator[WorkJob]:
        for path in sorted(self.config.work.iterdir(), key=_path_mtime):
            if path.is_dir() and not path.name.startswith("."):
                yield WorkJob(path)


def _job_summary(state: JobState) -> dict[str, Any]:
    return {"id": state.id, "name": state.name, "kind": state.kind, "source": state.source,
            "received": state.received, "claimed": state.claimed, "started": state.started,
            "finished": state.finished, "attempts": state.attempts}


def delivered_id(folder: Path) -> str | None:
    """The job id recorded in an outbox report.json or a failed error.json."""
    for name in (REPORT_JSON_FILE, ERROR_JSON_FILE):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        job = data.get("job") if isinstance(data, dict) else None
        job_id = job.get("id") if isinstance(job, dict) else None
        if isinstance(job_id, str):
            return job_id
    return None


#: A job found in one of these after a restart was running when the daemon died.
CRASHED_IN = (Status.PREPARING, Status.RENDERING)
PHASES = {Status.PREPARING: 1, Status.RENDERING: 2}


def progress_done(job: WorkJob, state: JobState) -> dict[str, int]:
    """How far the crashed attempt came: iterations done (progress.json or the last checkpoint),
    the phase it had reached, and the iterations its newest checkpoint holds."""
    progress = read_json_object(job.progress_path).get("done")
    checkpoint = (state.checkpoint or {}).get("done")
    done = max([value for value in (progress, checkpoint) if isinstance(value, int)], default=0)
    return {"done": done, "phase": PHASES.get(state.status, 0),
            "checkpoint": checkpoint if isinstance(checkpoint, int) else -1}


def after_crash(state: JobState, reached: Mapping[str, int]) -> JobState:
    """A crash counts against the job (a strike) only when the attempt made no progress: it got no
    further than any attempt before it (iterations done, then phase) and saved no newer checkpoint
    than the one it started from. Progress clears the strikes.

    Comparing with the furthest point ever reached, not with the previous crash, is what stops a
    job that dies at the same iteration every time from looping for ever; the newer checkpoint is
    what spares a resumed job killed while it redid the iterations its last checkpoint missed.
    """
    best = state.high_water or {"done": -1, "phase": 0}
    further = (reached["done"], reached["phase"]) > (best.get("done", -1), best.get("phase", 0))
    started_from = state.high_water.get("start_checkpoint", -1) if state.high_water else -1
    if further or reached["checkpoint"] > started_from:
        log.info("%s was running when its worker stopped; it had made progress, so it is not held against it",
                 state.name)
        high = {"done": max(reached["done"], best.get("done", -1)), "phase": max(reached["phase"], best.get("phase", 0))}
        return state.but(status=Status.QUEUED, strikes=0, high_water={**high, "start_checkpoint": reached["checkpoint"]})
    log.warning("%s was running when its worker stopped, with no progress since its last attempt (%d in a row)",
                state.name, state.strikes + 1)
    return state.but(status=Status.QUEUED, strikes=state.strikes + 1)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or {} when it is missing, damaged or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _with_left_out(state: JobState, left_out: list[LeftOut]) -> JobState:
    for item in left_out:
        log.warning("%s: not copied: %s", state.name, item.describe())
    return state.but(left_out=(*state.left_out, *(item.to_dict() for item in left_out)))


def _remove_taken(drop: Path) -> None:
    """Remove what the claim took, now copied; what cannot be removed stays in work/, unread."""
    if drop.is_symlink() or drop.is_file():
        drop.unlink(missing_ok=True)
    elif drop.exists():
        shutil.rmtree(drop, onerror=lambda function, path, info: log.warning("cannot remove %s: %s", path, info[1]))


def _remove_temporaries(folder: Path, why: str = "left by a crash") -> None:
    for path in folder.iterdir():
        if is_temporary(path.name) and path.is_dir():
            log.info("removing %s, %s", path, why)
            shutil.rmtree(path, ignore_errors=True)


def wanted_device(data: Any, config: DaemonConfig) -> str | None:
    """The device a raw spec (or the config's defaults) asks for; None for any."""
    device = data.get("device") if isinstance(data, dict) else None
    device = device if device is not None else config.defaults.get("device")
    return device if isinstance(device, str) and device != "auto" else None


def _path_mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def link_or_copy(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Hard-link (free, and the bytes are already settled); copy where links are not allowed."""
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, destination, follow_symlinks=False)
