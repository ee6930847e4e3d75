"""Where settings come from: YAML files (with the line of every key), ``KEY=VALUE`` overrides, defaults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from styled.errors import FileKindError, JobSpecError, StyledError
from styled.io.files import read_regular
from styled.settings.rules import MAX_QUOTED_CHARS


#: Nesting deeper than this is no settings file: ``plugins: {regions: {regions: [{mask: ...}]}}``
#: is five levels. Checked while composing, so 20,000 brackets fail at the 33rd, not in recursion.
MAX_DEPTH = 32
#: The longest scalar a settings file may hold (a path or a number is far shorter). Numbers of
#: thousands of digits would make int() refuse or crawl.
MAX_SCALAR_CHARS = 1024


class RefusedYAML(yaml.MarkedYAMLError):
    """YAML that is valid but that settings files do not use: aliases, tags, duplicate keys, excess."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors, aliases, explicit tags and duplicate keys, and
    bounds nesting and scalar length, each with the line it found them on.

    Aliases are refused because nine nested ones expand to gigabytes (a "billion laughs"), tags
    because a settings file needs none, duplicate keys because YAML keeps the last one silently.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise self._refused("anchors and aliases (&name, *name) are not allowed", event,
                                "write the value out in full where it is needed")
        if getattr(event, "tag", None) is not None:
            raise self._refused(f"tags ({_shorten(event.tag)}) are not allowed", event, "remove the tag")
        if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_SCALAR_CHARS:
            raise self._refused(f"a value of {len(event.value):,} characters is longer than the "
                                f"{MAX_SCALAR_CHARS:,} allowed", event)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise self._refused(f"nested more than {MAX_DEPTH} levels deep", event)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise RefusedYAML(None, None, f"the key {_shorten(key_node.value)!r} is given twice",
                                      key_node.start_mark)
                seen.add(key_node.value)
        return node

    @staticmethod
    def _refused(problem: str, event: yaml.Event, hint: str | None = None) -> RefusedYAML:
        error = RefusedYAML(None, None, problem, event.start_mark)
        error.hint = hint
        return error


#: PyYAML's own problem texts quote the document; ours stay one short line.
MAX_PROBLEM_CHARS = 160


def _shorten(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_strict(text: str) -> tuple[Any, yaml.Node | None]:
    """The document's data and its node tree, parsed once by :class:`StrictLoader`."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        return (None if node is None else loader.construct_document(node)), node
    finally:
        loader.dispose()


def parse_yaml(text: str, source: str | None = None,
               error: type[StyledError] = JobSpecError) -> tuple[Any, dict[str, int]]:
    """Parse the text strictly; also return the 1-based line of every (dotted) key.

    Whatever goes wrong in parsing, whatever its type, comes out as ``error`` naming the line:
    a settings file never takes its reader down.
    """
    try:
        data, root = load_strict(text)
        return ({} if data is None else data), key_lines(root)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, error) from None
    except (RecursionError, MemoryError, ValueError, TypeError) as exc:
        raise error(f"cannot be read as YAML: {type(exc).__name__}", where=source,
                    hint="a settings file is a few lines of plain keys and values") from None


def _yaml_error(exc: yaml.YAMLError, source: str | None, error: type[StyledError]) -> StyledError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    column = f", column {mark.column + 1}" if mark is not None else ""
    problem = _shorten(" ".join(str(getattr(exc, "problem", None) or exc).split()), MAX_PROBLEM_CHARS)
    if isinstance(exc, RefusedYAML):
        at = f" (column {mark.column + 1})" if mark is not None else ""
        return error(f"{problem}{at}", where=source, line=line, hint=getattr(exc, "hint", None))
    return error(f"YAML syntax error{column}: {problem}", where=source, line=line,
                 hint="check the indentation and quoting on that line")


def key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """{dotted key: 1-based line} of every mapping key under ``node``."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{_shorten(str(key_node.value))}" if isinstance(key_node, yaml.ScalarNode) else prefix
            lines[key] = key_node.start_mark.line + 1
            lines.update(key_lines(value_node, key + "."))
    return lines


def read_text(path: Path, what: str, error: type[StyledError], max_bytes: int | None = None,
              hint: str | None = None) -> str:
    """A settings file's text, with one clear error for each way reading it can fail.

    Only a regular file is opened (a FIFO dropped as ``job.yaml`` would block for ever), and no
    more than ``max_bytes`` + 1 bytes are read, whatever the file's size claimed.
    """
    try:
        data = read_regular(path, max_bytes=max_bytes)
    except FileNotFoundError:
        raise error(f"the {what} does not exist", where=str(path), hint=hint) from None
    except FileKindError as kind:
        raise error(f"the {what} {kind.message}", where=str(path), hint=kind.hint) from None
    except OSError as exc:
        raise error(f"cannot read the {what}: {exc.strerror}", where=str(path)) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"the {what} is {_size_of(path, len(data))} bytes, over the limit of {max_bytes}", where=str(path),
                    hint=f"a {what} is a few lines of YAML; raise max_spec_bytes if you must")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"the {what} is not UTF-8 text", where=str(path)) from None


def _size_of(path: Path, at_least: int) -> str:
    try:
        return str(max(path.stat().st_size, at_least))
    except OSError:
        return f"over {at_least - 1}"


def load_mapping(path: Path, what: str, error: type[StyledError], *, max_bytes: int | None = None,
                 hint: str | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """A YAML file that must hold a mapping, and the line of each of its keys (not yet validated)."""
    data, lines = parse_yaml(read_text(path, what, error, max_bytes, hint), str(path), error)
    if not isinstance(data, dict):
        raise error(f"a {what} must be a mapping of keys to values, got {type(data).__name__}",
                    where=str(path), line=1)
    return data, lines


def apply_overrides(data: Mapping[str, Any], assignments: Iterable[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` strings (values parse as YAML scalars; dotted keys reach nested options)."""
    merged = {key: (dict(value) if isinstance(value, Mapping) else value) for key, value in data.items()}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise JobSpecError(f"'{assignment}' is not KEY=VALUE", where="--set",
                               hint="for example --set style_weight=100")
        value = parse_value(raw)
        _set_dotted(merged, key.strip().split("."), value)
    return merged


def parse_value(raw: str) -> Any:
    """A ``--set`` value as a YAML scalar (``[3, 1]`` and ``{a: 1}`` too); text when it is not YAML."""
    if not raw.strip():
        return None
    try:
        return load_strict(raw)[0]
    except (yaml.YAMLError, RecursionError, ValueError, TypeError):
        return raw


def _set_dotted(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = dict(child) if isinstance(child, Mapping) else {}
            target[part] = child
        target = child
    target[parts[-1]] = value


def merge_defaults(defaults: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """Keys over configured defaults; nested tables (``plugins``) merge one level deeper."""
    merged = dict(defaults)
    for key, value in data.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
