"""A studio's controls against a real daemon: cancel (waiting, running, on a Dask worker), retry from
the checkpoint, priority with arrival order breaking ties; and the errors for jobs that cannot be
cancelled."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from daemon_support import (
    DaemonProcess,
    daemon_thread,
    folders,
    read_json,
    run_cli,
    wait_for,
    work_state,
    write_config,
    write_job_folder,
)

from styled.daemon import control
from styled.daemon.config import load_daemon_config
from styled.daemon.inbox import InboxWatch, Pending, Readiness
from styled.daemon.jobqueue import JobQueue
from styled.daemon.spool import WorkJob

pytestmark = pytest.mark.timeout(420)

#: Long enough to act on while it renders: one scale, many iterations, a checkpoint every 0.5 s.
LONG_SPEC = {"content": "photo.png", "style": "style.png", "size": 48, "scales": 1, "iterations": 2000}
QUICK_SPEC = {"content": "photo.png", "style": "style.png", "size": 32, "scales": 1, "iterations": 2}


def checkpointed(work: Path, name: str) -> bool:
    state = work_state(work, name)
    return state.get("status") == "rendering" and (state.get("checkpoint") or {}).get("done", 0) > 0


def cancelled(failed: Path, name: str) -> bool:
    return read_json(failed / name / "error.json").get("error") == "cancelled"


# --- the decisions, on their own --------------------------------------------------------------------


def test_waiting_jobs_are_claimed_highest_priority_first_and_in_arrival_order_among_equals(tmp_path):
    watch = InboxWatch(settle_seconds=0.0, missing_file_seconds=0.0)
    jobs = [("low", 0), ("urgent", 5), ("later", 0), ("urgent-too", 5)]
    observed = [(Pending(tmp_path / name, "folder", name), Readiness(priority=priority)) for name, priority in jobs]
    for now in (0.0, 1.0):  # first seen, then settled
        plan = watch.plan(observed, now, free_workers=3)
    assert [pending.raw_name for pending in plan.claim] == ["urgent", "urgent-too", "low"]
    assert plan.waiting == (tmp_path / "later",)


def test_the_queue_hands_out_the_highest_priority_first_and_lets_a_waiting_job_go(tmp_path):
    queue = JobQueue(["cpu"])
    for name, priority in (("a", 0), ("b", 3), ("c", 3), ("d", 1)):
        queue.put(WorkJob(tmp_path / name), None, priority)
    assert queue.reprioritise(tmp_path / "d", 9)
    assert queue.remove(tmp_path / "c").path == tmp_path / "c"
    taken = [queue.take("cpu", 0).path.name for _ in range(3)]
    assert taken == ["d", "b", "a"] and queue.take("cpu", 0) is None
    assert queue.remove(tmp_path / "a") is None, "a job a worker took is not waiting any more"


def test_a_waiting_jobs_priority_is_one_line_of_its_spec(tmp_path):
    assert control.with_priority("content: a.png\nstyle: b.png\n", 5) == "content: a.png\nstyle: b.png\npriority: 5\n"
    assert control.with_priority("priority: 1  # urgent\nsize: 64\n", -2) == "priority: -2\nsize: 64\n"
    config = load_daemon_config(write_config(tmp_path))
    write_job_folder(tmp_path / "inbox", "poster", QUICK_SPEC)
    found = control.set_priority(config, "poster", 7, by="a test")
    assert found.where == control.WAITING
    assert "priority: 7" in (tmp_path / "inbox" / "poster" / "job.yaml").read_text()
    status = run_cli("status", "--config", str(tmp_path / "config.yaml"))
    assert "poster  (folder, priority 7)" in status.stdout, status.stdout


@pytest.mark.parametrize("where", ["outbox", "failed", None])
def test_cancelling_a_done_failed_or_unknown_job_is_a_clear_error(tmp_path, where):
    config = write_config(tmp_path)
    if where is not None:
        (tmp_path / where / "poster").mkdir()
    result = run_cli("cancel", "poster", "--config", str(config))
    assert result.returncode == 2, result.stderr
    expected = {"outbox": "already done", "failed": "already failed", None: "no job named 'poster'"}[where]
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "inbox" / control.REQUESTS_DIR).exists() or \
        not list((tmp_path / "inbox" / control.REQUESTS_DIR).iterdir()), "no request is left for the daemon"


def test_retrying_a_job_that_did_not_fail_is_a_clear_error(tmp_path):
    config = write_config(tmp_path)
    (tmp_path / "outbox" / "poster").mkdir()
    result = run_cli("retry", "poster", "--config", str(config))
    assert result.returncode == 2 and "is done, not failed" in result.stderr, result.stderr
    assert run_cli("retry", "nothing", "--config", str(config)).returncode == 2


# --- against a running daemon -----------------------------------------------------------------------


@pytest.mark.slow
def test_cancel_a_waiting_job_and_a_running_one_then_retry_resumes_from_the_checkpoint(tmp_path):
    config = write_config(tmp_path)
    inbox, work, failed, outbox = (tmp_path / name for name in ("inbox", "work", "failed", "outbox"))
    write_job_folder(inbox, "long", LONG_SPEC)
    with daemon_thread(config):
        wait_for(lambda: checkpointed(work, "long"), what="a checkpoint of the running job")
        write_job_folder(inbox, "waiting", QUICK_SPEC)
        waiting = run_cli("cancel", "waiting", "--config", str(config), "--wait", "60")
        assert waiting.returncode == 0, waiting.stderr
        assert "waiting in the inbox" in waiting.stdout
        assert cancelled(failed, "waiting") and not (inbox / "waiting").exists()
        assert (failed / "waiting" / "inputs" / "job.yaml").is_file(), "a cancelled job keeps its inputs"
        assert work_state(work, "long").get("status") == "rendering", "the running job goes on"

        running = run_cli("cancel", "long", "--config", str(config), "--wait", "60")
        assert running.returncode == 0, running.stderr
        assert cancelled(failed, "long")
        text = (failed / "long" / "error.txt").read_text()
        assert "cancelled at 20" in text and "by styled cancel" in text and "styled retry long" in text, text
        saved = np.load(failed / "long" / "checkpoint.npz")
        assert saved["image"].shape == (36, 48, 3), "the checkpoint is kept for the retry"
        done_before = read_json(failed / "long" / "error.json")

        retried = run_cli("retry", "long", "--config", str(config))
        assert retried.returncode == 0, retried.stderr
        assert not (failed / "long").exists() and (inbox / "long" / "resume-checkpoint.npz").is_file()
        wait_for(lambda: checkpointed(work, "long"), what="the retried job rendering again")
        state = work_state(work, "long")
        assert state["resumed_from"] and state["resumed_from"][0]["iterations_done"] > 0, state
        run_cli("cancel", "long", "--config", str(config), "--wait", "60")
    assert folders(outbox) == [] and done_before["job"]["name"] == "long"


@pytest.mark.slow
def test_priority_decides_which_waiting_job_a_free_worker_takes(tmp_path):
    config = write_config(tmp_path)
    inbox, work, outbox = tmp_path / "inbox", tmp_path / "work", tmp_path / "outbox"
    write_job_folder(inbox, "blocker", LONG_SPEC)
    with daemon_thread(config):
        wait_for(lambda: checkpointed(work, "blocker"), what="the first job rendering")
        for name, priority in (("first", 0), ("urgent", 5), ("second", 0), ("urgent-too", 5)):
            write_job_folder(inbox, name, {**QUICK_SPEC, "priority": priority})
        set_priority = run_cli("priority", "second", "3", "--config", str(config))
        assert set_priority.returncode == 0, set_priority.stderr
        status = run_cli("status", "--config", str(config)).stdout
        order = [line.split()[0] for line in status.split("waiting", 1)[1].split("running", 1)[0].splitlines()[1:]]
        assert order == ["urgent", "urgent-too", "second", "first"], status
        run_cli("cancel", "blocker", "--config", str(config), "--wait", "60")
        wait_for(lambda: len(folders(outbox)) == 4, what="the four waiting jobs delivered")
    started = {name: read_json(outbox / name / "report.json")["job"]["started"] for name in folders(outbox)}
    assert sorted(started, key=started.get) == ["urgent", "urgent-too", "second", "first"], started
    assert read_json(outbox / "urgent" / "report.json")["settings"]["priority"] == 5


@pytest.mark.slow
def test_cancel_a_job_rendering_on_a_dask_worker_keeps_its_checkpoint_and_retry_resumes_it(tmp_path):
    pytest.importorskip("distributed")
    config = write_config(tmp_path, cluster={"local": {"workers": 1}, "threads": 1, "dashboard": None})
    inbox, work, failed, outbox = (tmp_path / name for name in ("inbox", "work", "failed", "outbox"))
    write_job_folder(inbox, "long", LONG_SPEC)
    with DaemonProcess(config) as daemon:
        wait_for(lambda: checkpointed(work, "long"), 240, "a checkpoint on the Dask worker")
        cancel = run_cli("cancel", "long", "--config", str(config), "--wait", "120")
        assert cancel.returncode == 0, cancel.stderr + daemon.log()[-3000:]
        assert cancelled(failed, "long") and (failed / "long" / "checkpoint.npz").is_file()
        assert run_cli("retry", "long", "--config", str(config)).returncode == 0
        wait_for(lambda: checkpointed(work, "long"), 240, "the retried job on the Dask worker")
        assert work_state(work, "long")["resumed_from"], "resumed from the cancelled render's checkpoint"
        assert run_cli("cancel", "long", "--config", str(config), "--wait", "120").returncode == 0
        daemon.signal(15)
        assert daemon.wait() == 0
    assert folders(outbox) == []


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user owns needs root")
def test_a_hard_link_to_someone_elses_file_never_reaches_failed_but_ones_own_file_works(tmp_path):
    config = write_config(tmp_path)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for the dropper's eyes")
    os.chown(secret, 12345, 12345)
    folder = write_job_folder(tmp_path / "inbox-staging", "stolen", QUICK_SPEC)
    (folder / "photo.png").unlink()
    os.link(secret, folder / "photo.png")
    own = write_job_folder(tmp_path / "inbox-staging", "own", QUICK_SPEC)
    shared = tmp_path / "shared-style.png"
    os.link(own / "style.png", shared)  # a second link to the dropper's own file
    for job in (folder, own):
        os.rename(job, tmp_path / "inbox" / job.name)
    with daemon_thread(config, once=True):
        wait_for(lambda: folders(tmp_path / "outbox") == ["own"] and folders(tmp_path / "failed") == ["stolen"],
                 what="one delivery and one failure")
    inputs = tmp_path / "failed" / "stolen" / "inputs"
    assert not (inputs / "photo.png").exists()
    assert all(b"dropper's eyes" not in path.read_bytes() for path in inputs.rglob("*") if path.is_file())
    assert "hard link" in (tmp_path / "failed" / "stolen" / "error.txt").read_text()


@pytest.mark.slow
def test_the_daemon_inpaints_a_job_without_a_style_image(tmp_path):
    config = write_config(tmp_path)
    spec = {"content": "photo.png", "iterations": 3, "plugins": {"inpainting": {"region": [8, 6, 8, 8]}}}
    write_job_folder(tmp_path / "inbox", "fill", spec, images={"photo.png": "content/tubingen.jpg"})
    with daemon_thread(config, once=True):
        wait_for(lambda: folders(tmp_path / "outbox") or folders(tmp_path / "failed"), what="the job's end")
    assert folders(tmp_path / "outbox") == ["fill"], read_json(tmp_path / "failed" / "fill" / "error.json")
    assert read_json(tmp_path / "outbox" / "fill" / "report.json")["settings"]["style"] == []
