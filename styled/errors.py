"""Specific exceptions raised by the library. Only ``styled.cli`` turns them into exit codes."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    kind: str = field(default="error", init=False)

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


@dataclass
class JobSpecError(StyledError):
    """A job spec (YAML or --set) is malformed, has an unknown key, or a bad value."""

    kind: str = field(default="job_spec", init=False)


@dataclass
class ConfigError(StyledError):
    """The daemon configuration is invalid."""

    kind: str = field(default="config", init=False)


@dataclass
class ImageError(StyledError):
    """An image is missing, unreadable, too large, or in a format we do not accept."""

    kind: str = field(default="image", init=False)


@dataclass
class WeightsError(StyledError):
    """Network weights are missing, malformed, or refused by the restricted unpickler."""

    kind: str = field(default="weights", init=False)


@dataclass
class DeviceError(StyledError):
    """The requested device does not exist on this machine."""

    kind: str = field(default="device", init=False)


@dataclass
class PluginError(StyledError):
    """A plugin is unknown, failed to load, or was given bad options."""

    kind: str = field(default="plugin", init=False)


@dataclass
class SpoolError(StyledError):
    """A job in the spool cannot be taken (bad name, escaping path, oversize spec)."""

    kind: str = field(default="spool", init=False)
