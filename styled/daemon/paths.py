"""Names and paths a job may use: its folder name, its output's name, and the files its spec names,
confined to the job's folder, the inbox (loose specs) and the library folders.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from styled.errors import SpoolError

#: Job names become folder names: keep them short enough for every filesystem, with room for "-NN".
MAX_NAME_CHARS = 80
UNNAMED = "unnamed"
NAME_UNSAFE = re.compile(r"[^\w.\-]+")


def job_name(raw: str) -> str:
    """A safe folder name from a file or folder name: letters, digits, '.', '-', '_' only.

    Raises SpoolError when nothing usable is left, so that no name can reach outside the outbox.
    """
    name = NAME_UNSAFE.sub("_", raw).strip("._- ")[:MAX_NAME_CHARS].rstrip("._- ")
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
        raise SpoolError(f"cannot write {path.suffix or 'files without a suffix'!r} results", where=where,
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
            if not is_inside(real, root.resolve()):
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


def is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
