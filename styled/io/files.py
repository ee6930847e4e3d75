"""Files and folders that other processes may read: one way to write them, one permission policy.

Every write goes to a hidden temporary name in the same folder, is fsynced, then renamed into
place, so a reader sees the old file or the new one, never half of it. Folders are built the same
way: :func:`staged_folder` fills a hidden temporary folder and :func:`place_folder` renames it to
its name (or NAME-2, NAME-3, ...), never over another.

Permissions are those any Unix tool gives: files 0666 and folders 0777, less the umask, so that
under umask 022 the people who read the outbox can open their results. ``private=True`` makes a
folder only its owner can enter (the daemon's work/).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from styled.errors import FileKindError

#: Modes before the umask: what open(2) and mkdir(2) are given by every ordinary Unix tool.
FILE_MODE = 0o666
FOLDER_MODE = 0o777
PRIVATE_FOLDER_MODE = 0o700
#: Temporary files and folders are hidden and marked, so scans skip them and recovery finds them.
TEMP_MARK = ".tmp-"
TEMP_TOKEN_BYTES = 4


#: What messages call each kind of file that is not a regular one.
FILE_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFDIR: "a folder",
}


def kind_of(mode: int) -> str:
    """``a FIFO (named pipe)``, ``a symbolic link``, ... or ``a regular file``, from an st_mode."""
    return FILE_KINDS.get(stat.S_IFMT(mode), "a regular file")


# --- reading what others wrote ------------------------------------------------------------------


@contextmanager
def open_regular(path: Path, *, follow_links: bool = True) -> Iterator[BinaryIO]:
    """Open ``path`` for reading only if it is a regular file; FileKindError for anything else.

    A FIFO would block open(2) for ever and a device may do anything when read, so the kind is
    checked before opening, and again on the open descriptor (O_NONBLOCK, so that a FIFO swapped
    in meanwhile cannot block us). ``follow_links=False`` refuses a symbolic link in the last
    component (O_NOFOLLOW).
    """
    path = Path(path)
    _require_regular(os.stat(path) if follow_links else os.lstat(path), path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP and not follow_links:
            raise _not_regular(path, FILE_KINDS[stat.S_IFLNK]) from None
        raise
    try:
        _require_regular(os.fstat(descriptor), path)
        fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        stream = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with stream:
        yield stream


def read_regular(path: Path, *, follow_links: bool = True, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`), at most ``max_bytes`` + 1 of them.

    Reading one byte past the limit lets the caller tell a file that grew past it from one that
    fits, whatever its size said a moment ago.
    """
    with open_regular(path, follow_links=follow_links) as stream:
        return stream.read(-1 if max_bytes is None else max_bytes + 1)


# --- copying what others wrote -----------------------------------------------------------------

#: A job folder deeper than this, or with more entries, is not a job (a video's frames are a few
#: thousand files in one folder).
MAX_COPY_DEPTH = 16
MAX_COPY_ENTRIES = 100_000
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class LeftOut:
    """An entry a copy did not carry: what it was, and where a link pointed."""

    path: str  # relative to the copied folder
    kind: str  # "a symbolic link", "a FIFO (named pipe)", ...
    target: str | None = None

    def describe(self) -> str:
        pointing = f" to {self.target}" if self.target else ""
        return f"{self.path}: {self.kind}{pointing}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "target": self.target}


def copy_regular_tree(source: Path, destination: Path, name: str | None = None) -> list[LeftOut]:
    """Copy the regular files and folders under ``source`` into the new folder ``destination``.

    Every entry is opened relative to its parent folder's descriptor with O_NOFOLLOW, and checked
    with fstat on what was opened, so a link swapped in at any moment is never followed and a
    FIFO never blocks. What is not a regular file or folder is listed, not copied. A file with
    several hard links that belongs to someone else than ``source`` does is left out too: a hard
    link is how a user would hand over a file they may not read. ``name`` is what notes call
    ``source`` itself when it is not a folder (default: its own name).
    """
    left_out: list[LeftOut] = []
    try:
        folder = os.open(source, _DIRECTORY_FLAGS)
    except OSError as error:
        if error.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        left_out.append(_left_out_entry(Path(source).parent, Path(source).name, name or Path(source).name))
        make_folder(destination)
        return left_out
    try:
        owner = os.fstat(folder).st_uid
        make_folder(destination)
        _copy_folder(folder, Path(destination), "", _CopyBudget(owner), left_out)
    finally:
        os.close(folder)
    return left_out


def copy_regular_file(source: Path, destination: Path, *, owner: int | None = None) -> LeftOut | None:
    """Copy one regular file (not following a link in its last component); say why not otherwise."""
    parent = os.open(Path(source).parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        budget = _CopyBudget(os.fstat(parent).st_uid if owner is None else owner)
        return _copy_entry(parent, Path(source).name, Path(destination), Path(source).name, budget)
    finally:
        os.close(parent)


@dataclass
class _CopyBudget:
    owner: int
    entries: int = 0


def _copy_folder(folder: int, destination: Path, relative: str, budget: _CopyBudget,
                 left_out: list[LeftOut]) -> None:
    depth = relative.count("/") + 1 if relative else 0
    for name in sorted(os.listdir(folder)):
        budget.entries += 1
        if budget.entries > MAX_COPY_ENTRIES or depth > MAX_COPY_DEPTH:
            raise OSError(errno.EMFILE, f"more than {MAX_COPY_ENTRIES:,} entries or {MAX_COPY_DEPTH} levels")
        path = f"{relative}{name}"
        try:
            sub = os.open(name, _DIRECTORY_FLAGS, dir_fd=folder)
        except OSError as error:
            if error.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            missing = _copy_entry(folder, name, destination / name, path, budget)
            if missing is not None:
                left_out.append(missing)
            continue
        try:
            make_folder(destination / name)
            _copy_folder(sub, destination / name, f"{path}/", budget, left_out)
        finally:
            os.close(sub)


def _copy_entry(folder: int, name: str, destination: Path, relative: str, budget: _CopyBudget) -> LeftOut | None:
    if not stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
        return _left_out_entry(folder, name, relative)  # never opened: a device may act on open(2)
    try:
        descriptor = os.open(name, _SOURCE_FLAGS, dir_fd=folder)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO, errno.ENODEV, errno.EISDIR):
            return _left_out_entry(folder, name, relative)
        raise
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return LeftOut(relative, kind_of(info.st_mode))
        if info.st_nlink > 1 and info.st_uid != budget.owner:
            return LeftOut(relative, "a hard link to a file that belongs to another user")
        fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        _copy_bytes(descriptor, destination)
        os.utime(destination, ns=(info.st_atime_ns, info.st_mtime_ns))
        return None
    finally:
        os.close(descriptor)


def _copy_bytes(descriptor: int, destination: Path) -> None:
    target = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(os.dup(descriptor), "rb") as source, os.fdopen(target, "wb") as sink:
            shutil.copyfileobj(source, sink)
            sink.flush()
            os.fsync(sink.fileno())
    except BaseException:
        Path(destination).unlink(missing_ok=True)
        raise


def _left_out_entry(folder: int | Path, name: str, relative: str) -> LeftOut:
    """What ``name`` is, for the note: its kind, and where it points if it is a link."""
    dir_fd = folder if isinstance(folder, int) else None
    where = name if dir_fd is not None else str(Path(folder) / name)
    try:
        info = os.stat(where, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return LeftOut(relative, "gone before it could be read")
    target = os.readlink(where, dir_fd=dir_fd) if stat.S_ISLNK(info.st_mode) else None
    return LeftOut(relative, kind_of(info.st_mode), target)


def _require_regular(info: os.stat_result, path: Path) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _not_regular(path, kind_of(info.st_mode))


def _not_regular(path: Path, kind: str) -> FileKindError:
    return FileKindError(f"is {kind}, not a regular file", where=str(path),
                         hint="drop real files: styled reads no links, pipes, devices or sockets")


def _temporary_name(name: str) -> str:
    return f".{name}{TEMP_MARK}{secrets.token_hex(TEMP_TOKEN_BYTES)}"


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of our temporary files or folders (a crash may leave one behind)."""
    return name.startswith(".") and TEMP_MARK in name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, rename into place, fsync the folder."""
    atomic_write_stream(path, lambda stream: stream.write(data))


def atomic_write_stream(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """``write(stream)`` to a temporary name in the same folder, fsync, rename into place, fsync
    the folder: a reader sees the old file or the new one. Large arrays go straight to the file,
    without a second copy in memory."""
    path = Path(path)
    temporary = path.with_name(_temporary_name(path.name))
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text, ending in a newline."""
    atomic_write_bytes(path, (text if text.endswith("\n") else text + "\n").encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str))


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries (POSIX needs the folder itself synced after a rename)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def make_folder(path: Path, *, private: bool = False) -> Path:
    """mkdir with the policy's mode; FileExistsError when it is there."""
    os.mkdir(path, PRIVATE_FOLDER_MODE if private else FOLDER_MODE)
    return path


@contextmanager
def staged_folder(parent: Path, name: str, *, private: bool = False) -> Iterator[Path]:
    """A hidden temporary folder in ``parent`` to fill; removed if the block raises.

    Call :func:`place_folder` inside the block to give it its name; after that the cleanup finds
    nothing to remove.
    """
    temporary = make_folder(Path(parent) / _temporary_name(name), private=private)
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def remove_folder(path: Path, prefix: str) -> None:
    """Remove a folder so that readers see it whole or gone: rename it to a hidden ``prefix`` name
    beside it first, then delete that."""
    aside = path.with_name(f"{prefix}{path.name}-{secrets.token_hex(4)}")
    os.rename(path, aside)
    fsync_path(path.parent)
    shutil.rmtree(aside, ignore_errors=True)


def numbered(name: str) -> Iterator[str]:
    """NAME, NAME-2, NAME-3, ...: the names a folder may take when NAME is taken."""
    yield name
    number = 2
    while True:
        yield f"{name}-{number}"
        number += 1


def place_folder(temporary: Path, parent: Path, name: str) -> Path:
    """Rename a finished folder to ``parent/NAME`` (or NAME-2, ...), never over another; return it."""
    fsync_path(temporary)
    for candidate in numbered(name):
        target = Path(parent) / candidate
        if os.path.lexists(target):
            continue
        try:
            rename_no_replace(temporary, target)
        except FileExistsError:
            continue
        fsync_path(target.parent)
        return target
    raise AssertionError("unreachable")  # pragma: no cover


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
