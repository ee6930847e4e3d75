"""``styled submit``: a job folder written where the daemon cannot see it, then renamed into the inbox."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from styled.daemon.config import DaemonConfig
from styled.daemon.inbox import JOB_FILE, is_ignored
from styled.daemon.paths import NAME_UNSAFE, job_name
from styled.engine.spec import JobSpec, build_job_spec
from styled.errors import ImageError
from styled.io.files import atomic_write_text, fsync_path, place_folder, staged_folder
from styled.settings.sources import apply_overrides, merge_defaults


def submit(config: DaemonConfig, content: Path | None, styles: list[Path], overrides: list[str],
           name: str | None = None) -> Path:
    """Write a job folder under a temporary name, then rename it into the inbox; return its path.

    The spec is validated first (against the daemon's defaults), so mistakes show up here and not
    later in failed/. What it writes is readable by a daemon running as another user (umask modes).
    """
    for path in [*([content] if content else []), *styles]:
        if not path.is_file():
            raise ImageError("the image does not exist", where=str(path), hint="check the path")
    data, files = _spec_and_files(content, styles)
    data = apply_overrides(data, overrides)
    check_job(config, data, "styled submit")

    def fill(folder: Path) -> None:
        for file_name, source in files.items():
            shutil.copyfile(source, folder / file_name)
            fsync_path(folder / file_name)
        atomic_write_text(folder / JOB_FILE, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    return place_job(config, name or (content or styles[0]).stem, fill)


def check_job(config: DaemonConfig, data: dict[str, Any], source: str,
              lines: dict[str, int] | None = None) -> JobSpec:
    """The spec ``data`` makes, the daemon's defaults applied as the daemon will apply them; raise
    JobSpecError (with its key) when it would fail as a job.yaml."""
    return build_job_spec(merge_defaults(config.defaults, data), source=source, lines=lines)


def place_job(config: DaemonConfig, name: str, fill: Callable[[Path], None]) -> Path:
    """A job folder ``inbox/NAME`` (or NAME-2, ...): ``fill`` writes its spec and images into a
    folder the daemon ignores, and one rename moves the whole job in; return its path. A ``fill``
    that raises leaves nothing behind."""
    name = job_name(name)
    config.inbox.mkdir(parents=True, exist_ok=True)
    with staged_folder(config.inbox, name) as temporary:
        fill(temporary)
        return place_folder(temporary, config.inbox, name)


def _spec_and_files(content: Path | None, styles: list[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The spec's content and style keys, and which file each name in the job folder copies."""
    used: set[str] = set()
    files: dict[str, Path] = {}
    data: dict[str, Any] = {}
    if content is not None:
        data["content"] = _submitted_name(content, "content", used)
        files[data["content"]] = content
    data["style"] = []
    for style in styles:
        data["style"].append(_submitted_name(style, "style", used))
        files[data["style"][-1]] = style
    return data, files


def _submitted_name(path: Path, role: str, used: set[str]) -> str:
    """The image's own file name, unless it is taken, hidden or looks unfinished."""
    name = path.name
    if name in used or is_ignored(name) or name == JOB_FILE:
        stem = NAME_UNSAFE.sub("_", path.stem).strip("._") or role
        name = next(f"{role}-{n}-{stem}{path.suffix}" for n in range(1, len(used) + 2)
                    if f"{role}-{n}-{stem}{path.suffix}" not in used)
    used.add(name)
    return name
