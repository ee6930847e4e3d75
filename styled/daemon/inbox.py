"""The inbox: which entries are jobs, which files each one needs, and when it has settled.

The decisions are pure: :class:`InboxWatch` is given what a scan saw and the time, and says which
jobs to claim, which are still settling and which wait for a worker (tests/daemon/test_inbox_watch.py
drives it with a made-up clock). styled.daemon.service does the scanning and the claiming.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from styled.daemon.config import DaemonConfig
from styled.daemon.paths import confine, is_inside
from styled.engine.spec import PATH_KEYS
from styled.errors import SpoolError
from styled.io.files import read_regular
from styled.settings.sources import load_strict

JOB_FILE = "job.yaml"
JOB_FILE_ALIASES = (JOB_FILE, "job.yml")
SPEC_SUFFIXES = (".yaml", ".yml")
#: Writers that follow the convention write under these suffixes and rename when done.
PARTIAL_SUFFIXES = (".part", ".tmp")
#: Parsed references of this many specs are remembered between inbox scans.
REFERENCE_CACHE_SIZE = 4096
FOLDER = "folder"
LOOSE = "loose"


#: ``files(plugins_table)``: (dotted key, file name) of every file a raw spec's ``plugins:`` table
#: names (styled.plugins.manager.plugin_file_finder makes one from the plugins' schemas).
PluginFiles = Callable[[Mapping[str, Any]], list[tuple[str, str]]]


def spec_references(data: Any, plugin_files: PluginFiles | None = None) -> list[tuple[str, str]]:
    """(key, value) of every file a raw spec names, plugin options' files included, skipping
    values of the wrong type."""
    if not isinstance(data, dict):
        return []
    found = []
    for key in PATH_KEYS:
        value = data.get(key)
        values = value if isinstance(value, list) else [value]
        found.extend((key, item) for item in values if isinstance(item, str) and item)
    plugins = data.get("plugins")
    if plugin_files is not None and isinstance(plugins, Mapping):
        found.extend(plugin_files(plugins))
    return found


def read_spec_leniently(path: Path, max_bytes: int) -> Any:
    """The spec's data, or None when it is not a regular file, too big, unreadable or not YAML.

    The scan only wants to know which files a spec names; the job's validation says later, with
    the line, what is wrong. Nothing a spec holds can raise out of here or block it.
    """
    try:
        data = read_regular(path, follow_links=False, max_bytes=max_bytes)
        if len(data) > max_bytes:
            return None
        return load_strict(data.decode("utf-8"))[0]
    except Exception:  # noqa: BLE001 - see the docstring: any fault means "names nothing we know"
        return None



@dataclass(frozen=True)
class Pending:
    """An inbox entry that will become a job: a job folder, a loose spec, or a link to refuse."""

    path: Path
    kind: str  # FOLDER or LOOSE
    raw_name: str

    @property
    def spec_path(self) -> Path:
        if self.kind == LOOSE:
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
        try:
            is_folder = entry.is_dir(follow_symlinks=True)
        except OSError:  # swapped or removed while we looked: the next scan sees what it became
            continue
        if is_folder:
            found.append((entry, Pending(Path(entry.path), FOLDER, entry.name)))
        elif entry.name.lower().endswith(SPEC_SUFFIXES):
            found.append((entry, Pending(Path(entry.path), LOOSE, Path(entry.name).stem)))
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
    priority: int = 0  # the spec's ``priority``: higher is claimed first


def readiness(pending: Pending, config: DaemonConfig, plugin_files: PluginFiles | None = None) -> Readiness:
    """The files whose size and mtime must hold still, and the referenced files still missing."""
    ready = Readiness()
    _add_signature(ready, pending.path)
    if pending.is_link:
        return ready  # a link is refused at claim time; its target is nobody's business
    if pending.kind == FOLDER:
        _add_folder(ready, pending.path)
        roots = [pending.path, *config.library]
    else:
        roots = [config.inbox, *config.library]
    spec = pending.spec_path
    if not os.path.lexists(spec):
        ready.missing.append(spec.name)
        return ready
    ready.priority = cached_priority(spec, config)
    for key, value in cached_references(spec, config.max_spec_bytes, plugin_files):
        try:
            path = confine(value, roots, key=key, flat=pending.kind == LOOSE)
        except SpoolError:
            continue  # refused at claim time or by validation, with the reason
        if not path.exists():
            ready.missing.append(value)
        elif pending.kind == LOOSE and is_inside(path, config.inbox.resolve()):
            _add_signature(ready, path)
    return ready


def cached_references(spec: Path, max_bytes: int,
                      plugin_files: PluginFiles | None = None) -> tuple[tuple[str, str], ...]:
    """The files a spec names; parsed again only when the spec's size or mtime changes (the inbox
    is polled several times a second while jobs settle, and YAML parsing is the costly part)."""
    try:
        info = spec.lstat()
    except OSError:
        return ()
    return _references(str(spec), info.st_size, info.st_mtime_ns, max_bytes, plugin_files)


@functools.lru_cache(maxsize=REFERENCE_CACHE_SIZE)
def _references(spec: str, size: int, mtime_ns: int, max_bytes: int,
                plugin_files: PluginFiles | None) -> tuple[tuple[str, str], ...]:
    return tuple(spec_references(_raw_spec(spec, size, mtime_ns, max_bytes), plugin_files))


def spec_priority(data: Any, defaults: Mapping[str, Any] | None = None) -> int:
    """A raw spec's ``priority`` (else the config's default, else 0); a bad value counts as 0 here
    and fails the job's validation later, with its line."""
    value = data.get("priority") if isinstance(data, dict) else None
    if value is None and defaults:
        value = defaults.get("priority")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def cached_priority(spec: Path, config: DaemonConfig) -> int:
    """The spec's priority, parsed again only when the spec changes (as ``cached_references``)."""
    try:
        info = spec.lstat()
    except OSError:
        return spec_priority(None, config.defaults)
    return spec_priority(_raw_spec(str(spec), info.st_size, info.st_mtime_ns, config.max_spec_bytes), config.defaults)


@functools.lru_cache(maxsize=REFERENCE_CACHE_SIZE)
def _raw_spec(spec: str, size: int, mtime_ns: int, max_bytes: int) -> Any:
    return read_spec_leniently(Path(spec), max_bytes)


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


# --- the decisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanPlan:
    """What to do with each job a scan saw, oldest first."""

    claim: tuple[Pending, ...] = ()
    settling: tuple[Path, ...] = ()  # not settled yet: poll the inbox again soon
    waiting: tuple[Path, ...] = ()  # settled, waiting for a free worker
    writing: tuple[Path, ...] = ()  # *.part / *.tmp files inside: still being written
    new: tuple[Pending, ...] = ()  # seen for the first time in this scan


@dataclass
class InboxWatch:
    """Remembers, between scans, when each job was first seen and since when it misses a file.

    ``patient`` is False for ``styled serve --once``: nobody is still writing, so a job that names
    a missing file is claimed at once (and then fails, saying which file).
    """

    settle_seconds: float
    missing_file_seconds: float
    patient: bool = True
    settler: Settler = field(default_factory=lambda: Settler())
    first_seen: dict[Path, float] = field(default_factory=dict)
    incomplete_since: dict[Path, float] = field(default_factory=dict)

    def plan(self, observed: Iterable[tuple[Pending, Readiness]], now: float, free_workers: int) -> ScanPlan:
        """Decide for every observed job; forget the jobs no longer there. Of the settled jobs, the
        free workers get the highest ``priority`` first, and among equals the first seen."""
        settling, waiting, writing, new, seen = [], [], [], [], set()
        settled: list[tuple[int, float, int, Pending]] = []
        for order, (pending, ready) in enumerate(observed):
            seen.update(ready.files)
            seen.add(pending.path)
            if pending.path not in self.first_seen:
                self.first_seen[pending.path] = now
                new.append(pending)
            still = self.settler.observe(ready.files, now)
            if ready.writing:
                writing.append(pending.path)
            elif still < self.settle_seconds or not self._complete_or_given_up(pending.path, ready, now):
                settling.append(pending.path)
            else:
                settled.append((-ready.priority, self.first_seen[pending.path], order, pending))
        settled.sort(key=lambda item: item[:3])
        claim = [item[3] for item in settled[:max(0, free_workers)]]
        waiting = [item[3].path for item in settled[max(0, free_workers):]]
        self._forget_except(seen)
        return ScanPlan(tuple(claim), tuple(settling), tuple(waiting), tuple(writing), tuple(new))

    def _complete_or_given_up(self, path: Path, ready: Readiness, now: float) -> bool:
        """All referenced files are there, or they have been missing for missing_file_seconds."""
        if not ready.missing:
            self.incomplete_since.pop(path, None)
            return True
        if not self.patient:
            return True
        since = self.incomplete_since.setdefault(path, now)
        return now - since >= self.missing_file_seconds

    def _forget_except(self, seen: set[Path]) -> None:
        self.settler.forget_except(seen)
        for mapping in (self.first_seen, self.incomplete_since):
            for path in [p for p in mapping if p not in seen]:
                del mapping[path]
