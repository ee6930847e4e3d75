"""Every exception type of the library, with its kind. Only ``styled.cli`` turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class StyledError(Exception):
    """Base class: a message saying what is wrong, where, and how to fix it.

    ``where`` names the file, and ``key``/``line`` the YAML key and line, when they are known.
    """

    message: str
    where: str | None = None
    key: str | None = None
    line: int | None = None
    hint: str | None = None
    #: What error.json calls this kind of error; each subclass names its own.
    kind: ClassVar[str] = "error"

    def __init_subclass__(cls, kind: str | None = None, **kwargs: object) -> None:
        """``class ImageError(StyledError, kind="image")``: each kind is named where its class is."""
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        location = self.location()
        text = f"{location}: {self.message}" if location else self.message
        return f"{text} ({self.hint})" if self.hint else text

    def location(self) -> str:
        parts = []
        if self.where:
            parts.append(str(self.where))
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.key:
            parts.append(f"key '{self.key}'")
        return ", ".join(parts)

    def as_dict(self) -> dict:
        """The error for programs (error.json)."""
        return {
            "error": self.kind,
            "message": self.message,
            "file": self.where,
            "key": self.key,
            "line": self.line,
            "hint": self.hint,
            "text": str(self),
        }


class JobSpecError(StyledError, kind="job_spec"):
    """A job spec (YAML or --set) is malformed, has an unknown key, or a bad value."""


class ConfigError(StyledError, kind="config"):
    """The daemon configuration is invalid."""


class ImageError(StyledError, kind="image"):
    """An image is missing, unreadable, too large, or in a format we do not accept."""


class WeightsError(StyledError, kind="weights"):
    """Network weights are missing, malformed, or refused by the restricted unpickler."""


class DeviceError(StyledError, kind="device"):
    """The requested device does not exist on this machine."""


class PluginError(StyledError, kind="plugin"):
    """A plugin is unknown, failed to load, or was given bad options."""


class MemoryBudgetError(StyledError, kind="memory"):
    """A render needs more memory than ``max_memory`` allows, even tiled; or a term cannot be tiled."""


class FileKindError(StyledError, kind="file"):
    """A path names a FIFO, a device, a socket, a link or a folder where a regular file is needed."""


class SpoolError(StyledError, kind="spool"):
    """A job in the spool cannot be taken (bad name, escaping path, oversize spec)."""


class PoisonJobError(SpoolError, kind="poison"):
    """A job took the worker down ``max_attempts`` times."""


class ClusterError(StyledError, kind="cluster"):
    """The Dask cluster cannot be reached or started, or a worker cannot see the spool."""


class VideoError(StyledError, kind="video"):
    """A clip cannot be read or written: not a video, no video stream, over a limit, a variable frame rate."""


class JobControlError(StyledError, kind="control"):
    """A job cannot be cancelled, retried or given a priority as asked: unknown, or already done."""


class JobCancelled(StyledError, kind="cancelled"):
    """Someone cancelled the job (``styled cancel``, the web page); its failure record says when."""


class RenderFailed(StyledError, kind="render"):
    """The engine raised something that is not a StyledError: a bug, or the device gave up."""


ERROR_TYPES: tuple[type[StyledError], ...] = (
    JobSpecError, ConfigError, ImageError, WeightsError, DeviceError, PluginError, FileKindError, SpoolError,
    PoisonJobError, RenderFailed, MemoryBudgetError, ClusterError, VideoError, JobControlError, JobCancelled,
)


def error_from_dict(data: dict) -> StyledError:
    """Rebuild an error saved as ``as_dict()`` (state.json, error.json): its kind survives."""
    kinds = {cls.kind: cls for cls in ERROR_TYPES}
    cls = kinds.get(data.get("error"), SpoolError)
    return cls(message=data.get("message", "unknown error"), where=data.get("file"), key=data.get("key"),
               line=data.get("line"), hint=data.get("hint"))
