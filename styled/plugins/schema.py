"""What a plugin declares through ``plugin_schema``: the name a job calls it by and its options.

Options are :class:`styled.settings.Field`s, the same table type as every job-spec and daemon key,
checked by the same rules with the same messages. ``Option(name, default, help, rule, path)`` is
the spelling plugins use to declare one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from styled.errors import PluginError
from styled.settings import Field, Invalid, check_table
from styled.settings.fields import any_value
from styled.settings.rules import boolean, integer, number, one_of, optional, short

__all__ = ["Option", "OptionError", "PluginSchema", "boolean", "integer", "number", "one_of", "optional"]

#: A plugin's fault in its options: raise it from a rule or a ``check``, with ``key=`` naming the
#: option when a check of several options finds it.
OptionError = Invalid
#: ``resolve(key, value)`` turns a path as written in the spec into a real path (or raises).
Resolver = Callable[[str, str], Path]


def Option(name: str, default: Any, help: str, rule: Callable[[Any], Any] = any_value,  # noqa: N802
           path: bool = False, files: tuple[str, ...] = ()) -> Field:
    """One option under ``plugins: {name: {option: value}}``.

    ``rule(value)`` returns the value normalised (it must accept its own output) or raises
    OptionError. A ``path`` option names a file: it is resolved and confined like the spec's
    images (relative to the job file or the job's folder in the spool) and must exist. ``files``
    names the keys that hold files inside an option whose value is a list of mappings (each a name
    or a list of names), resolved, confined and carried with the job the same way.
    """
    return Field(name, default, rule, help, path=path, files=tuple(files))


@dataclass(frozen=True)
class PluginSchema:
    """The name a plugin answers to in a job and the options it accepts.

    ``check(options)`` sees every option normalised, defaults filled in, and raises OptionError
    (with ``key=``) for faults that involve several options. ``brings_styles`` marks a plugin that
    supplies what the style term needs, style images of its own (regions) or the statistics of the
    photo itself (inpainting), so that a job using it may leave out ``style:``.
    """

    name: str
    options: tuple[Field, ...] = ()
    check: Callable[[dict[str, Any]], None] | None = None
    help: str = ""
    #: The plugin brings its own styles or statistics, so a job that turns it on needs no ``style:``.
    brings_styles: bool = False

    def option(self, name: str) -> Field:
        return next(option for option in self.options if option.name == name)

    def path_options(self) -> tuple[str, ...]:
        """The options that name files."""
        return tuple(option.name for option in self.options if option.path)

    def files(self, given: Any) -> list[tuple[str, str]]:
        """(dotted key, file name) of every file the raw options ``given`` name, before validation
        (the daemon carries them with the job): path options holding a name or a list of names, and
        the ``files`` keys of nested options."""
        if not isinstance(given, Mapping):
            return []
        found = []
        for option in self.options:
            key = f"plugins.{self.name}.{option.name}"
            if option.path:
                found.extend((key, item) for item in _names(given.get(option.name)))
            for index, entry, file_key in _nested(given.get(option.name), option.files):
                found.extend((f"{key}[{index}].{file_key}", item) for item in _names(entry.get(file_key)))
        return found

    def apply(self, given: Mapping[str, Any] | None, resolve: Resolver | None = None) -> dict[str, Any]:
        """``given`` validated, defaults filled in, paths resolved (when ``resolve`` is given)."""
        values = check_table(self.options, dict(given or {}), defaults=True)
        for option in self.options:
            if option.path and values[option.name] is not None:
                values[option.name] = _resolve_path(self.name, option.name, values[option.name], resolve)
            for index, entry, file_key in _nested(values[option.name], option.files):
                where = f"{option.name}[{index}].{file_key}"
                value = entry[file_key]
                entry[file_key] = ([_resolve_path(self.name, where, item, resolve) for item in value]
                                   if isinstance(value, list) else _resolve_path(self.name, where, value, resolve))
        if self.check is not None:
            self.check(values)
        return values

    def settings(self, job: Any) -> dict[str, Any] | None:
        """The options ``job`` gave this plugin, checked and with defaults, or None when it is off."""
        given = job.plugin_options(self.name)
        return None if given is None else self.apply(given)

    def error(self, message: str, option: str | None = None, hint: str | None = None) -> PluginError:
        """A PluginError about this plugin, or about one of its options, keyed as the spec spells it."""
        return PluginError(message, key=f"plugins.{self.name}" + (f".{option}" if option else ""), hint=hint)

    def content_of(self, job: Any, needed_for: str) -> Any:
        """``job.content``, or a PluginError saying this plugin needs a content image ``needed_for``."""
        if job.content is None:
            raise self.error(f"{self.name} needs a content image {needed_for}", hint="add 'content: photo.jpg'")
        return job.content


def _names(value: Any) -> list[str]:
    return [item for item in (value if isinstance(value, list) else [value]) if isinstance(item, str) and item]


def _nested(value: Any, keys: tuple[str, ...]) -> list[tuple[int, dict, str]]:
    """(index, entry, key) of each file key present in a list of mappings (nothing for other values)."""
    if not keys or not isinstance(value, list):
        return []
    return [(index, entry, key) for index, entry in enumerate(value) if isinstance(entry, dict)
            for key in keys if entry.get(key) is not None]


def _resolve_path(plugin: str, option: str, value: Any, resolve: Resolver | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be a file name, got {short(value)}", key=option)
    if resolve is None:
        return value
    path = resolve(f"plugins.{plugin}.{option}", value)
    if not Path(path).is_file():
        raise Invalid(f"the file '{value}' does not exist", f"looked for {path}", key=option)
    return str(path)
