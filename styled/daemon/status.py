"""``styled status``: jobs waiting, running, done and failed, read from the spool folders.

It reads only files the daemon writes atomically (state.json, progress.json, report.json,
error.json), so it gives a consistent answer while the daemon runs, and needs no connection to it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from styled.daemon.config import CLUSTER_FILE, DaemonConfig
from styled.daemon.inbox import cached_priority, scan_inbox
from styled.daemon.lock import LOCK_FILE, holder_pid
from styled.daemon.spool import (
    CANCEL_FILE,
    ERROR_JSON_FILE,
    LATEST_FILE,
    PREVIEW_FILE,
    PROGRESS_FILE,
    REPORT_JSON_FILE,
    STATE_FILE,
    read_json_object,
)
from styled.engine.types import clock

#: How many of the newest done and failed jobs the text output lists by name.
RECENT_LIMIT = 10


@dataclass(frozen=True)
class SpoolStatus:
    daemon_pid: int | None
    waiting: list[dict[str, Any]] = field(default_factory=list)
    running: list[dict[str, Any]] = field(default_factory=list)
    done: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: The Dask cluster's scheduler, dashboard and workers (work/.cluster.json), while the daemon runs one.
    cluster: dict[str, Any] | None = None
    #: How many jobs are done and failed in all (the lists may hold only the newest, see read_status).
    done_count: int = 0
    failed_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_status(config: DaemonConfig, recent: int | None = None) -> SpoolStatus:
    """A snapshot of the spool; the newest done and failed jobs come first, only the ``recent``
    newest of each read in detail when it is given (the counts cover them all)."""
    daemon_pid = holder_pid(config.work / LOCK_FILE)
    done, failed = folders_by_time(config.outbox), folders_by_time(config.failed)
    return SpoolStatus(
        daemon_pid=daemon_pid,
        waiting=waiting_jobs(config),
        running=[_running(path) for path in folders_by_time(config.work, newest_first=False)],
        done=[_done(path) for path in done[:recent]],
        failed=[_failed(path) for path in failed[:recent]],
        cluster=(read_json_object(config.work / CLUSTER_FILE) or None) if daemon_pid and config.cluster else None,
        done_count=len(done), failed_count=len(failed),
    )


def waiting_jobs(config: DaemonConfig) -> list[dict[str, Any]]:
    """The inbox's jobs in the order the daemon takes them: highest priority first, then oldest."""
    jobs = [{"name": p.path.name, "kind": p.kind, "path": str(p.path),
             "priority": cached_priority(p.spec_path, config)} for p in scan_inbox(config.inbox)]
    return sorted(jobs, key=lambda job: -job["priority"])  # stable: arrival order among equals


def folders_by_time(parent: Path, newest_first: bool = True) -> list[Path]:
    """The visible sub-folders (not links to folders), by modification time, from one scandir."""
    found = []
    try:
        with os.scandir(parent) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    found.append((entry.stat().st_mtime, entry.path))
                except OSError:
                    found.append((0.0, entry.path))
    except FileNotFoundError:
        return []
    found.sort(key=lambda item: item[0], reverse=newest_first)
    return [Path(path) for _, path in found]


def _running(path: Path) -> dict[str, Any]:
    state = read_json_object(path / STATE_FILE)
    return {"name": state.get("name", path.name), "status": state.get("status", "unknown"),
            "priority": state.get("priority", 0), "cancelling": (path / CANCEL_FILE).exists(),
            "attempts": state.get("attempts"), "device": state.get("device"), "worker": state.get("worker"),
            "resumed": bool(state.get("resumed_from")), "progress": read_json_object(path / PROGRESS_FILE) or None,
            "preview": str(path / PREVIEW_FILE) if (path / PREVIEW_FILE).exists() else None,
            "latest": str(path / LATEST_FILE) if (path / LATEST_FILE).exists() else None,
            "path": str(path)}


def _done(path: Path) -> dict[str, Any]:
    job = read_json_object(path / REPORT_JSON_FILE).get("job", {})
    return {"name": path.name, "delivered": job.get("delivered"), "worker": job.get("worker") or job.get("device"),
            "path": str(path)}


def _failed(path: Path) -> dict[str, Any]:
    error = read_json_object(path / ERROR_JSON_FILE)
    return {"name": path.name, "reason": error.get("text") or error.get("message"), "path": str(path)}


def format_status(status: SpoolStatus, limit: int = RECENT_LIMIT) -> str:
    """The human-readable report: one section per state, running jobs with progress and ETA."""
    lines = [f"daemon   {'running (pid %d)' % status.daemon_pid if status.daemon_pid else 'not running'}",
             *_cluster_lines(status.cluster), f"waiting  {len(status.waiting)}"]
    lines += [f"  {job['name']}  ({job['kind']}, priority {job['priority']})" for job in status.waiting[:limit]]
    lines.append(f"running  {len(status.running)}")
    for job in status.running:
        progress = job["progress"]
        if job["status"] == "rendering" and progress:
            tile = f"  tile {progress['tile']}/{progress['tiles']}" if progress.get("tiles") else ""
            frame = f"frame {progress['frame']}/{progress['frames']}  " if progress.get("frames") else ""
            detail = (f"{frame}scale {progress['scale']}/{progress['scales']}  iteration {progress['iteration']}/"
                      f"{progress['iterations']}{tile}  {progress['percent']:.0f}%  ETA {clock(progress.get('eta'))}"
                      f"  on {job['worker'] or job['device']}")
        else:
            detail = job["status"]
        resumed = "  (resumed)" if job["resumed"] else ""
        cancelling = "  (cancelling)" if job.get("cancelling") else ""
        priority = f"  priority {job['priority']}" if job.get("priority") else ""
        lines.append(f"  {job['name']}  {detail}{priority}{resumed}{cancelling}")
        if job.get("preview"):
            lines.append(f"    preview: {job['preview']}")
    lines.append(f"done     {status.done_count}")
    lines += [f"  {job['name']}" for job in status.done[:limit]]
    lines.append(f"failed   {status.failed_count}")
    lines += [f"  {job['name']}: {job['reason']}" for job in status.failed[:limit]]
    return "\n".join(lines)


def _cluster_lines(cluster: dict[str, Any] | None) -> list[str]:
    if not cluster:
        return []
    workers = cluster.get("workers") or []
    lines = [f"cluster  {cluster.get('scheduler')}  {len(workers)} worker(s)  dashboard {cluster.get('dashboard')}"]
    for worker in workers:
        jobs = ", ".join(worker.get("jobs") or []) or "idle"
        lines.append(f"  {worker.get('address')}  ({worker.get('host')})  {jobs}")
    return lines


def format_json(status: SpoolStatus) -> str:
    return json.dumps(status.to_dict(), indent=2) + os.linesep
