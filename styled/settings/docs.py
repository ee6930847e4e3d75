"""The docs' settings tables, made from the Fields (README's job-spec keys, docs/daemon.md's config).

``python tools/settings_tables.py job|daemon`` prints a table; tests/settings/test_settings_docs.py fails
when a document's table differs from what this makes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from styled.settings.fields import Field

HEADER = "| key | default | meaning |\n|---|---|---|"


def default_text(field: Field) -> str:
    """The default as the docs show it: ``shown`` when declared, else YAML's spelling."""
    if field.shown is not None:
        return field.shown
    return f"`{_yaml(field.default)}`"


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {_yaml(item)}" for key, item in value.items()) + "}"
    return str(value)


def markdown_table(fields: Sequence[Field]) -> str:
    rows = [f"| `{field.name}` | {default_text(field)} | {field.help} |" for field in fields]
    return "\n".join([HEADER, *rows])

