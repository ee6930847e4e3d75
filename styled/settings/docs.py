"""The docs' settings tables, made from the Fields (README's job-spec keys, docs/daemon.md's config).

``python tools/settings_tables.py job|daemon`` prints a table; tests/settings/test_settings_docs.py fails
when a document's table differs from what this makes.
"""

from __future__ import annotations

import dataclasses
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



#: config.yaml's comments are wrapped to this width.
YAML_COMMENT_WIDTH = 100


def yaml_comment(field: Field) -> str:
    """The comment above a key in a YAML file: the Field's help, wrapped."""
    import textwrap

    return "\n".join(textwrap.wrap(field.help, YAML_COMMENT_WIDTH - 2, initial_indent="# ",
                                   subsequent_indent="# ", break_on_hyphens=False))


def yaml_document(fields: Sequence[Field], values: Mapping[str, Any], header: str = "") -> str:
    """A YAML file setting every field to ``values[name]`` (or its default), each under its help as a comment.

    config.yaml is this document for the daemon's Fields and the shipped values, so that its
    comments cannot drift from the help texts (tests/settings/test_settings_docs.py).
    """
    import yaml

    blocks = [header.rstrip("\n") + "\n"] if header else []
    for field in fields:
        value = values.get(field.name, field.default)
        if dataclasses.is_dataclass(value):  # a nested table's defaults (web:) are written out in full
            value = dataclasses.asdict(value)
        value = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False,
                               width=1 << 16)
        value = value.removesuffix("\n").removesuffix("\n...").strip()
        blocks.append(f"{yaml_comment(field)}\n{field.name}: {value}")
    return "\n".join(blocks) + "\n"
