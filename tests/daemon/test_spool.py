"""The spool's file moves: names, confinement, settling, claims, recovery, delivery, the lock."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from daemon_support import make_image, write_config

from styled.daemon.config import load_daemon_config
from styled.daemon.inbox import Settler, readiness, scan_inbox
from styled.daemon.lock import SpoolLock, holder_pid
from styled.daemon.paths import check_output_name, confine, job_name
from styled.daemon.spool import Spool, WorkJob
from styled.daemon.state import Status
from styled.daemon.submit import submit
from styled.errors import ImageError, JobSpecError, SpoolError
from styled.io.files import rename_no_replace

SUFFIXES = (".png", ".jpg", ".tif")


@pytest.fixture
def spool(tmp_path) -> Spool:
    spool = Spool(load_daemon_config(write_config(tmp_path)))
    spool.ensure_folders()
    return spool


def job_folder(inbox: Path, name: str, spec: str = "content: a.png\nstyle: b.png\n") -> Path:
    folder = inbox / name
    folder.mkdir()
    (folder / "job.yaml").write_text(spec)
    make_image(folder / "a.png")
    make_image(folder / "b.png", "style/starry_night.jpg")
    return folder


def pending_named(inbox: Path, name: str):
    return next(p for p in scan_inbox(inbox) if p.path.name == name)


# --- names and paths ---


@pytest.mark.parametrize("raw, expected", [
    ("holiday", "holiday"), ("Beach Photo 2", "Beach_Photo_2"), ("..hidden..", "hidden"),
    ("a/b", "a_b"), ("x" * 200, "x" * 80), ("café", "café"),
])
def test_job_names_are_safe_folder_names(raw, expected):
    assert job_name(raw) == expected


@pytest.mark.parametrize("raw", ["...", "%%%", "___", " - "])
def test_names_with_nothing_usable_are_refused(raw):
    with pytest.raises(SpoolError, match="cannot be used as a folder name"):
        job_name(raw)


@pytest.mark.parametrize("value, message", [
    ("../evil.png", "outside"), ("/tmp/evil.png", "outside"), ("sub/result.png", "outside"),
    ("..", "outside"), (".hidden.png", "hidden"), ("result.gif", "cannot write"),
    ("sheet.png", "comes with every result"),
])
def test_output_names_that_escape_or_clash_are_refused(value, message):
    with pytest.raises(SpoolError, match=message) as caught:
        check_output_name(value, SUFFIXES, reserved=("sheet.png", "loss.png"))
    assert caught.value.key == "output"


def test_plain_output_name_is_accepted():
    assert check_output_name("painting.jpg", SUFFIXES) == "painting.jpg"


def test_confine_resolves_inside_the_job_then_the_library(tmp_path):
    job, library = tmp_path / "job", tmp_path / "library"
    make_image(job / "a.png")
    make_image(library / "oils" / "starry.png")
    assert confine("a.png", [job, library], key="content") == (job / "a.png").resolve()
    assert confine("oils/starry.png", [job, library], key="style") == (library / "oils" / "starry.png").resolve()
    assert confine("absent.png", [job, library], key="style") == job / "absent.png"


@pytest.mark.parametrize("value, message", [
    ("/etc/passwd", "absolute path"), ("~/photo.png", "absolute path"), ("../x.png", "'..'"),
    ("a/../../x.png", "'..'"),
])
def test_confine_refuses_paths_that_escape(tmp_path, value, message):
    with pytest.raises(SpoolError, match=message) as caught:
        confine(value, [tmp_path], key="style", where="job.yaml", line=3)
    assert (caught.value.key, caught.value.line) == ("style", 3)


def test_confine_refuses_symlinks_pointing_outside_but_allows_inside(tmp_path):
    job = tmp_path / "job"
    make_image(job / "real.png")
    (job / "inside.png").symlink_to("real.png")
    (job / "passwd.png").symlink_to("/etc/passwd")
    assert confine("inside.png", [job], key="content") == (job / "real.png").resolve()
    with pytest.raises(SpoolError, match="outside the folders a job may read"):
        confine("passwd.png", [job], key="style")


def test_confine_flat_refuses_subfolders_of_the_inbox_but_not_of_the_library(tmp_path):
    inbox, library = tmp_path / "inbox", tmp_path / "library"
    make_image(inbox / "other_job" / "a.png")
    make_image(library / "oils" / "a.png")
    with pytest.raises(SpoolError, match="sub-folder"):
        confine("other_job/a.png", [inbox, library], key="content", flat=True)
    assert confine("oils/a.png", [inbox, library], key="style", flat=True) == (library / "oils" / "a.png").resolve()


# --- the inbox ---


def test_scan_ignores_dotfiles_partial_files_and_loose_images(spool):
    inbox = spool.config.inbox
    job_folder(inbox, "folder_job")
    (inbox / "loose.yaml").write_text("content: a.png\nstyle: b.png\n")
    (inbox / ".hidden.yaml").write_text("")
    (inbox / "writing.yaml.part").write_text("")
    (inbox / "writing.tmp").mkdir()
    make_image(inbox / "a.png")
    found = {(p.path.name, p.kind) for p in scan_inbox(inbox)}
    assert found == {("folder_job", "folder"), ("loose.yaml", "loose")}


def test_readiness_lists_missing_files_and_files_being_written(spool):
    inbox = spool.config.inbox
    folder = job_folder(inbox, "job", "content: a.png\nstyle: [b.png, later.png]\n")
    (folder / "c.png.part").write_text("half")
    ready = readiness(pending_named(inbox, "job"), spool.config)
    assert ready.missing == ["later.png"]
    assert ready.writing == ["c.png.part"]
    assert folder / "a.png" in ready.files and folder / "job.yaml" in ready.files


def test_readiness_of_a_loose_spec_watches_its_images(spool):
    inbox = spool.config.inbox
    make_image(inbox / "a.png")
    (inbox / "loose.yaml").write_text("content: a.png\nstyle: b.png\n")
    ready = readiness(pending_named(inbox, "loose.yaml"), spool.config)
    assert inbox / "a.png" in ready.files and ready.missing == ["b.png"]


def test_settler_needs_unchanged_signatures_for_the_whole_period(tmp_path):
    settler = Settler()
    path = tmp_path / "f"
    assert settler.observe({path: (10, 1)}, now=100.0) == 0.0
    assert settler.observe({path: (10, 1)}, now=101.0) == pytest.approx(1.0)
    assert settler.observe({path: (20, 1)}, now=102.0) == 0.0  # it grew: start again
    assert settler.observe({path: (20, 1)}, now=104.5) == pytest.approx(2.5)


# --- claims ---


def test_claim_moves_a_job_folder_into_work_with_one_rename(spool):
    inbox = spool.config.inbox
    job_folder(inbox, "portrait")
    work = spool.claim(pending_named(inbox, "portrait"), received="2026-01-01T00:00:00+00:00")
    assert not (inbox / "portrait").exists()
    assert work.path == spool.config.work / "portrait"
    assert (work.job_dir / "job.yaml").exists() and (work.job_dir / "a.png").exists()
    state = work.state()
    assert state.status == Status.QUEUED and state.attempts == 0 and len(state.id) == 32
    assert state.received == "2026-01-01T00:00:00+00:00" and state.kind == "folder"


def test_claim_picks_a_new_work_name_when_taken(spool):
    inbox = spool.config.inbox
    (spool.config.work / "portrait").mkdir()
    job_folder(inbox, "portrait")
    assert spool.claim(pending_named(inbox, "portrait")).path.name == "portrait-2"


def test_shared_loose_image_stays_until_the_last_spec_is_claimed(spool):
    inbox = spool.config.inbox
    make_image(inbox / "photo.png")
    make_image(inbox / "style.png", "style/starry_night.jpg")
    make_image(inbox / "other.png", "style/the_scream.jpg")
    (inbox / "first.yaml").write_text("content: photo.png\nstyle: style.png\n")
    (inbox / "second.yaml").write_text("content: photo.png\nstyle: other.png\n")
    first = spool.claim(pending_named(inbox, "first.yaml"))
    assert (first.job_dir / "photo.png").exists() and (first.job_dir / "first.yaml").exists()
    assert not (inbox / "style.png").exists(), "an image only the claimed spec named is taken"
    assert (inbox / "photo.png").exists(), "an image another pending spec names stays"
    second = spool.claim(pending_named(inbox, "second.yaml"))
    assert (second.job_dir / "photo.png").exists()
    assert not (inbox / "photo.png").exists() and not (inbox / "other.png").exists()


def test_loose_image_linked_outside_the_inbox_is_never_copied(spool):
    inbox = spool.config.inbox
    make_image(inbox / "photo.png")
    (inbox / "secret.png").symlink_to("/etc/passwd")
    (inbox / "sneaky.yaml").write_text("content: photo.png\nstyle: secret.png\n")
    work = spool.claim(pending_named(inbox, "sneaky.yaml"))
    assert not (work.job_dir / "secret.png").exists()
    error = work.state().claim_error
    assert error["key"] == "style" and "/etc/passwd" in error["message"]


def test_a_linked_job_folder_is_claimed_with_an_error_and_nothing_of_its_target(spool, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.png").write_text("not for the daemon")
    (spool.config.inbox / "linked").symlink_to(outside)
    work = spool.claim(pending_named(spool.config.inbox, "linked"))
    state = work.state()
    assert "symbolic link" in state.claim_error["message"]
    assert work.job_dir.is_dir() and not work.job_dir.is_symlink() and list(work.job_dir.iterdir()) == []
    assert [dict(item) for item in state.left_out] == [{"path": "linked", "kind": "a symbolic link",
                                                        "target": str(outside)}]
    assert (outside / "secret.png").exists() and not (spool.config.inbox / "linked").exists()


def test_claim_of_a_vanished_entry_leaves_nothing_behind(spool):
    inbox = spool.config.inbox
    folder = job_folder(inbox, "gone")
    pending = pending_named(inbox, "gone")
    os.rename(folder, spool.config.failed / "moved-away")
    assert spool.claim(pending) is None
    assert list(spool.config.work.iterdir()) == []


# --- recovery ---


def test_recovery_undoes_a_claim_that_crashed_before_its_rename(spool):
    inbox = spool.config.inbox
    job_folder(inbox, "job")
    crashed = WorkJob(spool.config.work / "job")
    crashed.path.mkdir()
    crashed.state_path.write_text(json.dumps({"id": "x" * 32, "name": "job", "kind": "folder", "spec": "job.yaml",
                                              "source": str(inbox / "job"), "status": Status.CLAIMING,
                                              "release": []}))
    assert spool.recover() == []
    assert not crashed.path.exists() and (inbox / "job" / "job.yaml").exists()


def test_recovery_completes_a_claim_that_crashed_after_its_rename(spool):
    inbox = spool.config.inbox
    make_image(inbox / "photo.png")
    (inbox / "loose.yaml").write_text("content: photo.png\nstyle: photo.png\n")
    work = spool.claim(pending_named(inbox, "loose.yaml"))
    make_image(inbox / "photo.png")  # as if the crash came before the inbox was tidied
    work.update(status=Status.CLAIMING)
    assert spool.recover() == [work]
    assert work.state().status == Status.QUEUED and not (inbox / "photo.png").exists()


def test_recovery_never_delivers_a_delivered_job_again(spool):
    job_folder(spool.config.inbox, "done")
    work = spool.claim(pending_named(spool.config.inbox, "done"))
    state = work.update(status=Status.DELIVERING)
    delivered = spool.config.outbox / "done"
    delivered.mkdir()
    (delivered / "report.json").write_text(json.dumps({"job": {"id": state.id}}))
    (spool.config.outbox / ".done.tmp-abc").mkdir()  # a half-built delivery of another crash
    assert spool.recover() == []
    assert not work.path.exists() and not (spool.config.outbox / ".done.tmp-abc").exists()
    assert [p.name for p in spool.config.outbox.iterdir()] == ["done"]


def test_recovery_returns_a_job_whose_delivery_never_landed(spool):
    job_folder(spool.config.inbox, "again")
    work = spool.claim(pending_named(spool.config.inbox, "again"))
    work.update(status=Status.DELIVERING)
    other = spool.config.outbox / "again"
    other.mkdir()
    (other / "report.json").write_text(json.dumps({"job": {"id": "someone-else"}}))
    assert spool.recover() == [work]


# --- delivery ---


def test_place_adds_a_numeric_suffix_and_never_replaces(spool, tmp_path):
    outbox = spool.config.outbox
    (outbox / "job").mkdir()
    (outbox / "job-2").mkdir()
    seen = []

    def fill(folder):
        (folder / "result.png").write_text("x")
        seen.append(folder)

    assert spool.publish(outbox, "job", fill) == outbox / "job-3"
    assert (outbox / "job-3" / "result.png").exists() and not seen[0].exists()


def test_rename_no_replace_refuses_even_an_empty_target(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "target").mkdir()
    with pytest.raises(FileExistsError):
        rename_no_replace(tmp_path / "source", tmp_path / "target")
    assert (tmp_path / "source").exists()


def test_fail_moves_the_inputs_untouched_with_both_error_files(spool):
    inbox = spool.config.inbox
    folder = job_folder(inbox, "broken", "content: a.png\nsize: huge\n")
    original = {p.name: p.read_bytes() for p in folder.iterdir()}
    work = spool.claim(pending_named(inbox, "broken"))
    job_id = work.state().id
    error = JobSpecError("must be a whole number", where="inbox/broken/job.yaml", key="size", line=2)
    target = spool.fail(work, error.as_dict(), "The job failed: size must be a whole number\n")
    assert target == spool.config.failed / "broken"
    assert {p.name: p.read_bytes() for p in (target / "inputs").iterdir()} == original
    record = json.loads((target / "error.json").read_text())
    assert record["key"] == "size" and record["line"] == 2 and record["job"]["id"] == job_id
    assert "whole number" in (target / "error.txt").read_text()
    assert not work.path.exists()


# --- the lock, submit ---


@pytest.mark.slow
def test_one_daemon_per_spool(spool):
    work = spool.config.work
    with SpoolLock(work):
        assert holder_pid(work / ".styled-serve.lock") == os.getpid()
        with pytest.raises(SpoolError, match="another styled serve"):
            SpoolLock(work).acquire()
    assert holder_pid(work / ".styled-serve.lock") is None


def test_submit_writes_a_complete_job_folder_into_the_inbox(spool, tmp_path):
    content = make_image(tmp_path / "src" / "photo.png")
    style = make_image(tmp_path / "src2" / "photo.png", "style/starry_night.jpg")
    first = submit(spool.config, content, [style], ["iterations=5", "style_weight=20"])
    second = submit(spool.config, content, [style], [], name="photo")
    assert (first.name, second.name) == ("photo", "photo-2")
    spec = yaml.safe_load((first / "job.yaml").read_text())
    assert spec["content"] == "photo.png" and spec["iterations"] == 5 and spec["style_weight"] == 20
    assert len(spec["style"]) == 1 and spec["style"][0] != "photo.png", "a clashing name gets renamed"
    assert (first / spec["style"][0]).read_bytes() == style.read_bytes()
    assert not [p for p in spool.config.inbox.iterdir() if p.name.startswith(".")], "no temporary left"


def test_submit_refuses_a_bad_spec_or_missing_image_and_leaves_nothing(spool, tmp_path):
    content = make_image(tmp_path / "photo.png")
    with pytest.raises(JobSpecError, match="sise"):
        submit(spool.config, content, [content], ["sise=3"])
    with pytest.raises(ImageError, match="does not exist"):
        submit(spool.config, content, [tmp_path / "absent.png"], [])
    assert list(spool.config.inbox.iterdir()) == []


def test_files_a_loose_specs_plugin_options_name_travel_with_it(spool):
    from styled.plugins.manager import make_plugin_manager, plugin_file_finder

    spool.plugin_files = plugin_file_finder(make_plugin_manager())
    inbox = spool.config.inbox
    make_image(inbox / "photo.png")
    make_image(inbox / "style.png", "style/starry_night.jpg")
    make_image(inbox / "hole.png")
    (inbox / "fill.yaml").write_text("content: photo.png\nstyle: style.png\nplugins:\n  inpainting: {mask: hole.png}\n")
    work = spool.claim(pending_named(inbox, "fill.yaml"))
    assert sorted(p.name for p in work.job_dir.iterdir()) == ["fill.yaml", "hole.png", "photo.png", "style.png"]
    assert list(inbox.iterdir()) == [], "the mask leaves the inbox with its spec"


def test_files_named_inside_a_plugins_nested_options_travel_with_a_loose_spec(spool):
    from styled.plugins.manager import make_plugin_manager, plugin_file_finder

    spool.plugin_files = plugin_file_finder(make_plugin_manager())
    inbox = spool.config.inbox
    for name in ("photo.png", "sky.png", "town.png"):
        make_image(inbox / name)
    for name in ("starry.png", "scream.png", "guide.png"):
        make_image(inbox / name, "style/starry_night.jpg")
    (inbox / "split.yaml").write_text(
        "content: photo.png\nplugins:\n  regions:\n    regions:\n"
        "      - {mask: sky.png, style: starry.png, guide: guide.png}\n      - {mask: town.png, style: [scream.png]}\n")
    work = spool.claim(pending_named(inbox, "split.yaml"))
    assert sorted(p.name for p in work.job_dir.iterdir()) == [
        "guide.png", "photo.png", "scream.png", "sky.png", "split.yaml", "starry.png", "town.png"]
    assert list(inbox.iterdir()) == [], "masks and styles leave the inbox with their spec"


def test_the_claim_renders_from_a_copy_no_later_change_reaches(spool):
    inbox = spool.config.inbox
    folder = job_folder(inbox, "copied")
    original = (folder / "a.png").read_bytes()
    work = spool.claim(pending_named(inbox, "copied"))
    assert (work.job_dir / "a.png").read_bytes() == original and (work.job_dir / "a.png").stat().st_nlink == 1
    assert not work.drop_dir.exists(), "what was taken from the inbox is gone once copied"


def test_recovery_finishes_a_claim_that_crashed_between_its_rename_and_its_copy(spool):
    inbox = spool.config.inbox
    job_folder(inbox, "halfway")
    work = WorkJob(spool.config.work / "halfway")
    work.path.mkdir()
    work.state_path.write_text(json.dumps({"id": "y" * 32, "name": "halfway", "kind": "folder", "spec": "job.yaml",
                                           "source": str(inbox / "halfway"), "status": Status.CLAIMING}))
    os.rename(inbox / "halfway", work.drop_dir)
    (work.path / ".job.tmp-deadbeef").mkdir()  # a copy the crash cut short
    assert spool.recover() == [work]
    assert work.state().status == Status.QUEUED and (work.job_dir / "job.yaml").exists()
    assert sorted(p.name for p in work.path.iterdir()) == ["job", "state.json"]


def test_submit_writes_what_a_daemon_running_as_another_user_can_read(spool, tmp_path):
    import stat

    previous = os.umask(0o022)
    try:
        folder = submit(spool.config, make_image(tmp_path / "p.png"), [make_image(tmp_path / "s.png")], [])
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]}
    assert modes == {folder.name: 0o755, "job.yaml": 0o644, "p.png": 0o644, "s.png": 0o644}


def test_a_crash_is_held_against_a_job_only_when_it_made_no_progress():
    from styled.daemon.spool import after_crash
    from styled.daemon.state import JobState

    state = JobState(id="z", name="job", kind="folder", spec="job.yaml", source="inbox/job", status="rendering")
    # Dies at iteration 12 every time, its checkpoint stuck at 8: free once, then a strike each time.
    for expected in (0, 1, 2, 3):
        state = after_crash(state.but(status="rendering"), {"done": 12, "phase": 2, "checkpoint": 8})
        assert state.strikes == expected and state.status == Status.QUEUED
    # Killed while it redid iterations 8..11, but it saved checkpoint 10: progress.
    state = after_crash(state, {"done": 11, "phase": 2, "checkpoint": 10})
    assert state.strikes == 0 and state.high_water["done"] == 12
    # Got further than ever: progress, whatever the checkpoint.
    assert after_crash(state.but(strikes=2), {"done": 13, "phase": 2, "checkpoint": 10}).strikes == 0
