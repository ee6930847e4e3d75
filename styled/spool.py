"""The spool: inbox -> work -> outbox | failed, with nothing lost, doubled or half-delivered.

Layout (each folder from the daemon config)::

    inbox/NAME/job.yaml + images     a job folder
    inbox/NAME.yaml                  a loose spec naming images that lie in the inbox
    work/NAME/state.json             the job's life: id, attempts, status, timestamps
    work/NAME/job/                   the claimed spec and inputs, untouched
    work/NAME/progress.json          scale, iteration, loss, ETA
    work/NAME/checkpoint.npz         where a restart resumes
    outbox/NAME/                     result, report.json, sheet.png, loss.png, inputs/
    failed/NAME/                     error.txt, error.json, inputs/

Every move that a reader may see is one rename: the claim (inbox -> work), the delivery (a finished
temporary folder -> outbox or failed). state.json records each step *before* it is taken, so that
:meth:`Spool.recover` can finish or undo whatever a crash interrupted.
"""

from __future__ import annotations

import ctypes
import dataclasses
import ctypes.util
import datetime as dt
import errno
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from styled.config import DaemonConfig
from styled.errors import SpoolError, StyledError
from styled.files import atomic_write_json, atomic_write_text, fsync_directory, fsync_path

log = logging.getLogger(__name__)

JOB_FILE = "job.yaml"
JOB_FILE_ALIASES = (JOB_FILE, "job.yml")
SPEC_SUFFIXES = (".yaml", ".yml")
#: Writers that follow the convention write under these suffixes and rename when done.
PARTIAL_SUFFIXES = (".part", ".tmp")
#: Spec keys that name files, in the order they are resolved.
PATH_KEYS = ("content", "style", "weights")
STATE_FILE = "state.json"
PROGRESS_FILE = "progress.json"
#: A quick AdaIN rendering of an optimisation job, written within seconds of the claim.
PREVIEW_FILE = "preview.png"
CHECKPOINT_FILE = "checkpoint.npz"
JOB_DIR = "job"
INPUTS_DIR = "inputs"
LIBRARY_INPUTS_DIR = "library"
#: Job names become folder names: keep them short enough for every filesystem, with room for "-NN".
MAX_NAME_CHARS = 80
UNNAMED = "unnamed"
_NAME_UNSAFE = re.compile(r"[^\w.\-]+")
#: Temporary folders this module creates in outbox/ and failed/ (".NAME.tmp-XXXX").
_TEMP_MARK = ".tmp-"
_DONE_PREFIX = ".done-"
#: Parsed references of this many specs are remembered between inbox scans.
REFERENCE_CACHE_SIZE = 4096


@dataclass
class PoisonJobError(SpoolError):
    """A job took the worker down ``max_attempts`` times."""

    kind: str = field(default="poison", init=False)


class Status:
    """The values of state.json's ``status``, in the order a job passes through them."""

    CLAIMING = "claiming"
    QUEUED = "queued"
    RENDERING = "rendering"
    INTERRUPTED = "interrupted"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILING = "failing"
    FAILED = "failed"


def now_iso() -> str:
    """The current time as ISO 8601 UTC, to the millisecond (for state and report timestamps)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


# --- names and paths ----------------------------------------------------------------------------


def job_name(raw: str) -> str:
    """A safe folder name from a file or folder name: letters, digits, '.', '-', '_' only.

    Raises SpoolError when nothing usable is left, so that no name can reach outside the outbox.
    """
    name = _NAME_UNSAFE.sub("_", raw).strip("._- ")[:MAX_NAME_CHARS].rstrip("._- ")
    if not name or not any(char.isalnum() for char in name):
        raise SpoolError(f"the job name {raw!r} cannot be used as a folder name", key="name",
                         hint="name the job with letters, digits, '-' or '_'")
    return name


def check_output_name(value: str, suffixes: Iterable[str], where: str | None = None,
                      line: int | None = None, reserved: Iterable[str] = ()) -> str:
    """The spec's ``output`` must be a plain file name inside the result folder, not one of ours."""
    path = PurePosixPath(value)
    if path.is_absolute() or len(path.parts) != 1 or value in (".", "..") or "\\" in value:
        raise SpoolError(f"output {value!r} would be written outside the job's outbox folder",
                         where=where, key="output", line=line, hint="give a plain file name such as result.png")
    if value.startswith("."):
        raise SpoolError(f"output {value!r} is a hidden file name", where=where, key="output", line=line,
                         hint="give a plain file name such as result.png")
    if value.lower() in {name.lower() for name in reserved}:
        raise SpoolError(f"output {value!r} is the name of a file that comes with every result", where=where,
                         key="output", line=line, hint="choose another name, such as result.png")
    if path.suffix.lower() not in suffixes:
        raise SpoolError(f"cannot write {path.suffix or 'files without a suffix'!r} images", where=where,
                         key="output", line=line, hint=f"use one of {', '.join(sorted(suffixes))}")
    return value


def confine(value: str, roots: Iterable[Path], *, key: str, where: str | None = None,
            line: int | None = None, flat: bool = False) -> Path:
    """Resolve a spec path inside the first of ``roots`` that holds it, refusing anything outside.

    Refuses absolute paths, '~', '..' and symlinks that point outside their root. ``flat`` (loose
    specs, whose first root is the inbox) looks for names with a folder only in the library, since
    the inbox's sub-folders are other people's jobs. A name found nowhere resolves into the first
    root, where loading reports it missing.
    """
    roots = list(roots)
    _check_relative(value, key=key, where=where, line=line)
    nested = len(PurePosixPath(value).parts) > 1
    for root in roots[1:] if flat and nested else roots:
        candidate = root / value
        if os.path.lexists(candidate):
            real = candidate.resolve()
            if not _is_inside(real, root.resolve()):
                raise SpoolError(f"{value!r} is a link to {real}, outside the folders a job may read",
                                 where=where, key=key, line=line,
                                 hint="copy the file into the job folder instead of linking to it")
            return real
    if flat and nested:
        raise SpoolError(f"{value!r} is in a sub-folder of the inbox", where=where, key=key, line=line,
                         hint="a loose spec names images lying in the inbox itself (or in a library "
                              "folder); use a job folder instead")
    return roots[0] / value


def _check_relative(value: str, *, key: str, where: str | None, line: int | None) -> None:
    hint = "name a file inside the job folder, the inbox or a library folder"
    path = PurePosixPath(value)
    if path.is_absolute() or value.startswith("~") or re.match(r"^[A-Za-z]:[\\/]", value):
        raise SpoolError(f"absolute path {value!r} is not allowed", where=where, key=key, line=line, hint=hint)
    if ".." in path.parts or ".." in value.split("\\"):
        raise SpoolError(f"{value!r} reaches outside the job with '..'", where=where, key=key, line=line,
                         hint=hint)


def _is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def spec_references(data: Any) -> list[tuple[str, str]]:
    """(key, value) of every file a raw spec names, skipping values of the wrong type."""
    if not isinstance(data, dict):
        return []
    found = []
    for key in PATH_KEYS:
        value = data.get(key)
        values = value if isinstance(value, list) else [value]
        found.extend((key, item) for item in values if isinstance(item, str) and item)
    return found


def read_spec_leniently(path: Path, max_bytes: int) -> Any:
    """The spec's data, or None when it is too big, unreadable or not YAML (validation says why later)."""
    try:
        if path.is_symlink() or path.stat().st_size > max_bytes:
            return None
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


# --- the inbox ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """An inbox entry that will become a job: a job folder, a loose spec, or a link to refuse."""

    path: Path
    kind: str  # "folder" | "loose"
    raw_name: str

    @property
    def spec_path(self) -> Path:
        if self.kind == "loose":
            return self.path
        for alias in JOB_FILE_ALIASES:
            if os.path.lexists(self.path / alias):
                return self.path / alias
        return self.path / JOB_FILE

    @property
    def is_link(self) -> bool:
        return self.path.is_symlink()


def is_ignored(name: str) -> bool:
    """Dotfiles and files still being written (``*.part``, ``*.tmp``) are never taken."""
    return name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES)


def scan_inbox(inbox: Path) -> list[Pending]:
    """Every job in the inbox, oldest first; loose images are not jobs of their own."""
    found = []
    try:
        entries = list(os.scandir(inbox))
    except FileNotFoundError:
        return []
    for entry in entries:
        if is_ignored(entry.name):
            continue
        if entry.is_dir(follow_symlinks=True):
            found.append((entry, Pending(Path(entry.path), "folder", entry.name)))
        elif entry.name.lower().endswith(SPEC_SUFFIXES):
            found.append((entry, Pending(Path(entry.path), "loose", Path(entry.name).stem)))
    found.sort(key=lambda item: (_mtime(item[0]), item[0].name))
    return [pending for _, pending in found]


def _mtime(entry: os.DirEntry) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


@dataclass
class Readiness:
    """What stands between a pending entry and its claim."""

    files: dict[Path, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime_ns)
    missing: list[str] = field(default_factory=list)  # referenced names not there yet
    writing: list[str] = field(default_factory=list)  # *.part / *.tmp inside a job folder


def readiness(pending: Pending, config: DaemonConfig) -> Readiness:
    """The files whose size and mtime must hold still, and the referenced files still missing."""
    ready = Readiness()
    _add_signature(ready, pending.path)
    if pending.is_link:
        return ready  # a link is refused at claim time; its target is nobody's business
    if pending.kind == "folder":
        _add_folder(ready, pending.path)
        roots = [pending.path, *config.library]
    else:
        roots = [config.inbox, *config.library]
    spec = pending.spec_path
    if not os.path.lexists(spec):
        ready.missing.append(spec.name)
        return ready
    for key, value in cached_references(spec, config.max_spec_bytes):
        try:
            path = confine(value, roots, key=key, flat=pending.kind == "loose")
        except SpoolError:
            continue  # refused at claim time or by validation, with the reason
        if not path.exists():
            ready.missing.append(value)
        elif pending.kind == "loose" and _is_inside(path, config.inbox.resolve()):
            _add_signature(ready, path)
    return ready


def cached_references(spec: Path, max_bytes: int) -> tuple[tuple[str, str], ...]:
    """The files a spec names; parsed again only when the spec's size or mtime changes (the inbox
    is polled several times a second while jobs settle, and YAML parsing is the costly part)."""
    try:
        info = spec.lstat()
    except OSError:
        return ()
    return _references(str(spec), info.st_size, info.st_mtime_ns, max_bytes)


@functools.lru_cache(maxsize=REFERENCE_CACHE_SIZE)
def _references(spec: str, size: int, mtime_ns: int, max_bytes: int) -> tuple[tuple[str, str], ...]:
    return tuple(spec_references(read_spec_leniently(Path(spec), max_bytes)))


def _add_signature(ready: Readiness, path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    ready.files[path] = (info.st_size, info.st_mtime_ns)


def _add_folder(ready: Readiness, folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            if name.lower().endswith(PARTIAL_SUFFIXES):
                ready.writing.append(name)
            _add_signature(ready, Path(root) / name)
        _add_signature(ready, Path(root))


class Settler:
    """Remembers when each file last changed, to take only files that have held still long enough.

    A file's signature is its size and mtime; it has settled once the signature has been the same
    for ``settle_seconds`` of observations. mtime alone is not enough: ``cp -p`` and rsync write old
    mtimes while the size still grows.
    """

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[int, int], float]] = {}

    def observe(self, files: dict[Path, tuple[int, int]], now: float) -> float:
        """Record the signatures; return how long the most recently changed one has held still."""
        still = float("inf")
        for path, signature in files.items():
            previous = self._seen.get(path)
            if previous is None or previous[0] != signature:
                self._seen[path] = (signature, now)
                still = 0.0
            else:
                still = min(still, now - previous[1])
        return still if files else 0.0

    def forget_except(self, keep: Iterable[Path]) -> None:
        keep = set(keep)
        for path in [p for p in self._seen if p not in keep]:
            del self._seen[path]


# --- work ---------------------------------------------------------------------------------------


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

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text(encoding="utf-8"))

    def save_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.state_path, state)

    def update(self, **changes: Any) -> dict[str, Any]:
        """Read, change and atomically rewrite state.json; return the new state."""
        state = self.state()
        state.update(changes)
        self.save_state(state)
        return state

    @property
    def name(self) -> str:
        return self.state().get("name", self.path.name)

    def spec_path(self) -> Path:
        return self.job_dir / self.state()["spec"]


class Spool:
    """The four folders and the moves between them. Not thread-safe: claims happen on one thread;
    deliveries from several workers are serialised by the caller's lock."""

    def __init__(self, config: DaemonConfig):
        self.config = config

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
            if path.name.startswith(_DONE_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_dir() and not path.name.startswith("."):
                job = self._recover_one(WorkJob(path))
                if job is not None:
                    jobs.append(job)
        return jobs

    def _remove_temporaries(self) -> None:
        for folder in (self.config.outbox, self.config.failed):
            for path in folder.iterdir():
                if path.name.startswith(".") and _TEMP_MARK in path.name and path.is_dir():
                    log.info("removing %s, a delivery that a crash interrupted", path)
                    shutil.rmtree(path, ignore_errors=True)

    def _recover_one(self, job: WorkJob) -> WorkJob | None:
        try:
            state = job.state()
        except (OSError, ValueError):
            if not os.path.lexists(job.job_dir):
                log.info("removing %s: a claim that never happened", job.path)
                shutil.rmtree(job.path, ignore_errors=True)
            else:  # state.json is written before the claim's rename, so this is outside tampering
                log.error("%s has no readable %s; leaving it for a person to look at", job.path, STATE_FILE)
            return None
        status = state.get("status")
        if status == Status.CLAIMING:
            return self._recover_claim(job, state)
        if status in (Status.DELIVERING, Status.DELIVERED) and self.find_delivered(self.config.outbox, state):
            log.info("%s was already delivered; cleaning up", state["name"])
            self.finish(job)
            return None
        if status in (Status.FAILING, Status.FAILED) and self.find_delivered(self.config.failed, state):
            self.finish(job)
            return None
        return job

    def _recover_claim(self, job: WorkJob, state: dict[str, Any]) -> WorkJob | None:
        taken = job.job_dir if state.get("kind") == "folder" else job.job_dir / state["spec"]
        if not os.path.lexists(taken):
            log.info("removing %s: a claim that never happened", job.path)
            shutil.rmtree(job.path, ignore_errors=True)
            return None
        self._release_loose_images(state.get("release", []))
        job.update(status=Status.QUEUED)
        return job

    def find_delivered(self, folder: Path, state: dict[str, Any]) -> Path | None:
        """The outbox (or failed) folder holding this job id, if a delivery got that far."""
        name, job_id = state["name"], state["id"]
        pattern = re.compile(rf"^{re.escape(name)}(-\d+)?$")
        for path in folder.iterdir():
            if pattern.match(path.name) and _delivered_id(path) == job_id:
                return path
        return None

    # --- claiming ---

    def claim(self, pending: Pending, received: str | None = None) -> WorkJob | None:
        """Move a settled inbox entry into work/ with one rename; None when it vanished meanwhile."""
        try:
            name = job_name(pending.raw_name)
            claim_error = None
        except SpoolError as error:
            name, claim_error = UNNAMED, dataclasses.replace(error, where=str(pending.path))
        job = self._new_work_folder(name)
        spec_name = pending.spec_path.name if pending.kind == "loose" else JOB_FILE
        state = {"id": uuid.uuid4().hex, "name": name, "kind": pending.kind, "spec": spec_name,
                 "source": str(pending.path), "status": Status.CLAIMING, "attempts": 0,
                 "received": received or now_iso(), "claimed": None,
                 "defaults": dict(self.config.defaults), "release": []}
        if pending.is_link:
            claim_error = SpoolError("is a symbolic link; jobs must be real files and folders",
                                     where=str(pending.path), hint="copy the job into the inbox instead")
        try:
            if pending.kind == "loose":
                claim_error = self._claim_loose(pending, job, state, claim_error)
            else:
                state["spec"] = pending.spec_path.name
                job.save_state(state)
                os.rename(pending.path, job.job_dir)
        except FileNotFoundError:
            shutil.rmtree(job.path, ignore_errors=True)
            return None
        if claim_error is not None:
            state["claim_error"] = claim_error.as_dict()
        state.update(status=Status.QUEUED, claimed=now_iso())
        job.save_state(state)
        fsync_directory(self.config.work)
        self._release_loose_images(state["release"])
        return job

    def _new_work_folder(self, name: str) -> WorkJob:
        for candidate in _numbered(name):
            try:
                (self.config.work / candidate).mkdir()
                return WorkJob(self.config.work / candidate)
            except FileExistsError:
                continue
        raise AssertionError("unreachable")  # pragma: no cover

    def _claim_loose(self, pending: Pending, job: WorkJob, state: dict[str, Any],
                     claim_error: StyledError | None) -> StyledError | None:
        """Link the images a loose spec names into the job, then take the spec with one rename."""
        job.job_dir.mkdir()
        data = None if pending.is_link else read_spec_leniently(pending.path, self.config.max_spec_bytes)
        inbox = self.config.inbox.resolve()
        for key, value in spec_references(data):
            try:
                path = confine(value, [self.config.inbox, *self.config.library], key=key,
                               where=str(pending.path), flat=True)
            except SpoolError as error:
                claim_error = claim_error or error
                continue
            if path.is_file() and _is_inside(path, inbox) and value not in state["release"]:
                _link_or_copy(path, job.job_dir / value)
                state["release"].append(value)
        job.save_state(state)
        os.rename(pending.path, job.job_dir / state["spec"])
        return claim_error

    def _release_loose_images(self, names: list[str]) -> None:
        """Remove claimed loose images from the inbox unless another pending spec still names them."""
        if not names:
            return
        wanted = set()
        for pending in scan_inbox(self.config.inbox):
            if pending.kind == "loose" and not pending.is_link:
                wanted.update(value for _, value in cached_references(pending.path, self.config.max_spec_bytes))
        for name in names:
            if name not in wanted:
                (self.config.inbox / name).unlink(missing_ok=True)

    # --- delivery ---

    def temporary_folder(self, parent: Path, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f".{name}{_TEMP_MARK}", dir=parent))

    def place(self, temporary: Path, parent: Path, name: str) -> Path:
        """Rename a finished temporary folder to ``parent/NAME`` (or NAME-2, ...), never over another."""
        fsync_directory(temporary)
        for candidate in _numbered(name):
            target = parent / candidate
            if os.path.lexists(target):
                continue
            try:
                rename_no_replace(temporary, target)
            except FileExistsError:
                continue
            fsync_directory(parent)
            return target
        raise AssertionError("unreachable")  # pragma: no cover

    def copy_inputs(self, job: WorkJob, destination: Path) -> None:
        """The claimed spec and images, as they arrived (links stay links, nothing is followed)."""
        source = job.job_dir
        if source.is_symlink():
            destination.mkdir()
            os.symlink(os.readlink(source), destination / source.name)
        elif source.is_dir():
            shutil.copytree(source, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            destination.mkdir()

    def fail(self, job: WorkJob, error: dict[str, Any], text: str) -> Path:
        """Move a job to failed/NAME with error.txt, error.json and its inputs; return where it went."""
        state = job.update(status=Status.FAILING, error=error, finished=now_iso())
        temporary = self.temporary_folder(self.config.failed, state["name"])
        try:
            self.copy_inputs(job, temporary / INPUTS_DIR)
            record = {**error, "job": _job_summary(state)}
            atomic_write_json(temporary / "error.json", record)
            atomic_write_text_file(temporary / "error.txt", text)
            target = self.place(temporary, self.config.failed, state["name"])
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        job.update(status=Status.FAILED, delivered_to=str(target))
        self.finish(job)
        return target

    def finish(self, job: WorkJob) -> None:
        """Remove a delivered (or failed) job from work/: rename it aside first, so it is atomic."""
        aside = job.path.with_name(f"{_DONE_PREFIX}{job.path.name}-{uuid.uuid4().hex[:8]}")
        os.rename(job.path, aside)
        fsync_directory(job.path.parent)
        shutil.rmtree(aside, ignore_errors=True)

    def work_jobs(self) -> Iterator[WorkJob]:
        for path in sorted(self.config.work.iterdir(), key=_path_mtime):
            if path.is_dir() and not path.name.startswith("."):
                yield WorkJob(path)


def _job_summary(state: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "kind", "source", "received", "claimed", "started", "finished", "attempts")
    return {key: state.get(key) for key in keys}


def atomic_write_text_file(path: Path, text: str) -> None:
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def _delivered_id(folder: Path) -> str | None:
    """The job id recorded in an outbox report.json or a failed error.json."""
    for name, keys in (("report.json", ("job", "id")), ("error.json", ("job", "id"))):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key in keys:
            data = data.get(key) if isinstance(data, dict) else None
        if isinstance(data, str):
            return data
    return None


def _numbered(name: str) -> Iterator[str]:
    yield name
    number = 2
    while True:
        yield f"{name}-{number}"
        number += 1


def _path_mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _link_or_copy(source: str | os.PathLike, destination: str | os.PathLike) -> None:
    """Hard-link (free, and the bytes are already settled); copy where links are not allowed."""
    try:
        os.link(source, destination, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, destination, follow_symlinks=False)


# --- rename without replacing -------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _load_renameat2() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.renameat2
    except (OSError, AttributeError):
        return None


_renameat2 = _load_renameat2()


def rename_no_replace(source: Path, target: Path) -> None:
    """Rename, raising FileExistsError instead of replacing ``target`` (even an empty folder)."""
    if _renameat2 is not None:
        result = _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), str(target))
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), str(source))
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(error.errno, error.strerror, str(target)) from None
        raise


# --- one daemon per spool -----------------------------------------------------------------------

LOCK_FILE = ".styled-serve.lock"
LOCK_PATIENCE_SECONDS = 2.0
LOCK_RETRY_SECONDS = 0.05


class SpoolLock:
    """An flock on work/.styled-serve.lock, held while a daemon serves the spool.

    Two daemons on one spool would each "recover" the other's running jobs. The lock file holds
    the pid, so that ``styled status`` can say who is serving; the kernel drops the lock when the
    process dies, even by kill -9, so a stale file never blocks a restart.
    """

    def __init__(self, work: Path):
        self.path = work / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(self) -> None:
        import fcntl

        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not _try_flock(descriptor):
            os.close(descriptor)
            raise SpoolError(f"another styled serve (pid {holder_pid(self.path) or '?'}) is using this spool",
                             where=str(self.path.parent), key="work",
                             hint="stop it first, or give this daemon a config with its own folders") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> SpoolLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _try_flock(descriptor: int) -> bool:
    """The exclusive lock, retried briefly: ``styled status`` holds a shared one for an instant."""
    import fcntl

    deadline = time.monotonic() + LOCK_PATIENCE_SECONDS
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(LOCK_RETRY_SECONDS)


def holder_pid(lock_path: Path) -> int | None:
    """The pid of the daemon serving the spool, or None when no daemon holds the lock."""
    import fcntl

    try:
        descriptor = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(descriptor, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


# --- submitting -----------------------------------------------------------------------------------


def submit(config: DaemonConfig, content: Path | None, styles: list[Path], overrides: list[str],
           name: str | None = None) -> Path:
    """Write a job folder under a temporary name, then rename it into the inbox; return its path.

    The spec is validated first (against the daemon's defaults), so mistakes show up here and not
    later in failed/.
    """
    from styled.config import apply_overrides, build_job_spec, merge_defaults
    from styled.errors import ImageError

    for path in [*([content] if content else []), *styles]:
        if not path.is_file():
            raise ImageError("the image does not exist", where=str(path), hint="check the path")
    used: set[str] = set()
    files = {}
    data: dict[str, Any] = {}
    if content is not None:
        data["content"] = _submitted_name(content, "content", used)
        files[data["content"]] = content
    data["style"] = []
    for style in styles:
        data["style"].append(_submitted_name(style, "style", used))
        files[data["style"][-1]] = style
    data = apply_overrides(data, overrides)
    build_job_spec(merge_defaults(config.defaults, data), source="styled submit")
    name = job_name(name or (content or styles[0]).stem)
    config.inbox.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{name}{_TEMP_MARK}", dir=config.inbox))
    try:
        for file_name, source in files.items():
            shutil.copyfile(source, temporary / file_name)
            fsync_path(temporary / file_name)
        atomic_write_text(temporary / JOB_FILE, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return Spool(config).place(temporary, config.inbox, name)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _submitted_name(path: Path, role: str, used: set[str]) -> str:
    """The image's own file name, unless it is taken, hidden or looks unfinished."""
    name = path.name
    if name in used or is_ignored(name) or name == JOB_FILE:
        stem = _NAME_UNSAFE.sub("_", path.stem).strip("._") or role
        name = next(f"{role}-{n}-{stem}{path.suffix}" for n in range(1, len(used) + 2)
                    if f"{role}-{n}-{stem}{path.suffix}" not in used)
    used.add(name)
    return name
