"""A studio's controls over jobs: cancel, retry and priority, from the command line or the web page.

Neither the command line nor the page talks to the daemon; like a job, a request goes through the
inbox. ``styled cancel`` (and the page's Cancel) writes ``inbox/.requests/<id>.json`` under a
temporary name and renames it into place; the daemon's main loop carries each request out and
removes it (``styled.daemon.service``). A cancelled job lands in ``failed/NAME`` with its inputs,
its checkpoint and an error.txt that says when it was cancelled and how to retry it.

A waiting job's priority lives in its spec (``priority: 5``), which anyone may change until a
worker takes the job ("the inbox is the queue"): ``set_priority`` rewrites that one line. A job the
daemon claimed but no worker has taken yet gets a request instead, and the daemon changes its
record. ``retry_failed`` puts a failed or cancelled job back into the inbox with its checkpoint, so
it resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from styled.daemon.config import DaemonConfig
from styled.daemon.inbox import JOB_FILE, Pending, scan_inbox
from styled.daemon.paths import job_name
from styled.daemon.spool import (
    CHECKPOINT_FILE,
    ERROR_JSON_FILE,
    INPUTS_DIR,
    RESUME_FILE,
    WorkJob,
    link_or_copy,
    read_json_object,
)
from styled.daemon.state import Status, now_iso
from styled.daemon.submit import place_job
from styled.errors import JobCancelled, JobControlError, StyledError
from styled.io.files import atomic_write_json, atomic_write_text, is_temporary, remove_folder

log = logging.getLogger(__name__)

REQUESTS_DIR = ".requests"
CANCEL, PRIORITY = "cancel", "priority"
ACTIONS = (CANCEL, PRIORITY)
#: A retried job's failed folder is renamed to this prefix before it is removed.
RETRIED_PREFIX = ".retried-"
#: Where a job stands, as ``locate`` finds it.
WAITING, QUEUED, RUNNING, DONE, FAILED = "waiting", "queued", "running", "done", "failed"
#: Statuses of a claimed job that no worker has taken yet.
NOT_STARTED = (Status.CLAIMING, Status.QUEUED, Status.INTERRUPTED)
WAIT_POLL_SECONDS = 0.2
_PRIORITY_LINE = re.compile(r"^priority\s*:.*$", re.MULTILINE)


@dataclass(frozen=True)
class Request:
    """One request to the daemon, as read from ``inbox/.requests/``."""

    action: str
    name: str
    requested: str
    by: str
    value: int | None = None
    path: Path | None = None


@dataclass(frozen=True)
class Located:
    """Where a job named NAME stands: ``WAITING`` in the inbox, ``QUEUED`` or ``RUNNING`` in work/,
    ``DONE`` in the outbox, ``FAILED`` in failed/; and the folder (or loose spec) holding it."""

    where: str
    path: Path
    #: A waiting job's spec (job.yaml of a folder, or the loose spec itself).
    spec: Path | None = None


# --- finding a job ------------------------------------------------------------------------------


def inbox_jobs(config: DaemonConfig) -> Iterator[tuple[str, Pending]]:
    """(name, entry) of every job in the inbox, by the name a claim would give it."""
    for pending in scan_inbox(config.inbox):
        try:
            yield job_name(pending.raw_name), pending
        except StyledError:
            continue


def work_jobs_named(config: DaemonConfig, name: str) -> list[WorkJob]:
    """Claimed jobs whose name (or work folder) is ``name``."""
    found = []
    for path in sorted(config.work.iterdir()) if config.work.is_dir() else []:
        if not path.is_dir() or path.name.startswith("."):
            continue
        work = WorkJob(path)
        if name in (path.name, work.name):
            found.append(work)
    return found


def locate(config: DaemonConfig, name: str) -> Located | None:
    """Where the job ``name`` stands; waiting and running jobs before finished ones."""
    for work in work_jobs_named(config, name):
        status = read_json_object(work.state_path).get("status")
        return Located(QUEUED if status in NOT_STARTED else RUNNING, work.path)
    for found, pending in inbox_jobs(config):
        if found == name:
            return Located(WAITING, pending.path, pending.spec_path)
    for where, parent in ((FAILED, config.failed), (DONE, config.outbox)):
        if _plain_name(name) and (parent / name).is_dir() and not (parent / name).is_symlink():
            return Located(where, parent / name)
    return None


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name \
        and not name.startswith(".")


def _unknown(name: str) -> JobControlError:
    return JobControlError(f"no job named {name!r} is waiting, running, done or failed",
                           hint="`styled status` lists the jobs by name")


# --- requests -------------------------------------------------------------------------------------


def requests_folder(config: DaemonConfig) -> Path:
    return config.inbox / REQUESTS_DIR


def write_request(config: DaemonConfig, action: str, name: str, *, by: str, value: int | None = None) -> Path:
    """Drop a request for the daemon into the inbox (atomically); return its file."""
    folder = requests_folder(config)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now_iso().replace(':', '')}-{uuid.uuid4().hex[:8]}.json"
    atomic_write_json(path, {"action": action, "name": name, "value": value, "requested": now_iso(), "by": by})
    return path


def read_requests(config: DaemonConfig) -> list[Request]:
    """The requests waiting for the daemon, oldest first; a damaged one is logged and removed."""
    folder = requests_folder(config)
    try:
        entries = sorted(entry for entry in folder.iterdir() if not is_temporary(entry.name))
    except (FileNotFoundError, NotADirectoryError):
        return []
    requests = []
    for path in entries:
        data = read_json_object(path) if path.is_file() and not path.is_symlink() else {}
        if data.get("action") not in ACTIONS or not isinstance(data.get("name"), str):
            log.warning("ignoring %s: not a request styled understands", path)
            _remove(path)
            continue
        value = data.get("value")
        requests.append(Request(data["action"], data["name"], str(data.get("requested") or now_iso()),
                                str(data.get("by") or "someone"), value if isinstance(value, int) else None, path))
    return requests


def finish_request(request: Request) -> None:
    if request.path is not None:
        _remove(request.path)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)
    except FileNotFoundError:
        pass


# --- cancel ---------------------------------------------------------------------------------------


def request_cancel(config: DaemonConfig, name: str, by: str) -> Located:
    """Ask the daemon to cancel ``name``; JobControlError when it is done, failed or unknown."""
    found = locate(config, name)
    if found is None:
        raise _unknown(name)
    if found.where == DONE:
        raise JobControlError(f"{name!r} is already done ({found.path}); there is nothing to cancel")
    if found.where == FAILED:
        raise JobControlError(f"{name!r} has already failed or been cancelled ({found.path})",
                              hint=f"`styled retry {name}` puts it back into the queue")
    write_request(config, CANCEL, name, by=by)
    return found


def mark_cancelled(work: WorkJob, request: Request) -> None:
    """work/NAME/cancel: the render stops at its next iteration (or tile), wherever it runs."""
    atomic_write_json(work.cancel_path, {"requested": request.requested, "by": request.by})


def cancelled_error(work: WorkJob) -> JobCancelled:
    """The failure a cancelled job is delivered with: who cancelled it, when, and how to retry it."""
    marker = read_json_object(work.cancel_path)
    name = work.name
    return JobCancelled(f"cancelled at {marker.get('requested', now_iso())} by {marker.get('by', 'someone')}",
                        hint=f"`styled retry {name}` (or Retry on the web page) puts it back into the queue; it "
                             "resumes from its checkpoint")


# --- priority -------------------------------------------------------------------------------------


def set_priority(config: DaemonConfig, name: str, priority: int, by: str) -> Located:
    """Change a waiting job's priority: in its spec while it is in the inbox, by a request once the
    daemon holds it. JobControlError for a job already running, done or failed (nothing is
    pre-empted)."""
    found = locate(config, name)
    if found is None:
        raise _unknown(name)
    if found.where == WAITING:
        try:
            atomic_write_text(found.spec, with_priority(found.spec.read_text(encoding="utf-8"), priority))
        except OSError as error:  # taken by a worker (or removed) in the meantime
            raise JobControlError(f"{name!r} could not be changed ({error.strerror}): a worker may just have "
                                  "taken it", hint="`styled status` shows where it is now") from None
    elif found.where == QUEUED:
        write_request(config, PRIORITY, name, by=by, value=priority)
    else:
        raise JobControlError(f"{name!r} is {found.where}; only a waiting job's priority can change",
                              hint="a running job is not pre-empted")
    return found


def with_priority(text: str, priority: int) -> str:
    """A spec's text with its top-level ``priority`` set (the line replaced, or added at the end)."""
    line = f"priority: {int(priority)}"
    if _PRIORITY_LINE.search(text):
        return _PRIORITY_LINE.sub(line, text, count=1)
    return f"{text.rstrip()}\n{line}\n" if text.strip() else f"{line}\n"


# --- retry ----------------------------------------------------------------------------------------


def retry_spec(folder: Path) -> Path | None:
    """The spec among a failed job's inputs: job.yaml, else the one loose spec that was claimed."""
    inputs = folder / INPUTS_DIR
    candidates = [inputs / JOB_FILE] + sorted(inputs.glob("*.yaml")) + sorted(inputs.glob("*.yml"))
    for candidate in candidates:
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


def retry_failed(config: DaemonConfig, name: str, spec_text: str | None = None) -> Path:
    """Put failed/NAME back into the inbox as a job folder: its inputs, its spec (or ``spec_text``)
    as job.yaml and its checkpoint, from which it resumes; then remove it from failed/. The job
    reaches the inbox before it leaves failed/: a crash in between leaves it in both, never in
    neither."""
    folder = config.failed / name
    if not _plain_name(name) or not folder.is_dir() or folder.is_symlink():
        found = locate(config, name)
        if found is not None and found.where != FAILED:
            raise JobControlError(f"{name!r} is {found.where}, not failed; only a failed or cancelled job is retried")
        raise _unknown(name)
    spec = retry_spec(folder)
    if spec is None:
        raise JobControlError(f"{name!r} has no spec among its inputs to retry", where=str(folder),
                              hint="submit the job again")
    text = spec.read_text(encoding="utf-8") if spec_text is None else spec_text
    inputs, checkpoint = folder / INPUTS_DIR, folder / CHECKPOINT_FILE

    def fill(staged: Path) -> None:
        for entry in sorted(inputs.iterdir()):
            if entry == spec or entry.is_symlink() or entry.name == RESUME_FILE:
                continue
            if entry.is_dir():
                shutil.copytree(entry, staged / entry.name, symlinks=True, copy_function=link_or_copy)
            elif entry.is_file():
                link_or_copy(entry, staged / entry.name)
        if checkpoint.is_file() and not checkpoint.is_symlink():
            link_or_copy(checkpoint, staged / RESUME_FILE)
        atomic_write_text(staged / JOB_FILE, text)

    placed = place_job(config, original_name(folder), fill)
    remove_folder(folder, RETRIED_PREFIX)
    return placed


def original_name(folder: Path) -> str:
    """The job's own name (failed/NAME-2 goes back as NAME; the inbox numbers it again if taken)."""
    job = read_json_object(folder / ERROR_JSON_FILE).get("job")
    name = job.get("name") if isinstance(job, dict) else None
    return name if isinstance(name, str) and name else folder.name


def wait_until_failed(config: DaemonConfig, name: str, seconds: float) -> Path | None:
    """failed/NAME once the cancelled job is there (None after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = locate(config, name)
        if found is not None and found.where == FAILED:
            return found.path
        time.sleep(WAIT_POLL_SECONDS)
    return None


def describe(found: Located) -> str:
    return {WAITING: "waiting in the inbox", QUEUED: "claimed, waiting for a worker", RUNNING: "running",
            DONE: "done", FAILED: "failed"}[found.where]


def is_cancel_pending(work: WorkJob) -> bool:
    return os.path.lexists(work.cancel_path)
