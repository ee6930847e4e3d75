"""``work/NAME/state.json``: the life of one claimed job, as a typed record read and written here only.

state.json is written before each step a job takes (claim, render, delivery), so that a restart
after a crash knows what to finish or undo (styled.daemon.spool). Version 1 files, written before
the record was typed, carry no ``version`` and are read the same way: every key they have means
what it meant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from styled.io.files import atomic_write_json

log = logging.getLogger(__name__)

STATE_VERSION = 3
#: state.json files without a ``version`` key were written by styled 0.1.0 (the untyped record).
UNVERSIONED = 1


class Status:
    """The values of ``JobState.status``, in the order a job passes through them."""

    CLAIMING = "claiming"
    QUEUED = "queued"
    PREPARING = "preparing"
    RENDERING = "rendering"
    INTERRUPTED = "interrupted"
    #: A cluster worker has written the delivery into work/NAME/result/; the daemon publishes it.
    RENDERED = "rendered"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILING = "failing"
    FAILED = "failed"


def now_iso() -> str:
    """The current time as ISO 8601 UTC, to the millisecond (for state and report timestamps)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class JobState:
    """One job's record. Timestamps are ISO 8601 text (:func:`now_iso`); errors are ``as_dict()``s."""

    id: str
    name: str
    kind: str  # "folder" | "loose"
    spec: str  # the spec's file name inside work/NAME/job/
    source: str  # where it was in the inbox
    status: str = Status.CLAIMING
    attempts: int = 0
    received: str | None = None
    claimed: str | None = None
    started: str | None = None
    finished: str | None = None
    delivered: str | None = None
    device: str | None = None
    #: Who ran the latest attempt: ``cpu#1`` for the daemon's own workers, a Dask worker's address.
    worker: str | None = None
    #: The daemon config's job-spec defaults at the claim, so a reload does not change a queued job.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: Loose images linked into the job, to remove from the inbox once no other spec names them.
    release: tuple[str, ...] = ()
    claim_error: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    checkpoint: Mapping[str, Any] | None = None
    resumed_from: tuple[Mapping[str, Any], ...] = ()
    delivered_to: str | None = None
    #: Entries the claim did not copy (links, pipes, devices), as ``LeftOut.to_dict()``s.
    left_out: tuple[Mapping[str, Any], ...] = ()
    #: The device the spec asks for (read at the claim), so that a worker on it takes the job.
    wants_device: str | None = None
    #: The spec's ``priority`` at the claim, or as changed since (styled.daemon.control).
    priority: int = 0
    #: Crashes in a row that made no progress: only these count towards a poison job.
    strikes: int = 0
    #: The furthest any attempt has come, ``{"done": iterations, "phase": rank}``, and the
    #: iterations of the checkpoint the next attempt starts from (``start_checkpoint``).
    high_water: Mapping[str, int] | None = None
    version: int = STATE_VERSION

    def but(self, **changes: Any) -> JobState:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; keys whose value is None are left out, as version 1 wrote them."""
        data = {key: value for key, value in dataclasses.asdict(self).items() if value is not None}
        for key in _TUPLE_KEYS:
            data[key] = [dict(item) if isinstance(item, Mapping) else item for item in getattr(self, key)]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobState:
        """Read any version's record; keys this version does not know are logged and dropped."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            log.debug("state.json of %s: ignoring unknown keys %s", data.get("name"), ", ".join(unknown))
        values = {key: value for key, value in data.items() if key in known}
        for key in _TUPLE_KEYS:
            values[key] = tuple(values.get(key) or ())
        values["defaults"] = dict(values.get("defaults") or {})
        values.setdefault("version", UNVERSIONED)
        return cls(**values)


_TUPLE_KEYS = ("release", "resumed_from", "left_out")


def read_state(path: Path) -> JobState:
    """The record in ``path``; OSError, ValueError or TypeError when it is missing or damaged."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return JobState.from_dict(data)


def write_state(path: Path, state: JobState) -> None:
    """Write atomically, as the current version (an old record is upgraded when first rewritten)."""
    atomic_write_json(path, state.but(version=STATE_VERSION).to_dict())
