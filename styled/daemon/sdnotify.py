"""sd_notify(3) without libsystemd: datagrams to ``$NOTIFY_SOCKET``.

systemd's protocol is one ``KEY=VALUE`` line per field in a single datagram on a Unix socket.
A socket name starting with ``@`` is in the abstract namespace (Linux), spelt with a leading NUL.
Outside systemd the variable is unset and every call is a quiet no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
#: systemd kills the service when no ping arrives within WatchdogSec; ping at twice that rate
#: so that one late loop iteration is not fatal (sd_watchdog_enabled(3) recommends half).
WATCHDOG_PING_FRACTION = 0.5
USEC_PER_SECOND = 1_000_000
#: STATUS= is shown by ``systemctl status``; longer lines are cut there anyway.
MAX_STATUS_CHARS = 200


def socket_address(name: str) -> str | bytes:
    """The address to send to: abstract-namespace names ('@...') start with a NUL byte."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Sends READY, STATUS, WATCHDOG, RELOADING and STOPPING to systemd when it is listening."""

    def __init__(self, environ: dict[str, str] | None = None):
        environ = dict(os.environ if environ is None else environ)
        self.address = socket_address(environ[NOTIFY_SOCKET_ENV]) if environ.get(NOTIFY_SOCKET_ENV) else None
        self.watchdog_seconds = _watchdog_interval(environ)
        self._last_status: str | None = None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False (never an exception) when it cannot."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        try:  # non-blocking: a listener that stops reading must not stop the daemon's main loop
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
                sock.sendto(message, self.address)
        except OSError as error:
            log.debug("sd_notify to %r failed: %s", self.address, error)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={_clip(status)}"] if status else []))

    def status(self, text: str) -> bool:
        """STATUS=text, skipped when unchanged since it was last delivered (a dropped one is sent again)."""
        text = _clip(text)
        if text == self._last_status:
            return False
        sent = self.send(f"STATUS={text}")
        if sent:
            self._last_status = text
        return sent

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 match this RELOADING=1 to the reload it asked for.
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog_due(self, now: float | None = None) -> bool:
        """Whether a WATCHDOG=1 ping is due (always False when systemd set no watchdog)."""
        if self.watchdog_seconds is None or self.address is None:
            return False
        now = time.monotonic() if now is None else now
        return now - self._last_ping >= self.watchdog_seconds * WATCHDOG_PING_FRACTION

    def ping(self) -> bool:
        """WATCHDOG=1: call only while every part of the daemon is known to be healthy."""
        sent = self.send("WATCHDOG=1")
        if sent:  # a dropped ping is due again at the next heartbeat
            self._last_ping = time.monotonic()
        return sent


def _watchdog_interval(environ: dict[str, str]) -> float | None:
    """WatchdogSec in seconds, when systemd asked this process (WATCHDOG_PID) for pings."""
    usec = environ.get(WATCHDOG_USEC_ENV)
    pid = environ.get(WATCHDOG_PID_ENV)
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        seconds = int(usec) / USEC_PER_SECOND
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _clip(text: str) -> str:
    text = " ".join(text.split())  # one line: a newline would start a new field
    return text if len(text) <= MAX_STATUS_CHARS else text[: MAX_STATUS_CHARS - 1] + "…"
