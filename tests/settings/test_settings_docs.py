"""The docs' settings tables are the Field tables: a key added, renamed or re-defaulted in code
changes them (``python tools/settings_tables.py job|daemon`` prints the table to paste)."""

from __future__ import annotations

from pathlib import Path

import pytest

from styled.daemon.config import DAEMON_FIELDS
from styled.engine.spec import JOB_FIELDS
from styled.settings.docs import markdown_table

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("document", "fields"), [("README.md", JOB_FIELDS), ("docs/daemon.md", DAEMON_FIELDS)])
def test_the_documents_table_is_made_from_the_fields(document, fields):
    assert markdown_table(fields) in (REPO / document).read_text(), (
        f"{document}'s table differs from the Fields; regenerate it with python tools/settings_tables.py")


def test_every_key_has_help_and_the_table_lists_each_once():
    for fields in (JOB_FIELDS, DAEMON_FIELDS):
        names = [field.name for field in fields]
        assert len(names) == len(set(names)) and all(field.help for field in fields)


def test_config_yaml_comments_are_the_fields_help():
    """config.yaml is the daemon's Fields written out: every key, in order, under its help text."""
    import yaml

    from styled.settings.docs import yaml_document

    text = (REPO / "config.yaml").read_text()
    header = text.split("\n\n", 1)[0] + "\n"
    expected = yaml_document(DAEMON_FIELDS, yaml.safe_load(text), header)
    assert text == expected, "config.yaml's comments differ from the Fields' help; run python tools/settings_tables.py config"


def test_docs_cluster_md_lists_every_cluster_key_with_its_default():
    """The nested `cluster:` keys have their own table in docs/cluster.md, one row per Field."""
    from styled.daemon.config import ClusterConfig, LocalClusterConfig
    from styled.settings import table

    text = (REPO / "docs" / "cluster.md").read_text()
    for prefix, cls in (("cluster.", ClusterConfig), ("cluster.local.", LocalClusterConfig)):
        for field in table(cls):
            if field.name == "local":
                continue  # a sub-table: its keys are the rows
            shown = field.shown or ("null" if field.default is None else str(field.default))
            assert f"| `{prefix}{field.name}` |" in text, f"docs/cluster.md has no row for {prefix}{field.name}"
            row = text.split(f"| `{prefix}{field.name}` |", 1)[1].split("\n", 1)[0]
            assert shown.strip("`") in row.replace("`", ""), f"{prefix}{field.name}: default {shown} not in {row}"
