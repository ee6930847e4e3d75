"""Print the markdown table of the job-spec keys (README.md) or the daemon config (docs/daemon.md),
or rewrite config.yaml's comments from the daemon's Fields (keeping its header and its values).

    python tools/settings_tables.py job|daemon
    python tools/settings_tables.py config > config.yaml.new && mv config.yaml.new config.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from styled.daemon.config import DAEMON_FIELDS
from styled.engine.spec import JOB_FIELDS
from styled.settings.docs import markdown_table, yaml_document

TABLES = {"job": JOB_FIELDS, "daemon": DAEMON_FIELDS}
CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"


def config_header(text: str) -> str:
    """The comment block at the top of config.yaml, up to its first blank line."""
    return text.split("\n\n", 1)[0] + "\n"


def main(argv: list[str]) -> int:
    if argv[1:] == ["config"]:
        text = CONFIG.read_text(encoding="utf-8")
        print(yaml_document(DAEMON_FIELDS, yaml.safe_load(text), config_header(text)), end="")
        return 0
    if argv[1:] not in ([name] for name in TABLES):
        print(f"usage: python tools/settings_tables.py {'|'.join(TABLES)}|config", file=sys.stderr)
        return 2
    print(markdown_table(TABLES[argv[1]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
