"""sd_notify over a real Unix datagram socket, by path and in the abstract namespace."""

from __future__ import annotations

import contextlib
import os
import time
import socket
import uuid

import pytest

from styled.daemon.sdnotify import Notifier, socket_address


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_messages_reach_a_path_socket(listener):
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("watching inbox")
    assert received(sock) == "READY=1\nSTATUS=watching inbox"
    assert notifier.status("rendering portrait: 40%")
    assert received(sock) == "STATUS=rendering portrait: 40%"
    assert notifier.ping() and received(sock) == "WATCHDOG=1"
    assert notifier.reloading()
    lines = received(sock).split("\n")
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=") and lines[1][15:].isdigit()
    assert notifier.stopping() and received(sock) == "STOPPING=1"


def test_messages_reach_an_abstract_namespace_socket():
    name = f"styled-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": f"@{name}"}).ready()
        assert received(sock) == "READY=1"


def test_abstract_address_starts_with_a_nul_byte():
    assert socket_address("@abc") == b"\0abc"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_without_systemd_every_call_is_a_quiet_no_op():
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready() and not notifier.ping() and not notifier.watchdog_due()


def test_a_vanished_socket_does_not_raise(tmp_path):
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready() is False


def test_status_is_one_line_and_sent_only_when_it_changes(listener):
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.status("two\nlines")
    assert received(sock) == "STATUS=two lines"
    assert not notifier.status("two lines")


def test_watchdog_interval_comes_from_systemd_for_this_process_only(listener):
    path, _ = listener
    mine = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_seconds == 2.0
    assert mine.watchdog_due(now=1e9)
    mine.ping()
    assert not mine.watchdog_due()
    other = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_seconds is None and not other.watchdog_due()


def test_a_listener_that_stops_reading_never_blocks_the_sender(listener):
    """A Unix datagram socket queues only a few unread messages (net.unix.max_dgram_qlen); a
    blocking send would then hang the daemon's main loop for ever. The sends fail quietly instead."""
    path, _ = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    started = time.monotonic()
    sent = [notifier.ping() for _ in range(200)]
    assert time.monotonic() - started < 5
    assert sent[0] and not all(sent), "the first pings are queued, the rest dropped, none waits"


def test_a_dropped_status_is_sent_again_once_the_listener_reads(listener):
    path, sock = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    filled = any(not notifier.ping() for _ in range(10_000))  # fill the listener's queue
    assert filled, "the listener's queue never filled"
    assert not notifier.status("1 delivered"), "dropped: the queue is full"
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(4096)
    sock.settimeout(5)
    assert notifier.status("1 delivered") and received(sock) == "STATUS=1 delivered"
