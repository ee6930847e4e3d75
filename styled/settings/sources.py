"""Where settings come from: YAML files (with the line of every key), ``KEY=VALUE`` overrides, defaults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from styled.errors import JobSpecError, StyledError


def parse_yaml(text: str, source: str | None = None,
               error: type[StyledError] = JobSpecError) -> tuple[Any, dict[str, int]]:
    """``yaml.safe_load`` the text; also return the 1-based line of every (dotted) key."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        column = f", column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"YAML syntax error{column}: {problem}", where=source, line=line,
                    hint="check the indentation and quoting on that line") from None
    return ({} if data is None else data), key_lines(root)


def key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """{dotted key: 1-based line} of every mapping key under ``node``."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(key_lines(value_node, key + "."))
    return lines


def read_text(path: Path, what: str, error: type[StyledError], max_bytes: int | None = None,
              hint: str | None = None) -> str:
    """A settings file's text, with one clear error for each way reading it can fail."""
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise error(f"the {what} is {size} bytes, over the limit of {max_bytes}", where=str(path),
                        hint=f"a {what} is a few lines of YAML; raise max_spec_bytes if you must")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"the {what} does not exist", where=str(path), hint=hint) from None
    except IsADirectoryError:
        raise error(f"is a folder, not a {what}", where=str(path)) from None
    except UnicodeDecodeError:
        raise error(f"the {what} is not UTF-8 text", where=str(path)) from None
    except OSError as exc:
        raise error(f"cannot read the {what}: {exc.strerror}", where=str(path)) from None


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
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        _set_dotted(merged, key.strip().split("."), value)
    return merged


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
