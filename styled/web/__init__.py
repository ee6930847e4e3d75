"""The studio's page, ``styled web``: the queue live, the results, failures to retry, a submit form.

It knows the daemon only through the spool's files: it reads inbox/, work/, outbox/ and failed/,
and writes only into the inbox (a job submitted or retried), the same crash-safe way ``styled
submit`` does. It never needs the daemon to run in its process. docs/web.md.
"""

from __future__ import annotations

import importlib.util

from styled.errors import ConfigError

WEB_LIBRARIES = ("starlette", "uvicorn", "jinja2", "multipart")
INSTALL_HINT = "install the web extra: pip install 'styled[web]'"


def require_web_libraries() -> None:
    """ConfigError saying how to install the page's libraries when one is missing."""
    missing = [name for name in WEB_LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"the web page needs {', '.join(missing)}, which is not installed", hint=INSTALL_HINT)
