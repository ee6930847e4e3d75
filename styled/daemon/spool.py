"""The spool: inbox -> work -> outbox | failed, with nothing lost, doubled or half-delivered.

Layout (each folder from the daemon config)::

    inbox/NAME/job.yaml + images     a job folder
    inbox/NAME.yaml                  a loose spec naming images that lie in the inbox
    work/NAME/state.json             the job's life (styled.daemon.state.JobState)
    work/NAME/job/                   the claimed spec and inputs, untouched
    work/NAME/progress.json          scale, iteration, loss, ETA
    work/NAME/preview.png            a quick AdaIN rendering, written within seconds of the claim
    work/NAME/checkpoint.npz         where a restart resumes
    outbox/NAME/                     result, report.json, sheet.png, loss.png, inputs/
    failed/NAME/                     error.txt, error.json, inputs/

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from styled.daemon.config import DaemonConfig
from styled.daemon.inbox import (
    LOOSE,
    Pending,
    cached_references,
    read_spec_leniently,
    scan_inbox,
    spec_references,
)
from styled.daemon.paths import UNNAMED, confine, is_inside, job_name
from styled.daemon.state import JobState, Status, now_iso, read_state, write_state
from styled.errors import SpoolError, StyledError
from styled.io.files import (
    atomic_write_json,
    atomic_write_text,
    fsync_path,
    is_temporary,
    make_folder,
    numbered,
    place_folder,
    staged_folder,
)

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
PROGRESS_FILE = "progress.json"
PREVIEW_FILE = "preview.png"
CHECKPOINT_FILE = "checkpoint.npz"
JOB_DIR = "job"
INPUTS_DIR = "inputs"
#: Library images a job used are delivered under inputs/LIBRARY_INPUTS_DIR/.
LIBRARY_INPUTS_DIR = "library"
ERROR_TEXT_FILE = "error.txt"
ERROR_JSON_FILE = "error.json"
REPORT_JSON_FILE = "report.json"
#: A finished job's work folder is renamed to this prefix before it is removed, so removal is atomic.
DONE_PREFIX = ".done-"
DONE_TOKEN_CHARS = 8


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
    def progress_path(self) -> Path:
        return self.path / PROGRESS_FILE

    @property
    def preview_path(self) -> Path:
        return self.path / PREVIEW_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

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

    def __init__(self, config: DaemonConfig):
        self.config = config
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
                job = self._recover_one(WorkJob(path))
                if job is not None:
                    jobs.append(job)
        return jobs

    def _remove_temporaries(self) -> None:
        for folder in (self.config.outbox, self.config.failed):
            for path in folder.iterdir():
                if is_temporary(path.name) and path.is_dir():
                    log.info("removing %s, a delivery that a crash interrupted", path)
                    shutil.rmtree(path, ignore_errors=True)

    def _recover_one(self, job: WorkJob) -> WorkJob | None:
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
        if state.status in (Status.DELIVERING, Status.DELIVERED) and self.find_delivered(self.config.outbox, state):
            log.info("%s was already delivered; cleaning up", state.name)
            self.finish(job)
            return None
        if state.status in (Status.FAILING, Status.FAILED) and self.find_delivered(self.config.failed, state):
            self.finish(job)
            return None
        return job

    def _recover_claim(self, job: WorkJob, state: JobState) -> WorkJob | None:
        taken = job.job_dir if state.kind != LOOSE else job.job_dir / state.spec
        if not os.path.lexists(taken):
            log.info("removing %s: a claim that never happened", job.path)
            shutil.rmtree(job.path, ignore_errors=True)
            return None
        self._release_loose_images(state.release)
        job.update(status=Status.QUEUED)
        return job

    def find_delivered(self, folder: Path, state: JobState) -> Path | None:
        """The outbox (or failed) folder holding this job id, if a delivery got that far."""
        pattern = re.compile(rf"^{re.escape(state.name)}(-\d+)?$")
        for path in folder.iterdir():
            if pattern.match(path.name) and delivered_id(path) == state.id:
                return path
        return None

    # --- claiming ---

    def claim(self, pending: Pending, received: str | None = None) -> WorkJob | None:
        """Move a settled inbox entry into work/ with one rename; None when it vanished meanwhile."""
        try:
            name, claim_error = job_name(pending.raw_name), None
        except SpoolError as error:
            name, claim_error = UNNAMED, dataclasses.replace(error, where=str(pending.path))
        job = self._new_work_folder(name)
        state = JobState(id=uuid.uuid4().hex, name=name, kind=pending.kind, spec=pending.spec_path.name,
                         source=str(pending.path), received=received or now_iso(),
                         defaults=dict(self.config.defaults))
        if pending.is_link:
            claim_error = SpoolError("is a symbolic link; jobs must be real files and folders",
                                     where=str(pending.path), hint="copy the job into the inbox instead")
        try:
            if pending.kind == LOOSE:
                state, claim_error = self._claim_loose(pending, job, state, claim_error)
            else:
                job.save_state(state)
                os.rename(pending.path, job.job_dir)
        except FileNotFoundError:
            shutil.rmtree(job.path, ignore_errors=True)
            return None
        job.save_state(state.but(status=Status.QUEUED, claimed=now_iso(),
                                 claim_error=claim_error.as_dict() if claim_error else None))
        fsync_path(self.config.work)
        self._release_loose_images(state.release)
        return job

    def _new_work_folder(self, name: str) -> WorkJob:
        for candidate in numbered(name):
            try:
                return WorkJob(make_folder(self.config.work / candidate))
            except FileExistsError:
                continue
        raise AssertionError("unreachable")  # pragma: no cover

    def _claim_loose(self, pending: Pending, job: WorkJob, state: JobState,
                     claim_error: StyledError | None) -> tuple[JobState, StyledError | None]:
        """Link the images a loose spec names into the job, then take the spec with one rename."""
        make_folder(job.job_dir)
        data = None if pending.is_link else read_spec_leniently(pending.path, self.config.max_spec_bytes)
        inbox = self.config.inbox.resolve()
        release: list[str] = []
        for key, value in spec_references(data):
            try:
                path = confine(value, [self.config.inbox, *self.config.library], key=key,
                               where=str(pending.path), flat=True)
            except SpoolError as error:
                claim_error = claim_error or error
                continue
            if path.is_file() and is_inside(path, inbox) and value not in release:
                link_or_copy(path, job.job_dir / value)
                release.append(value)
        state = job.save_state(state.but(release=tuple(release)))
        os.rename(pending.path, job.job_dir / state.spec)
        return state, claim_error

    def _release_loose_images(self, names: tuple[str, ...]) -> None:
        """Remove claimed loose images from the inbox unless another pending spec still names them."""
        if not names:
            return
        wanted = set()
        for pending in scan_inbox(self.config.inbox):
            if pending.kind == LOOSE and not pending.is_link:
                wanted.update(value for _, value in cached_references(pending.path, self.config.max_spec_bytes))
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

    def copy_inputs(self, job: WorkJob, destination: Path) -> None:
        """The claimed spec and images, as they arrived (links stay links, nothing is followed)."""
        source = job.job_dir
        if source.is_symlink():
            make_folder(destination)
            os.symlink(os.readlink(source), destination / source.name)
        elif source.is_dir():
            shutil.copytree(source, destination, symlinks=True, copy_function=link_or_copy)
        else:
            make_folder(destination)

    def fail(self, job: WorkJob, error: dict[str, Any], text: str) -> Path:
        """Move a job to failed/NAME with error.txt, error.json and its inputs; return where it went."""
        state = job.update(status=Status.FAILING, error=error, finished=now_iso())

        def fill(folder: Path) -> None:
            self.copy_inputs(job, folder / INPUTS_DIR)
            atomic_write_json(folder / ERROR_JSON_FILE, {**error, "job": _job_summary(state)})
            atomic_write_text(folder / ERROR_TEXT_FILE, text)

        target = self.publish(self.config.failed, state.name, fill)
        job.update(status=Status.FAILED, delivered_to=str(target))
        self.finish(job)
        return target

    def finish(self, job: WorkJob) -> None:
        """Remove a delivered (or failed) job from work/: rename it aside first, so it is atomic."""
        aside = job.path.with_name(f"{DONE_PREFIX}{job.path.name}-{uuid.uuid4().hex[:DONE_TOKEN_CHARS]}")
        os.rename(job.path, aside)
        fsync_path(job.path.parent)
        shutil.rmtree(aside, ignore_errors=True)

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
