"""Print the markdown table of the job-spec keys (README.md) or the daemon config (docs/daemon.md).

    python tools/settings_tables.py job|daemon
"""

from __future__ import annotations

import sys

from styled.daemon.config import DAEMON_FIELDS
from styled.engine.spec import JOB_FIELDS
from styled.settings.docs import markdown_table

TABLES = {"job": JOB_FIELDS, "daemon": DAEMON_FIELDS}


def main(argv: list[str]) -> int:
    if argv[1:] not in ([name] for name in TABLES):
        print(f"usage: python tools/settings_tables.py {'|'.join(TABLES)}", file=sys.stderr)
        return 2
    print(markdown_table(TABLES[argv[1]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
