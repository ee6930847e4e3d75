"""Helpers shared by the daemon tests: tiny images, configs, job drops, and a daemon to run.

Two ways to run the daemon: :func:`daemon_thread` runs it in this process on a thread (real
watchdog observer, real workers; cheap, because TensorFlow is imported once), and
:class:`DaemonProcess` runs ``python -m styled.cli serve`` as a child process, for kill -9,
signals and sd_notify. Both clean up after themselves, so no test leaks threads or children.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from PIL import Image as PILImage

REPO = Path(__file__).resolve().parents[1]
SHARED_IMAGES = REPO.parent / "shared" / "images"
#: Generous: the first job in a process imports TensorFlow and traces the loss (several seconds on a
#: busy 2-core machine), but bounded, so a hung daemon fails the test instead of the whole run.
WAIT_SECONDS = 120.0
POLL_SECONDS = 0.05
STOP_SECONDS = 60.0

#: A tiny render: one scale, a few iterations.
TINY_SPEC = {"size": 32, "scales": 1, "iterations": 2}


#: A plugin that takes its process down when a job asks for it: a real poison job.
KILLER_PLUGIN = """
import os
import signal

from styled import hookimpl


@hookimpl
def register_losses(job):
    if job.plugin_options("killer") is not None:
        os.kill(os.getpid(), signal.SIGKILL)
    return []
"""


def make_image(path: Path, source: str = "content/tubingen.jpg", size: tuple[int, int] = (32, 24)) -> Path:
    """A small copy of a shared test photo (real textures give VGG something to match)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with PILImage.open(SHARED_IMAGES / source) as picture:
        picture.convert("RGB").resize(size, PILImage.Resampling.BILINEAR).save(path)
    return path


def write_config(folder: Path, *, create_folders: bool = True, **settings: Any) -> Path:
    """config.yaml with the spool in ``folder`` and test-friendly timings; ``settings`` override."""
    data = {
        "inbox": "inbox", "outbox": "outbox", "failed": "failed", "work": "work",
        "devices": ["cpu"], "settle_seconds": 0.2, "rescan_seconds": 2.0, "checkpoint_seconds": 0.5,
        "progress_seconds": 0.1, "missing_file_seconds": 0.5, "max_attempts": 3,
        **settings,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for key in ("inbox", "outbox", "failed", "work") if create_folders else ():
        (folder / data[key]).mkdir(parents=True, exist_ok=True)
    return path


def write_job_folder(inbox: Path, name: str, spec: dict[str, Any] | str | None = None,
                     images: dict[str, str] | None = None) -> Path:
    """A job folder written under a dot name and renamed in, as careful writers do."""
    staging = inbox / f".{name}.staging"
    staging.mkdir(parents=True)
    images = {"photo.png": "content/tubingen.jpg", "style.png": "style/starry_night.jpg"} if images is None \
        else images
    for file_name, source in images.items():
        make_image(staging / file_name, source)
    if spec is None:
        spec = {"content": "photo.png", "style": "style.png", **TINY_SPEC}
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    (staging / "job.yaml").write_text(text)
    os.rename(staging, inbox / name)
    return inbox / name


def write_loose_spec(inbox: Path, name: str, spec: dict[str, Any] | str) -> Path:
    text = spec if isinstance(spec, str) else yaml.safe_dump(spec, sort_keys=False)
    staging = inbox / f".{name}.yaml.part"
    staging.write_text(text)
    os.rename(staging, inbox / f"{name}.yaml")
    return inbox / f"{name}.yaml"


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT_SECONDS, what: str = "condition",
             interval: float = POLL_SECONDS) -> Any:
    """Poll until ``predicate()`` is truthy; return its value, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def folders(parent: Path) -> list[str]:
    """Visible sub-folder names (temporary dot folders excluded), sorted."""
    if not parent.exists():
        return []
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def work_state(work: Path, name: str) -> dict[str, Any]:
    return read_json(work / name / "state.json")


# --- in-process daemon ----------------------------------------------------------------------------


@contextmanager
def daemon_thread(config_path: Path, *, once: bool = False) -> Iterator[Any]:
    """Run a Daemon on a thread; stop and join it on exit, re-raising anything it raised."""
    from styled.daemon.config import load_daemon_config
    from styled.daemon.service import Daemon

    daemon = Daemon(load_daemon_config(config_path), once=once, manage_log_level=False)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as error:  # noqa: BLE001 - handed to the test below
            failure.append(error)

    thread = threading.Thread(target=run, name="test-daemon")
    thread.start()
    try:
        yield daemon
    finally:
        daemon.request_stop("test finished")
        thread.join(STOP_SECONDS)
        assert not thread.is_alive(), "the daemon did not stop"
    if failure:
        raise failure[0]


# --- daemon as a child process ----------------------------------------------------------------------


class DaemonProcess:
    """``python -m styled.cli serve --config FILE`` as a child, with its stderr kept in a file."""

    def __init__(self, config_path: Path, *args: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None):
        self.config_path = config_path
        self.log_path = config_path.parent / f"daemon-{time.monotonic_ns()}.log"
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "styled.cli", "serve", "--config", str(config_path), *args],
            cwd=cwd or config_path.parent, env=environment, stdout=self._log, stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = WAIT_SECONDS) -> None:
        wait_for(lambda: text in self.log() or self._dead(text), timeout, f"{text!r} in the daemon's log")

    def _dead(self, text: str) -> bool:
        if self.process.poll() is not None and text not in self.log():
            raise AssertionError(f"the daemon exited ({self.process.returncode}) before logging {text!r}:\n"
                                 + self.log()[-3000:])
        return False

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_SECONDS)

    def wait(self, timeout: float = WAIT_SECONDS) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit within {timeout:.0f} s:\n{self.log()[-3000:]}") from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_SECONDS)
        self._log.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_cli(*args: str, cwd: Path | None = None, timeout: float = WAIT_SECONDS) -> subprocess.CompletedProcess:
    """``python -m styled.cli ARGS`` to completion, capturing text output."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "styled.cli", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=timeout)


# --- systemd's side of sd_notify ----------------------------------------------------------------


class Datagrams:
    """A real sd_notify listener on an abstract-namespace Unix datagram socket."""

    def __init__(self):
        self.name = f"styled-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name.encode())
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def collect(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                return self.messages

    def fields(self) -> list[str]:
        return [line for message in self.collect() for line in message.split("\n")]

    def count(self, field: str) -> int:
        return sum(1 for line in self.fields() if line == field)

    def close(self) -> None:
        self.sock.close()
