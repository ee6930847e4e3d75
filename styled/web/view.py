"""What the page shows, read from the spool's files. Nothing here writes.

Every file a request names is found by :func:`spool_file`: a job is a folder listed in its spool
folder, and a file inside it is reached one plain name at a time, never through a link, so that
no name from a URL becomes a path of its own (no '..', no absolute paths, no links, no dot files).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from styled.daemon.config import DaemonConfig
from styled.daemon.control import retry_spec
from styled.daemon.spool import (
    ERROR_JSON_FILE,
    ERROR_TEXT_FILE,
    INPUTS_DIR,
    LATEST_FILE,
    LIBRARY_INPUTS_DIR,
    PREVIEW_FILE,
    REPORT_JSON_FILE,
    STATE_FILE,
    read_json_object,
)
from styled.daemon.inbox import cached_priority
from styled.daemon.status import SpoolStatus, folders_by_time, read_status
from styled.engine.types import clock
from styled.io.images import SAVE_FORMATS
from styled.report import LOSS_PLOT_FILE, SHEET_FILE

#: The spool folders a URL may read from, and which files of a work folder (the rest is private).
AREAS = ("outbox", "failed", "work")
WORK_FILES = (PREVIEW_FILE, LATEST_FILE)
#: Images the browser can show; a result in another format (TIFF, a clip) is shown by its sheet.
SHOWN_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
#: Done and failed jobs the queue lists (the gallery pages through all of them).
QUEUE_RECENT = 12
GALLERY_PAGE = 24


class NotInSpool(LookupError):
    """A URL named something that is not a file the page serves (answered with 404, never a hint why)."""


@dataclass(frozen=True)
class JobPage:
    """An outbox job: its result, inputs and report."""

    name: str
    report: dict[str, Any]
    result: str | None  # the result's file name, when it is there
    content: str | None  # paths relative to the job folder
    styles: tuple[str, ...]
    extras: tuple[str, ...]  # sheet.png and loss.png, those that exist
    settings: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class FailedPage:
    """A failed/ job: the error, where it was, and the spec that would be retried."""

    name: str
    error: dict[str, Any]
    text: str
    spec_name: str | None
    spec_text: str


def spool_root(config: DaemonConfig, area: str) -> Path:
    if area not in AREAS:
        raise NotInSpool(area)
    return getattr(config, area)


def job_folder(config: DaemonConfig, area: str, name: str) -> Path:
    """``area/NAME``, when NAME is one of the folders listed there (not a link, not hidden)."""
    root = spool_root(config, area)
    if not _plain_name(name):
        raise NotInSpool(name)
    try:
        info = os.lstat(root / name)
    except OSError:
        raise NotInSpool(name) from None
    if not stat.S_ISDIR(info.st_mode):
        raise NotInSpool(name)
    return root / name


def spool_file(config: DaemonConfig, area: str, name: str, relative: str) -> Path:
    """The regular file ``relative`` inside ``area/NAME``, reached without following any link.

    In work/ only the preview and the latest checkpoint image are served.
    """
    folder = job_folder(config, area, name)
    parts = relative.split("/")
    if not parts or not all(_plain_name(part) for part in parts):
        raise NotInSpool(relative)
    if area == "work" and relative not in WORK_FILES:
        raise NotInSpool(relative)
    path = folder
    for index, part in enumerate(parts):
        path = path / part
        try:
            info = os.lstat(path)
        except OSError:
            raise NotInSpool(relative) from None
        last = index == len(parts) - 1
        if not (stat.S_ISREG(info.st_mode) if last else stat.S_ISDIR(info.st_mode)):
            raise NotInSpool(relative)  # a link (lstat does not follow it), a device, a folder
    return path


def _plain_name(name: str) -> bool:
    """A single file name: no separators, no '..', not hidden, no control characters."""
    return (bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name
            and all(ord(char) >= 32 for char in name) and PurePosixPath(name).name == name)


def finished(config: DaemonConfig, area: str) -> list[str]:
    """The job names in outbox/ or failed/, newest first, from one directory scan (no file is read)."""
    return [path.name for path in folders_by_time(spool_root(config, area))]


@dataclass(frozen=True)
class PendingJob:
    """A job that is not done yet: waiting in the inbox, claimed, or running."""

    name: str
    where: str  # styled.daemon.control's WAITING, QUEUED or RUNNING
    description: str
    priority: int
    cancelling: bool


def pending_job(config: DaemonConfig, name: str) -> PendingJob | None:
    """The waiting or running job ``name``, for its page; None when it is not waiting or running."""
    from styled.daemon import control
    from styled.daemon.spool import WorkJob

    found = control.locate(config, name)
    if found is None or found.where in (control.DONE, control.FAILED):
        return None
    if found.where == control.WAITING:
        return PendingJob(name, found.where, control.describe(found), cached_priority(found.spec, config), False)
    state = read_json_object(found.path / STATE_FILE)
    return PendingJob(name, found.where, control.describe(found), int(state.get("priority") or 0),
                      control.is_cancel_pending(WorkJob(found.path)))


def queue(config: DaemonConfig) -> dict[str, Any]:
    """The queue as the page and its live updates show it: plain JSON, with URLs, never paths."""
    status: SpoolStatus = read_status(config, recent=QUEUE_RECENT)
    return {
        "daemon": status.daemon_pid is not None,
        "waiting": [{"name": job["name"], "kind": job["kind"], "priority": job["priority"]} for job in status.waiting],
        "running": [_running(job) for job in status.running],
        "done": [{"name": job["name"], "delivered": job["delivered"], "worker": job.get("worker")}
                 for job in status.done],
        "failed": [{"name": job["name"], "reason": job["reason"]} for job in status.failed],
        "done_count": status.done_count,
        "failed_count": status.failed_count,
        "cluster": bool(status.cluster),
    }


def _running(job: dict[str, Any]) -> dict[str, Any]:
    progress = job.get("progress") or {}
    name = Path(job["path"]).name
    images = {}
    for key, file_name in (("preview", PREVIEW_FILE), ("latest", LATEST_FILE)):
        if job.get(key):
            try:
                version = int(os.stat(job[key]).st_mtime_ns)
            except OSError:
                continue
            images[key] = f"/file/work/{name}/{file_name}?v={version}"
    return {
        "name": job["name"], "status": job["status"], "worker": job.get("worker") or job.get("device"),
        "priority": job.get("priority", 0), "cancelling": job.get("cancelling", False),
        "resumed": job.get("resumed", False), "percent": float(progress.get("percent") or 0.0),
        "detail": progress_detail(job["status"], progress), **images,
    }


def progress_detail(status: str, progress: dict[str, Any]) -> str:
    """'frame 3/36 · scale 2/3 · iteration 40/100 · ETA 0:01:10', or the job's status before it renders."""
    if status != "rendering" or not progress:
        return status
    parts = []
    if progress.get("frames"):
        parts.append(f"frame {progress.get('frame')}/{progress['frames']}")
    parts.append(f"scale {progress.get('scale')}/{progress.get('scales')}")
    parts.append(f"iteration {progress.get('iteration')}/{progress.get('iterations')}")
    if progress.get("tiles"):
        parts.append(f"tile {progress.get('tile')}/{progress['tiles']}")
    parts.append(f"ETA {clock(progress.get('eta'))}")
    return " · ".join(parts)


def job_page(config: DaemonConfig, name: str) -> JobPage:
    folder = job_folder(config, "outbox", name)
    report = read_json_object(folder / REPORT_JSON_FILE)
    settings = report.get("settings") if isinstance(report.get("settings"), dict) else {}
    inputs = report.get("inputs") if isinstance(report.get("inputs"), dict) else {}
    styles = inputs.get("style") or []
    return JobPage(
        name=name, report=report,
        result=_existing(folder, settings.get("output")),
        content=_input(folder, inputs.get("content")),
        styles=tuple(found for found in (_input(folder, style) for style in styles if isinstance(style, str))
                     if found),
        extras=tuple(extra for extra in (SHEET_FILE, LOSS_PLOT_FILE) if (folder / extra).is_file()),
        settings=tuple((key, _setting_text(value)) for key, value in settings.items()),
    )


def _existing(folder: Path, name: Any) -> str | None:
    return name if isinstance(name, str) and _plain_name(name) and (folder / name).is_file() else None


def _input(folder: Path, name: Any) -> str | None:
    """An input's path inside the job folder: inputs/NAME, or inputs/library/NAME for a library image."""
    if not isinstance(name, str) or not name:
        return None
    for relative in (f"{INPUTS_DIR}/{name}", f"{INPUTS_DIR}/{LIBRARY_INPUTS_DIR}/{name}"):
        parts = relative.split("/")
        if all(_plain_name(part) for part in parts) and (folder / relative).is_file():
            return relative
    return None


def _setting_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def shown_image(page: JobPage) -> str | None:
    """The picture that stands for a job in the gallery: its result if a browser shows it, else its sheet."""
    if page.result and Path(page.result).suffix.lower() in SHOWN_SUFFIXES:
        return page.result
    return SHEET_FILE if SHEET_FILE in page.extras else None


def gallery_source(config: DaemonConfig, name: str) -> Path:
    """The file a job's thumbnail is made from (its result, its sheet for clips and TIFFs)."""
    folder = job_folder(config, "outbox", name)
    settings = read_json_object(folder / REPORT_JSON_FILE).get("settings") or {}
    output = settings.get("output") if isinstance(settings, dict) else None
    for candidate in (output, SHEET_FILE):
        if isinstance(candidate, str) and Path(candidate).suffix.lower() in SHOWN_SUFFIXES + tuple(SAVE_FORMATS):
            try:
                return spool_file(config, "outbox", name, candidate)
            except NotInSpool:
                continue
    raise NotInSpool(name)


def failed_page(config: DaemonConfig, name: str) -> FailedPage:
    folder = job_folder(config, "failed", name)
    error = read_json_object(folder / ERROR_JSON_FILE)
    try:
        text = (folder / ERROR_TEXT_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = str(error.get("text") or error.get("message") or "")
    spec = retry_spec(folder)
    spec_text = ""
    if spec is not None:
        spec_text = spec.read_text(encoding="utf-8", errors="replace")
    return FailedPage(name=name, error=error, text=text, spec_name=spec.name if spec else None,
                      spec_text=spec_text)


def library_images(config: DaemonConfig, limit: int = 500) -> list[str]:
    """Image files in the library folders, as a spec names them (relative to their library folder)."""
    names: list[str] = []
    for root in config.library:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(sub for sub in subfolders if not sub.startswith("."))
            for file_name in sorted(files):
                if not file_name.startswith(".") and Path(file_name).suffix.lower() in IMAGE_SUFFIXES:
                    names.append(str(Path(folder, file_name).relative_to(root)))
                    if len(names) >= limit:
                        return names
    return names


#: What the submit form takes and the library offers: the formats styled.io.images reads.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif")
