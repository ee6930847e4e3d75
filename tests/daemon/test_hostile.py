"""Hostile drops against a real daemon process: nothing in the inbox can stop, hang or fool it.

One batch of bad entries (parser bombs, pipes, links, a folder that vanishes while settling, a file
swapped after the claim, limits, a device the daemon lacks) is dropped beside good jobs; every bad
one must land in failed/ with a reason and its inputs, every good one in the outbox, and the daemon
must still answer SIGTERM with exit 0.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml
from daemon_support import (
    TINY_SPEC,
    DaemonProcess,
    folders,
    make_image,
    read_json,
    wait_for,
    write_config,
    write_job_folder,
)

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

GOOD = {"content": "photo.png", "style": "style.png", **TINY_SPEC}
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + level)}: &{chr(98 + level)} [" + ", ".join([f"*{chr(97 + level)}"] * 9) + "]\n" for level in range(8))

#: loose spec name -> (text, words error.txt must hold)
LOOSE = {
    "deep": ("content: " + "[" * 20000 + "]" * 20000 + "\n", ["nested more than 32 levels"]),
    "bignum": ("content: photo.png\nstyle: style.png\nsize: " + "9" * 5000 + "\n", ["5,000 characters", "line 3"]),
    "bomb": (ALIAS_BOMB, ["anchors and aliases", "line 1"]),
    "twice": ("content: photo.png\nstyle: style.png\nsize: 8193\nsize: 32\n", ["'size' is given twice", "line 4"]),
    "tagged": ("content: !!python/object/apply:os.system [touch /tmp/styled-pwned]\n", ["tags", "not allowed"]),
}
#: job folder name -> (spec or None, words error.txt must hold)
FOLDERS = {
    "fifo_spec": (None, ["FIFO", "job.yaml"]),
    "fifo_image": ({**GOOD, "content": "pipe.png"}, ["pipe.png", "FIFO"]),
    "link_out": ({**GOOD, "style": "passwd.png"}, ["passwd.png", "symbolic link to /etc/passwd"]),
    "far_device": ({**GOOD, "device": "gpu:3"}, ["device 'gpu:3' is not one of this daemon's devices (cpu)"]),
    "too_big": ({**GOOD, "size": 64}, ["'size' is 64, over this daemon's max_size of 48"]),
}


def drop_hostile(inbox: Path) -> None:
    for name, (text, _) in LOOSE.items():
        (inbox / f".{name}.part").write_text(text)
        os.rename(inbox / f".{name}.part", inbox / f"{name}.yaml")
    os.mkfifo(inbox / "fifo.yaml")
    for name, (spec, _) in FOLDERS.items():
        staging = inbox / f".{name}"
        make_image(staging / "photo.png")
        make_image(staging / "style.png", "style/starry_night.jpg")
        if spec is None:
            os.mkfifo(staging / "job.yaml")
        else:
            (staging / "job.yaml").write_text(yaml.safe_dump(spec))
        os.mkfifo(staging / "pipe.png")
        (staging / "passwd.png").symlink_to("/etc/passwd")
        os.rename(staging, inbox / name)


def test_a_batch_of_hostile_drops_fails_alone_and_the_daemon_keeps_serving(tmp_path):
    config_path = write_config(tmp_path, settle_seconds=1.0, max_size=48, rescan_seconds=1.0)
    inbox, outbox, failed, work = (tmp_path / name for name in ("inbox", "outbox", "failed", "work"))
    make_image(inbox / "photo.png")
    make_image(inbox / "style.png", "style/starry_night.jpg")
    with DaemonProcess(config_path) as daemon:
        daemon.wait_for_log("watching")
        drop_hostile(inbox)
        # A job folder that vanishes while it settles: taken by nobody, no error, no trace.
        vanishing = write_job_folder(inbox, "vanishing")
        time.sleep(0.3)
        shutil.rmtree(vanishing)
        # A job whose owner keeps a handle on its folder and swaps a file after the claim.
        swapped = write_job_folder(inbox, "swapped", {**GOOD, "iterations": 40, "size": 48})
        original = (swapped / "photo.png").read_bytes()
        handle = os.open(swapped, os.O_RDONLY | os.O_DIRECTORY)
        try:
            wait_for(lambda: not swapped.exists(), what="the claim of 'swapped'")
            with contextlib.suppress(FileNotFoundError):  # the claim may already have removed the folder
                os.unlink("photo.png", dir_fd=handle)
                os.symlink("/etc/passwd", "photo.png", dir_fd=handle)
        finally:
            os.close(handle)
        write_job_folder(inbox, "good")
        expected_failures = {*LOOSE, "fifo", *FOLDERS}
        wait_for(lambda: set(folders(failed)) >= expected_failures and {"good", "swapped"} <= set(folders(outbox)),
                 timeout=300, what="every hostile job in failed/ and the good ones delivered")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon.log()[-3000:]
    assert set(folders(failed)) == expected_failures and set(folders(outbox)) == {"good", "swapped"}
    assert folders(work) == [] and not (inbox / "vanishing").exists()
    assert not Path("/tmp/styled-pwned").exists()
    for name, (_, words) in {**LOOSE, **FOLDERS, "fifo": (None, ["FIFO"])}.items():
        text = (failed / name / "error.txt").read_text()
        assert all(word in text for word in words), f"{name}: {words} not all in:\n{text}"
        assert len(text) < 4000, f"{name}: error.txt should be short, it is {len(text)} characters"
        assert read_json(failed / name / "error.json")["job"]["name"] == name
    for path in failed.rglob("*"):
        assert not path.is_symlink(), f"{path}: a link was carried into failed/"
        assert path.is_dir() or path.is_file(), f"{path}: a special file was carried into failed/"
    assert (failed / "link_out" / "inputs" / "photo.png").exists(), "the regular inputs are kept"
    assert "passwd.png: a symbolic link to /etc/passwd" in (failed / "link_out" / "error.txt").read_text()
    assert (outbox / "swapped" / "inputs" / "photo.png").read_bytes() == original, \
        "the render used the daemon's copy, taken before the swap"
    log = daemon.log()
    assert "Traceback" not in log, log[-3000:]


def test_kill_9_at_random_moments_loses_nothing_doubles_nothing_and_blames_no_one(tmp_path):
    """Kill the daemon with SIGKILL at random moments while six healthy jobs render, restart it each
    time, then let it finish: every job is delivered once, none is called poison."""
    import random

    rng = random.Random(20261203)
    config_path = write_config(tmp_path, checkpoint_seconds=0.5, max_attempts=3)
    inbox, outbox, failed = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "failed"
    names = [f"job{index}" for index in range(6)]
    for name in names:
        write_job_folder(inbox, name, {**GOOD, "size": 48, "iterations": 120})
    kills = 0
    while kills < 6 and len(folders(outbox)) < len(names):
        with DaemonProcess(config_path) as daemon:
            daemon.wait_for_log("watching")
            time.sleep(rng.uniform(1.0, 6.0))
            daemon.kill9()
            kills += 1
    with DaemonProcess(config_path, "--once") as last:
        assert last.wait(300) == 0, last.log()[-3000:]
    assert folders(failed) == [], "no healthy job is called poison"
    assert folders(outbox) == names, "each job delivered once, under its own name"
    ids = {read_json(outbox / name / "report.json")["job"]["id"] for name in names}
    assert len(ids) == len(names) and folders(tmp_path / "work") == []
    assert kills >= 3, "the daemon should have been killed several times mid-batch"
