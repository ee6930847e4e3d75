"""``Field``: one setting, declared once with its default, its rule and its help text.

Job specs, the daemon config and plugin options are all tables of Fields, checked by
:func:`check_table` with the same messages: the key, the bad value, the allowed values, the
nearest valid key. Dataclasses declare theirs with :func:`setting`, so that the type, the default,
the rule and the help of a key stand on one line, and :func:`table` reads them back.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from styled.errors import StyledError

#: ``rule(value)`` returns the value normalised (it must accept its own output) or raises Invalid.
Rule = Callable[[Any], Any]
_METADATA_KEY = "styled.setting"
#: How close a misspelt key must be to a valid one before we suggest it (difflib's ratio).
SUGGESTION_CUTOFF = 0.5


class Invalid(ValueError):
    """A bad value: the message says what is wrong, the hint how to fix it, ``key`` which key."""

    def __init__(self, message: str, hint: str | None = None, key: str | None = None):
        super().__init__(message)
        self.message, self.hint, self.key = message, hint, key


def any_value(value: Any) -> Any:
    """The rule of a setting that takes anything (a plugin passes it on unchecked)."""
    return value


@dataclass(frozen=True)
class Field:
    """One key of a settings table.

    ``path`` marks a value that names a file, resolved and confined like the job's images;
    ``files`` the keys that name files inside a nested value (a list of mappings, such as the
    regions plugin's ``regions``), resolved and confined the same way. ``shown`` is the default as the docs print it, where the value alone would mislead
    (``= iterations``, ``auto``).
    """

    name: str
    default: Any
    rule: Rule = any_value
    help: str = ""
    path: bool = False
    shown: str | None = None
    files: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        """The value normalised by the rule (None passes when it is the default)."""
        if value is None and self.default is None:
            return None
        return self.rule(value)


def setting(default: Any, rule: Rule, help: str, *, path: bool = False, shown: str | None = None,
            factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field that is also a :class:`Field` (see :func:`table`)."""
    info = {"rule": rule, "help": help, "path": path, "shown": shown}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={_METADATA_KEY: info})
    return dataclasses.field(default=default, metadata={_METADATA_KEY: info})


def table(cls: type) -> tuple[Field, ...]:
    """The Fields of a dataclass declared with :func:`setting`, in declaration order."""
    fields = []
    for item in dataclasses.fields(cls):
        info = item.metadata.get(_METADATA_KEY)
        if info is None:
            continue
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        fields.append(Field(item.name, None if default is dataclasses.MISSING else default, **info))
    return tuple(fields)


def suggest(value: Any, candidates: Iterable[str], what: str = "valid keys") -> str:
    """``did you mean 'x'?`` when a candidate is close, else the list of candidates."""
    candidates = list(candidates)
    close = difflib.get_close_matches(str(value), candidates, n=1, cutoff=SUGGESTION_CUTOFF)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"{what}: {', '.join(sorted(candidates)) or 'none'}"


def check_table(fields: Sequence[Field], data: Mapping[str, Any], *, defaults: bool = False) -> dict[str, Any]:
    """Each given key checked by its Field's rule; with ``defaults``, missing keys get their default.

    Raises Invalid with ``key`` set: an unknown key suggests the nearest valid one.
    """
    by_name = {field.name: field for field in fields}
    values = {}
    for key, raw in data.items():
        field = by_name.get(key)
        if field is None:
            raise Invalid(f"unknown key '{key}'", suggest(key, by_name), key=str(key))
        try:
            values[key] = field.check(raw)
        except Invalid as invalid:  # a nested table's key is named in full: cluster.local.workers
            inner = invalid.key
            raise Invalid(invalid.message, invalid.hint,
                          key=key if inner in (None, key) else f"{key}.{inner}") from None
    if defaults:
        values = {field.name: values.get(field.name, field.default) for field in fields}
    return values


def located(invalid: Invalid, error: type[StyledError], *, source: str | None,
            lines: Mapping[str, int] | None = None, prefix: str = "") -> StyledError:
    """The Invalid as a StyledError of kind ``error``, with file, dotted key and YAML line."""
    lines = lines or {}
    key = f"{prefix}{invalid.key}" if invalid.key else prefix.rstrip(".") or None
    line = lines.get(key) if key else None
    if line is None and prefix:
        line = lines.get(prefix.rstrip("."))
    return error(invalid.message, where=source, key=key, line=line, hint=invalid.hint)
