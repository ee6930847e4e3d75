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


class JobSpecError(StyledError):
    """A job spec (YAML or --set) is malformed, has an unknown key, or a bad value."""

    kind = "job_spec"


class ConfigError(StyledError):
    """The daemon configuration is invalid."""

    kind = "config"


class ImageError(StyledError):
    """An image is missing, unreadable, too large, or in a format we do not accept."""

    kind = "image"


class WeightsError(StyledError):
    """Network weights are missing, malformed, or refused by the restricted unpickler."""

    kind = "weights"


class DeviceError(StyledError):
    """The requested device does not exist on this machine."""

    kind = "device"


class PluginError(StyledError):
    """A plugin is unknown, failed to load, or was given bad options."""

    kind = "plugin"


class SpoolError(StyledError):
    """A job in the spool cannot be taken (bad name, escaping path, oversize spec)."""

    kind = "spool"


class PoisonJobError(SpoolError):
    """A job took the worker down ``max_attempts`` times."""

    kind = "poison"


class RenderFailed(StyledError):
    """The engine raised something that is not a StyledError: a bug, or the device gave up."""

    kind = "render"


ERROR_TYPES: tuple[type[StyledError], ...] = (
    JobSpecError, ConfigError, ImageError, WeightsError, DeviceError, PluginError, SpoolError, PoisonJobError,
    RenderFailed,
)


def error_from_dict(data: dict) -> StyledError:
    """Rebuild an error saved as ``as_dict()`` (state.json, error.json): its kind survives."""
    kinds = {cls.kind: cls for cls in ERROR_TYPES}
    cls = kinds.get(data.get("error"), SpoolError)
    return cls(message=data.get("message", "unknown error"), where=data.get("file"), key=data.get("key"),
               line=data.get("line"), hint=data.get("hint"))
