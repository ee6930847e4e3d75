"""The daemon in this process, with a real watchdog observer and real worker threads.

(Crashes, signals and sd_notify need a separate process: see test_daemon_process.py.)
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest
import yaml
from daemon_support import (
    TINY_SPEC,
    daemon_thread,
    folders,
    make_image,
    read_json,
    wait_for,
    write_config,
    write_job_folder,
    write_loose_spec,
)
from PIL import Image as PILImage

from styled.daemon.config import load_daemon_config
from styled.daemon.sdnotify import Notifier
from styled.daemon.service import Daemon, InboxEvents
from styled.errors import PluginError

pytestmark = pytest.mark.timeout(300)


MARKER_PLUGIN = """
from pathlib import Path

from styled import hookimpl


@hookimpl
def job_finished(job, result):
    (Path(__file__).parent / f"finished-{job.name}").write_text("ok")
"""


def delivered(outbox: Path, count: int):
    return lambda: len(folders(outbox)) >= count and folders(outbox)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.slow
def test_dropped_jobs_are_delivered_with_all_their_files(tmp_path, umask_022):
    library_style = make_image(tmp_path / "library" / "expressionists" / "scream.png", "style/the_scream.jpg")
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "marker.py").write_text(MARKER_PLUGIN)
    config_path = write_config(tmp_path, library=["library"], plugins_dir="plugins")
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    (outbox / "street").mkdir()  # an earlier result of the same name stays untouched
    folder_spec = {"content": "photo.png", "style": "style.png", **TINY_SPEC}
    write_job_folder(inbox, "portrait", folder_spec)  # before the start: found by the first scan
    original_spec = (inbox / "portrait" / "job.yaml").read_bytes()
    with daemon_thread(config_path):
        make_image(inbox / "street.png", "content/golden_gate.jpg")
        write_loose_spec(inbox, "street", {"content": "street.png", "style": ["expressionists/scream.png"],
                                           "output": "painting.jpg", **TINY_SPEC})
        wait_for(delivered(outbox, 3), what="two deliveries beside the earlier result")
    assert folders(outbox) == ["portrait", "street", "street-2"]
    assert list((outbox / "street").iterdir()) == []
    portrait = outbox / "portrait"
    assert sorted(p.name for p in portrait.iterdir()) == ["inputs", "loss.png", "report.json", "result.png",
                                                          "sheet.png"]
    with PILImage.open(portrait / "result.png") as result:
        assert max(result.size) == TINY_SPEC["size"]
    assert (portrait / "inputs" / "job.yaml").read_bytes() == original_spec
    assert sorted(p.name for p in (portrait / "inputs").iterdir()) == ["job.yaml", "photo.png", "style.png"]
    modes = {path.relative_to(portrait).as_posix(): stat.S_IMODE(path.stat().st_mode)
             for path in [portrait, *portrait.rglob("*")]}
    assert modes == {name: 0o755 if (portrait / name).is_dir() else 0o644 for name in modes}, \
        "under umask 022 the outbox is readable by everyone, as files written by any program"
    report = json.loads((portrait / "report.json").read_text())
    assert report["iterations"] == TINY_SPEC["iterations"] and report["losses"]["total"] > 0
    life = report["job"]
    assert life["name"] == "portrait" and len(life["id"]) == 32 and life["attempts"] == 1
    stamps = [life[key] for key in ("received", "claimed", "started", "finished", "delivered")]
    assert all(stamps) and stamps == sorted(stamps)
    street = outbox / "street-2"
    assert (street / "painting.jpg").exists() and (street / "sheet.png").exists()
    assert sorted(p.name for p in (street / "inputs").iterdir()) == ["library", "street.png", "street.yaml"]
    assert (street / "inputs" / "library" / "expressionists" / "scream.png").read_bytes() == \
        library_style.read_bytes()
    assert library_style.exists(), "library folders are read-only"
    assert list(inbox.iterdir()) == [], "the loose spec's images leave the inbox with it"
    assert folders(tmp_path / "work") == [] and folders(tmp_path / "failed") == []
    assert sorted(p.name for p in (tmp_path / "plugins").glob("finished-*")) == ["finished-portrait",
                                                                                "finished-street"]


def test_a_broken_plugin_stops_the_start(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "broken.py").write_text("raise RuntimeError('oops')\n")
    daemon = Daemon(load_daemon_config(write_config(tmp_path, plugins_dir="plugins")), manage_log_level=False)
    with pytest.raises(PluginError, match="oops"):
        daemon.run()


@pytest.mark.slow
def test_a_job_folder_written_slowly_is_not_taken_early(tmp_path):
    config_path = write_config(tmp_path, settle_seconds=1.5)
    inbox, work, outbox = tmp_path / "inbox", tmp_path / "work", tmp_path / "outbox"
    photo = make_image(tmp_path / "source" / "photo.png", size=(64, 48))
    data = photo.read_bytes()
    chunks = [data[i:i + len(data) // 6 + 1] for i in range(0, len(data), len(data) // 6 + 1)]
    with daemon_thread(config_path):
        folder = inbox / "slow"
        folder.mkdir()
        (folder / "job.yaml").write_text(yaml.safe_dump({"content": "photo.png", "style": "style.png",
                                                         **TINY_SPEC}))
        make_image(folder / "style.png", "style/starry_night.jpg")
        with open(folder / "photo.png", "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
                stream.flush()
                deadline = time.monotonic() + 0.4
                while time.monotonic() < deadline:
                    assert folder.exists() and folders(work) == [], "taken while still being written"
                    time.sleep(0.05)
        wait_for(delivered(outbox, 1), what="the slow job's delivery")
    assert (outbox / "slow" / "inputs" / "photo.png").read_bytes() == data
    assert folders(tmp_path / "failed") == []


@pytest.mark.slow
def test_fifty_jobs_dropped_at_once_are_each_delivered_exactly_once(tmp_path):
    config_path = write_config(tmp_path, devices=["cpu", "cpu"], settle_seconds=0.3)
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    spec = {"size": 32, "scales": 1, "iterations": 0}
    make_image(inbox / "shared.png")
    make_image(inbox / "style.png", "style/starry_night.jpg")
    expected = set()
    with daemon_thread(config_path) as daemon:
        for index in range(25):
            write_job_folder(inbox, f"folder{index:02d}", {"content": "photo.png", "style": "style.png", **spec})
            write_loose_spec(inbox, f"loose{index:02d}", {"content": "shared.png", "style": "style.png", **spec})
            expected |= {f"folder{index:02d}", f"loose{index:02d}"}
        wait_for(delivered(outbox, 50), timeout=240, what="fifty deliveries")
        wait_for(lambda: daemon.summary.delivered == 50, what="the last delivery's bookkeeping")
        time.sleep(0.5)  # a doubled delivery would show up now
    assert set(folders(outbox)) == expected, "every job delivered once, under its own name"
    ids = [json.loads((outbox / name / "report.json").read_text())["job"]["id"] for name in expected]
    assert len(set(ids)) == 50
    assert list(inbox.iterdir()) == [], "the shared loose images go with the last spec naming them"
    assert folders(tmp_path / "work") == [] and folders(tmp_path / "failed") == []
    assert not [p for p in outbox.iterdir() if p.name.startswith(".")], "no half-built delivery left"


# --- bad input: one --once run, then one assertion per kind of mistake ------------------------------

BAD_FOLDERS = {
    # name: (job.yaml, extra files, expected words in error.txt)
    "yaml_syntax": ("content: photo.png\nstyle: [style.png\nsize: 32\n", {}, ["YAML syntax error", "line", "column"]),
    "unknown_key": ("content: photo.png\nstyle: style.png\nsise: 32\n", {}, ["unknown key 'sise'", "line 3",
                                                                              "did you mean 'size'"]),
    "wrong_type": ("content: photo.png\nstyle: style.png\nsize: big\n", {}, ["key 'size'", "'size' must be a whole number"]),
    "out_of_range": ("content: photo.png\nstyle: style.png\niterations: -4\n", {}, ["key 'iterations'",
                                                                                     "at least 0"]),
    "no_style": ("content: photo.png\n", {}, ["key 'style'", "at least one style image"]),
    "not_a_mapping": ("- photo.png\n- style.png\n", {}, ["must be a mapping"]),
    "missing_file": ("content: photo.png\nstyle: nowhere.png\n", {}, ["nowhere.png", "does not exist"]),
    "not_an_image": ("content: photo.png\nstyle: notes.png\n", {"notes.png": b"just some text\n"},
                     ["notes.png", "not an image"]),
    "truncated": ("content: photo.png\nstyle: cut.png\n", {"cut.png": "truncate"}, ["cut.png", "truncated"]),
    "too_many_pixels": ("content: huge.png\nstyle: style.png\n", {"huge.png": "huge"},
                        ["huge.png", "over the limit", "max_image_pixels"]),
    "spec_too_big": ("content: photo.png\nstyle: style.png\n# " + "x" * 3000 + "\n", {},
                     ["bytes, over the limit", "max_spec_bytes"]),
    "absolute_path": ("content: /etc/hostname\nstyle: style.png\n", {}, ["key 'content'", "absolute path"]),
    "dot_dot": ("content: ../photo.png\nstyle: style.png\n", {}, ["key 'content'", "'..'"]),
    "symlink_out": ("content: photo.png\nstyle: passwd.png\n", {"passwd.png": "/etc/passwd"},
                    ["key 'style'", "/etc/passwd", "outside"]),
    "output_escapes": ("content: photo.png\nstyle: style.png\noutput: ../../escaped.png\n", {},
                       ["key 'output'", "outside the job's outbox folder"]),
    "no_job_yaml": (None, {}, ["no job.yaml"]),
    "%%%": ("content: photo.png\nstyle: style.png\n", {}, ["cannot be used as a folder name", "inbox/%%%"]),
    "unknown_plugin": ("content: photo.png\nstyle: style.png\nplugins:\n  symetry: {}\n", {},
                       ["symetry", "symmetry", "inpainting"]),
    "bad_plugin_option": ("content: photo.png\nstyle: style.png\nplugins:\n  symmetry: {mirror: diagonal}\n", {},
                          ["plugins.symmetry.mirror", "line 4", "left-right"]),
    "plugin_path_escapes": ("content: photo.png\nstyle: style.png\nplugins:\n  inpainting: {mask: /etc/hostname}\n",
                            {}, ["absolute path"]),
    "nested_path_escapes": ("content: photo.png\nplugins:\n  regions:\n    regions:\n"
                            "      - {mask: ../../outbox/x.png, style: style.png}\n",
                            {}, ["plugins.regions.regions[0].mask", "'..'"]),
}
BAD_LOOSE = {
    "loose_symlink": ("content: photo.png\nstyle: secret.png\n", ["key 'style'", "/etc/passwd", "outside"]),
    "loose_subfolder": ("content: photo.png\nstyle: some_folder/style.png\n", ["sub-folder"]),
}
FAILED_NAME = {"%%%": "unnamed"}


def _write_bad_folder(inbox: Path, name: str, spec: str | None, extras: dict) -> None:
    folder = inbox / name
    make_image(folder / "photo.png")
    make_image(folder / "style.png", "style/starry_night.jpg")
    if spec is not None:
        (folder / "job.yaml").write_text(spec)
    for file_name, content in extras.items():
        if content == "truncate":
            make_image(folder / file_name)
            data = (folder / file_name).read_bytes()
            (folder / file_name).write_bytes(data[: len(data) // 2])
        elif content == "huge":
            make_image(folder / file_name, size=(200, 200))
        elif isinstance(content, str):
            (folder / file_name).symlink_to(content)
        else:
            (folder / file_name).write_bytes(content)


@pytest.fixture(scope="module")
def bad_input_run(tmp_path_factory):
    """Drop every kind of bad job, then a good one, and drain the inbox once."""
    root = tmp_path_factory.mktemp("bad")
    config_path = write_config(root, max_image_pixels=20_000, max_spec_bytes=2048)
    inbox = root / "inbox"
    originals = {}
    for name, (spec, extras, _) in BAD_FOLDERS.items():
        _write_bad_folder(inbox, name, spec, extras)
        originals[FAILED_NAME.get(name, name)] = {p.name: p.read_bytes() for p in (inbox / name).iterdir()
                                                  if not p.is_symlink()}
    make_image(inbox / "photo.png")
    (inbox / "secret.png").symlink_to("/etc/passwd")
    for name, (spec, _) in BAD_LOOSE.items():
        (inbox / f"{name}.yaml").write_text(spec)
    time.sleep(0.05)  # the good job is the newest, so it is taken last
    write_job_folder(inbox, "good")
    daemon = Daemon(load_daemon_config(config_path), once=True, manage_log_level=False)
    summary = daemon.run()
    return root, summary, originals


@pytest.mark.slow
def test_bad_jobs_fail_and_the_good_one_is_still_delivered(bad_input_run):
    root, summary, _ = bad_input_run
    assert folders(root / "outbox") == ["good"]
    assert summary.delivered == 1 and summary.failed == len(BAD_FOLDERS) + len(BAD_LOOSE)
    expected = {FAILED_NAME.get(name, name) for name in [*BAD_FOLDERS, *BAD_LOOSE]}
    assert set(folders(root / "failed")) == expected
    assert folders(root / "work") == []


@pytest.mark.slow
@pytest.mark.parametrize("name", [*BAD_FOLDERS, *BAD_LOOSE])
def test_each_bad_job_says_what_is_wrong_where_and_keeps_its_inputs(bad_input_run, name):
    root, _, originals = bad_input_run
    failed = root / "failed" / FAILED_NAME.get(name, name)
    text = (failed / "error.txt").read_text()
    words = BAD_FOLDERS[name][2] if name in BAD_FOLDERS else BAD_LOOSE[name][1]
    for word in words:
        assert word in text, f"error.txt of {name} should mention {word!r}:\n{text}"
    record = read_json(failed / "error.json")
    assert record["message"] in text and record["error"] and record["job"]["name"] == failed.name
    assert str(root / "work") not in text, "paths are shown as the user wrote them, not the spool's"
    if name in originals:
        kept = {p.name: p.read_bytes() for p in (failed / "inputs").iterdir() if not p.is_symlink()}
        assert kept == originals[name], "the spec and its inputs are kept untouched"


@pytest.mark.slow
def test_the_symlinked_secret_is_never_copied(bad_input_run):
    root, _, _ = bad_input_run
    for path in (root / "failed").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"root:" not in path.read_bytes(), f"{path} holds a copy of /etc/passwd"


# --- the watchdog handler ----------------------------------------------------------------------------


def test_the_event_handler_never_raises():
    class Exploding:
        def set(self):
            raise RuntimeError("boom")

    InboxEvents(Exploding(), Exploding()).dispatch(object())  # must not raise


def test_watchdog_pings_only_while_every_worker_is_alive(tmp_path):
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.setblocking(False)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1"})
        daemon = Daemon(load_daemon_config(write_config(tmp_path)), notifier=notifier, manage_log_level=False)
        finished = threading.Thread(target=lambda: None)
        finished.start()
        finished.join()
        daemon.workers = [finished]  # a worker that died
        daemon._heartbeat(observer=None)
        messages = []
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except BlockingIOError:
                break
        assert "WATCHDOG=1" not in messages and any(m.startswith("STATUS=") for m in messages)
        daemon.workers = []
        daemon._heartbeat(observer=None)
        assert listener.recv(4096).decode() == "WATCHDOG=1"
    finally:
        listener.close()


@pytest.mark.slow
def test_events_wake_the_daemon_and_periodic_rescans_find_what_events_missed(tmp_path):
    """With the observer watching nothing useful, a job is still found by the rescan."""
    config_path = write_config(tmp_path, rescan_seconds=1.0)
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    with daemon_thread(config_path) as daemon:
        wait_for(lambda: any(t.name.startswith("styled-worker") for t in threading.enumerate()))
        daemon.hint.set = lambda: None  # events are now lost, as on an inotify overflow
        write_job_folder(inbox, "found_by_rescan")
        wait_for(delivered(outbox, 1), what="a delivery found by rescanning")
    assert folders(outbox) == ["found_by_rescan"]


@pytest.mark.slow
def test_an_optimisation_job_gets_an_adain_preview_while_it_renders(tmp_path):
    from styled.daemon.status import read_status

    config_path = write_config(tmp_path, checkpoint_seconds=60)
    inbox, work, outbox = tmp_path / "inbox", tmp_path / "work", tmp_path / "outbox"
    write_job_folder(inbox, "slow", {"content": "photo.png", "style": "style.png", "size": 48, "scales": 1,
                                     "iterations": 150, "precision": "float32"})
    with daemon_thread(config_path):
        wait_for(lambda: (work / "slow" / "preview.png").exists(), what="preview.png in work/slow")
        with PILImage.open(work / "slow" / "preview.png") as preview:
            assert max(preview.size) == 48
        running = read_status(load_daemon_config(config_path)).running
        assert running and running[0]["preview"].endswith("preview.png")
        wait_for(delivered(outbox, 1), what="the delivery")


def test_a_spool_written_by_styled_0_1_0_resumes_after_the_upgrade(tmp_path):
    """A work folder as styled 0.1.0 left it (untyped state.json, no version, nulls written out),
    killed mid-render: the new daemon reads it, renders it as attempt 2, and delivers it once."""
    config_path = write_config(tmp_path)
    job_dir = tmp_path / "work" / "old" / "job"
    job_dir.mkdir(parents=True)
    make_image(job_dir / "photo.png")
    make_image(job_dir / "style.png", "style/starry_night.jpg")
    (job_dir / "job.yaml").write_text(yaml.safe_dump({"content": "photo.png", "style": "style.png", **TINY_SPEC}))
    version_1 = {"id": "0" * 32, "name": "old", "kind": "folder", "spec": "job.yaml",
                 "source": str(tmp_path / "inbox" / "old"), "status": "rendering", "attempts": 1,
                 "received": "2026-11-01T10:00:00.000+00:00", "claimed": "2026-11-01T10:00:01.000+00:00",
                 "started": "2026-11-01T10:00:02.000+00:00", "device": "cpu#1", "defaults": {},
                 "release": [], "resumed_from": []}
    (job_dir.parent / "state.json").write_text(json.dumps(version_1))
    with daemon_thread(config_path, once=True) as daemon:
        wait_for(delivered(tmp_path / "outbox", 1), what="the old job's delivery")
    report = read_json(tmp_path / "outbox" / "old" / "report.json")
    assert report["job"]["id"] == "0" * 32 and report["job"]["attempts"] == 2
    assert report["job"]["started"] == version_1["started"], "the first start is kept"
    assert daemon.summary.delivered == 1 and folders(tmp_path / "work") == []


def test_a_job_whose_delivery_and_failure_both_fail_is_failed_at_a_later_scan(tmp_path, monkeypatch):
    """A fault injected on purpose: the first two folder placements (the delivery, then the move to
    failed/) raise, as a full or unplugged disk would. The job must not be stranded in work/."""
    from styled.daemon.spool import Spool

    real_publish, calls = Spool.publish, []

    def flaky_publish(self, parent, name, fill):
        calls.append(parent.name)
        if len(calls) <= 2:
            raise OSError(28, "No space left on device")
        return real_publish(self, parent, name, fill)

    monkeypatch.setattr(Spool, "publish", flaky_publish)
    config_path = write_config(tmp_path, rescan_seconds=0.5)
    write_job_folder(tmp_path / "inbox", "unlucky")
    with daemon_thread(config_path):
        wait_for(lambda: folders(tmp_path / "failed") == ["unlucky"], what="the job in failed/")
        wait_for(lambda: folders(tmp_path / "work") == [], what="work/ emptied")
    assert calls == ["outbox", "failed", "failed"]
    text = (tmp_path / "failed" / "unlucky" / "error.txt").read_text()
    assert "could not be delivered" in text and "No space left on device" in text
    assert (tmp_path / "failed" / "unlucky" / "inputs" / "photo.png").exists()


def test_a_work_folder_removed_mid_render_is_abandoned_in_one_line_and_the_daemon_goes_on(tmp_path, caplog):
    import logging
    import shutil

    caplog.set_level(logging.INFO, logger="styled")
    config_path = write_config(tmp_path)
    inbox, work = tmp_path / "inbox", tmp_path / "work"
    write_job_folder(inbox, "doomed", {"content": "photo.png", "style": "style.png", "size": 48, "scales": 1,
                                       "iterations": 100_000})
    with daemon_thread(config_path):
        wait_for(lambda: read_json(work / "doomed" / "progress.json").get("iteration", 0) >= 2, what="rendering")
        shutil.rmtree(work / "doomed")
        write_job_folder(inbox, "next")
        wait_for(delivered(tmp_path / "outbox", 1), what="the next job's delivery")
    assert folders(tmp_path / "outbox") == ["next"] and folders(work) == []
    abandoned = [r for r in caplog.records if "was removed while its job ran" in r.getMessage()]
    assert len(abandoned) == 1 and not [r for r in caplog.records if r.exc_info], "one line, no traceback"


def test_a_tiled_job_is_delivered_with_its_memory_plan(tmp_path):
    config_path = write_config(tmp_path)
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    write_job_folder(inbox, "print", {"content": "photo.png", "style": "style.png", "size": 96, "scales": 1,
                                      "iterations": 4, "precision": "float32", "tile_size": 32,
                                      "content_layers": ["relu3_1"], "style_layers": ["relu1_1", "relu3_1"]})
    with daemon_thread(config_path):
        wait_for(delivered(outbox, 1), what="the delivery")
    report = read_json(outbox / "print" / "report.json")
    assert report["memory"][0]["tiles"] > 1 and report["memory"][0]["tile"] == [32, 32]
    assert report["memory"][0]["budget"] > 0 and report["memory"][0]["estimate"] > 0


def test_a_job_is_planned_with_what_the_workers_earlier_jobs_left_with_tensorflow(tmp_path):
    config_path = write_config(tmp_path)
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    with daemon_thread(config_path):
        write_job_folder(inbox, "large", {"content": "photo.png", "style": "style.png", "size": 96, "scales": 1,
                                          "iterations": 2})
        wait_for(delivered(outbox, 1), what="the first delivery")
        write_job_folder(inbox, "small", {"content": "photo.png", "style": "style.png", "size": 32, "scales": 1,
                                          "iterations": 2})
        wait_for(delivered(outbox, 2), what="the second delivery")
    large = read_json(outbox / "large" / "report.json")["memory"]
    small = read_json(outbox / "small" / "report.json")["memory"]
    assert large[0]["held"] == 0 and small[0]["held"] == large[0]["network"] > small[0]["network"]
