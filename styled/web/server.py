"""``styled web`` and ``styled serve --web``: the page served by uvicorn.

Import this module only after :func:`styled.web.require_web_libraries` (it imports uvicorn).
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import uvicorn

from styled.daemon.config import DaemonConfig
from styled.web.app import create_app
from styled.web.guard import page_token

log = logging.getLogger(__name__)

#: A stop waits this long for open pages (their live streams) before closing them.
GRACEFUL_SECONDS = 2


class PageServer(uvicorn.Server):
    """uvicorn's server, saying where the page is once it listens (the port it got when 0 was asked)."""

    address: str | None = None

    async def startup(self, sockets=None) -> None:  # noqa: ANN001
        await super().startup(sockets)
        if self.started:
            host, port = next(sock for server in self.servers for sock in server.sockets).getsockname()[:2]
            self.address = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
            log.info("the web page is at %s", self.address)


def make_server(config: DaemonConfig, host: str | None = None, port: int | None = None) -> PageServer:
    """The page's server; ConfigError first when the address or the token is unsafe."""
    web = dataclasses.replace(config.web, **{key: value for key, value in (("host", host), ("port", port))
                                             if value is not None})
    config = dataclasses.replace(config, web=web)
    token = page_token(web)
    settings = uvicorn.Config(create_app(config, token), host=web.host, port=web.port, log_level="warning",
                              access_log=False, timeout_graceful_shutdown=GRACEFUL_SECONDS,
                              proxy_headers=False, server_header=False, lifespan="off")
    return PageServer(settings)


class PageThread:
    """The page in a thread beside the daemon (``styled serve --web``); ``stop`` ends it."""

    def __init__(self, server: PageServer) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.run, name="styled-web", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(GRACEFUL_SECONDS + 5)
