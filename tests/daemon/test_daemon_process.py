"""The daemon as a real process: kill -9 and resume, poison jobs, signals, reloads, sd_notify."""

from __future__ import annotations

import json
import signal
import time

import pytest
import yaml
from daemon_support import (
    KILLER_PLUGIN,
    Datagrams,
    DaemonProcess,
    folders,
    read_json,
    run_cli,
    wait_for,
    work_state,
    write_config,
    write_job_folder,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

#: Long enough that the test can act while it renders (each iteration is ~0.1 s at this size).
SLOW_SPEC = {"content": "photo.png", "style": "style.png", "size": 48, "scales": 1}
STOP_WITHIN_SECONDS = 30


def test_kill_9_mid_job_then_a_restart_resumes_and_delivers_exactly_once(tmp_path):
    config_path = write_config(tmp_path, checkpoint_seconds=0.3, create_folders=False)
    work, outbox = tmp_path / "work", tmp_path / "outbox"
    write_job_folder(tmp_path / "inbox", "resume", {**SLOW_SPEC, "iterations": 60})
    elsewhere = tmp_path / "elsewhere"  # relative folders resolve against the config, not the cwd
    elsewhere.mkdir()
    with DaemonProcess(config_path, cwd=elsewhere) as daemon:
        wait_for(lambda: work_state(work, "resume").get("checkpoint", {}).get("iteration", 0) >= 5,
                 what="a checkpoint at iteration 5 or later")
        status = run_cli("status", "--json", "--config", str(config_path))
        daemon.kill9()
    assert status.returncode == 0, status.stderr
    running = json.loads(status.stdout)
    assert running["daemon_pid"] == daemon.pid
    [job] = running["running"]
    assert job["name"] == "resume" and job["status"] == "rendering"
    assert job["progress"]["iteration"] >= 1 and "eta" in job["progress"] and job["progress"]["loss"] > 0
    checkpointed = work_state(work, "resume")["checkpoint"]["iteration"]
    assert folders(outbox) == [] and (work / "resume" / "checkpoint.npz").exists()

    with DaemonProcess(config_path, "--once", cwd=elsewhere) as restarted:
        assert restarted.wait() == 0, "--once exits 0 when every job was delivered"
    assert "resuming resume from its checkpoint" in restarted.log()
    assert folders(outbox) == ["resume"], "delivered once"
    report = read_json(outbox / "resume" / "report.json")
    life = report["job"]
    assert life["resumed"] is True and life["attempts"] == 2
    assert life["resumed_from"][0]["iteration"] >= min(checkpointed, 5)
    assert report["iterations"] == 60, "the resumed render finishes the job's iterations, no more"
    assert folders(work) == [] and folders(tmp_path / "failed") == []
    assert folders(elsewhere) == [] and folders(tmp_path) == ["elsewhere", "failed", "inbox", "outbox", "work"]


def test_kill_9_between_the_tiles_of_an_iteration_resumes_within_that_iteration(tmp_path):
    """At print sizes one iteration takes minutes: the checkpoint records the tiles done, and the
    restart finishes that iteration's evaluation instead of starting it again."""
    from styled.engine.types import Checkpoint

    config_path = write_config(tmp_path, checkpoint_seconds=0.3)
    work = tmp_path / "work"
    write_job_folder(tmp_path / "inbox", "tiles", {**SLOW_SPEC, "iterations": 8, "tile_size": 16})

    def recorded_tiles() -> int:
        try:
            evaluation = Checkpoint.load(work / "tiles" / "checkpoint.npz").evaluation
        except (OSError, ValueError, KeyError):
            return 0
        return evaluation.done if evaluation else 0

    with DaemonProcess(config_path) as daemon:
        def paused_on_a_record() -> bool:
            """Stopped (SIGSTOP) while the checkpoint on disk is one from between two tiles."""
            daemon.signal(signal.SIGSTOP)
            if recorded_tiles() > 0:
                return True
            daemon.signal(signal.SIGCONT)
            time.sleep(0.05)
            return False

        wait_for(paused_on_a_record, what="a checkpoint between the tiles of an iteration")
        done = recorded_tiles()
        daemon.kill9()
    with DaemonProcess(config_path, "--once") as restarted:
        assert restarted.wait() == 0, restarted.log()
    assert f"resuming an evaluation after {done} of 17 tile passes" in restarted.log()
    report = read_json(tmp_path / "outbox" / "tiles" / "report.json")
    assert report["iterations"] == 8 and report["memory"][0]["tiles"] == 9
    assert report["job"]["resumed"] is True


def test_a_job_that_keeps_taking_the_daemon_down_goes_to_failed_as_poison(tmp_path):
    """Each start renders the job, which kills the process before its first iteration. The first
    crash came further than any before it (it reached the render), so it does not count; the next
    two made no progress and do; at the start after that the job is poison and goes to failed/."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "killer.py").write_text(KILLER_PLUGIN)
    config_path = write_config(tmp_path, max_attempts=2, plugins_dir="plugins")
    work = tmp_path / "work"
    write_job_folder(tmp_path / "inbox", "poison", {**SLOW_SPEC, "iterations": 5, "plugins": {"killer": {}}})
    write_job_folder(tmp_path / "inbox", "innocent", {**SLOW_SPEC, "iterations": 3})
    for crash in (1, 2, 3):
        with DaemonProcess(config_path) as daemon:
            assert daemon.wait() == -signal.SIGKILL, f"crash {crash}: the poison job should kill the daemon"
        assert work_state(work, "poison").get("attempts") == crash
    with DaemonProcess(config_path, "--once") as last:
        assert last.wait() == 1, "--once exits 1 when a job failed"
    error = read_json(tmp_path / "failed" / "poison" / "error.json")
    assert error["error"] == "poison"
    text = (tmp_path / "failed" / "poison" / "error.txt").read_text()
    assert "took the worker down 2 times in a row without making progress" in text and "max_attempts" in text
    assert (tmp_path / "failed" / "poison" / "inputs" / "job.yaml").exists()
    assert folders(tmp_path / "outbox") == ["innocent"], "the job queued behind the poison one is delivered"
    assert folders(work) == []


def test_sigterm_checkpoints_the_running_job_and_exits_0(tmp_path):
    from styled.engine.types import Checkpoint

    config_path = write_config(tmp_path, checkpoint_seconds=600)  # only the stop writes one
    job = tmp_path / "work" / "stopping"
    write_job_folder(tmp_path / "inbox", "stopping", {**SLOW_SPEC, "iterations": 100_000})
    with DaemonProcess(config_path) as daemon:
        wait_for(lambda: read_json(job / "progress.json").get("iteration", 0) >= 3, what="iteration 3")
        seen = read_json(job / "progress.json")["iteration"]
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(STOP_WITHIN_SECONDS) == 0, daemon.log()
        stopped_after = time.monotonic() - started
    assert stopped_after < STOP_WITHIN_SECONDS
    state = read_json(job / "state.json")
    assert state["status"] == "interrupted" and state["attempts"] == 0, "a clean stop is not a crash"
    assert Checkpoint.load(job / "checkpoint.npz").state.iteration >= seen
    assert "interrupted stopping at scale 1" in daemon.log() and "checkpoint saved" in daemon.log()
    assert folders(tmp_path / "outbox") == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_during_shutdown_still_checkpoints_and_exits_0(tmp_path, signum):
    config_path = write_config(tmp_path, checkpoint_seconds=600)
    job = tmp_path / "work" / "stopping"
    write_job_folder(tmp_path / "inbox", "stopping", {**SLOW_SPEC, "iterations": 100_000})
    with DaemonProcess(config_path) as daemon:
        wait_for(lambda: read_json(job / "progress.json").get("iteration", 0) >= 3, what="iteration 3")
        daemon.signal(signum)
        time.sleep(0.05)
        daemon.signal(signum)
        assert daemon.wait(STOP_WITHIN_SECONDS) == 0, daemon.log()
    assert read_json(job / "state.json")["status"] == "interrupted"
    assert (job / "checkpoint.npz").exists()


def test_sd_notify_sighup_reload_and_sigint(tmp_path):
    config_path = write_config(tmp_path)
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    listener = Datagrams()
    env = {"NOTIFY_SOCKET": f"@{listener.name}", "WATCHDOG_USEC": "1000000"}
    try:
        with DaemonProcess(config_path, env=env) as daemon:
            wait_for(lambda: listener.count("READY=1") == 1, what="READY=1")
            wait_for(lambda: listener.count("WATCHDOG=1") >= 2, what="watchdog pings")
            assert any(line.startswith("STATUS=idle") for line in listener.fields())

            write_job_folder(inbox, "first", {**SLOW_SPEC, "iterations": 150})  # spans several heartbeats
            wait_for(lambda: any(line.startswith("STATUS=first: scale 1/1, iteration")
                                 for line in listener.fields()), what="a STATUS= line with the job's progress")
            wait_for(lambda: folders(outbox) == ["first"], what="the first delivery")
            wait_for(lambda: any("1 delivered" in line for line in listener.fields()), what="STATUS= count")

            data = yaml.safe_load(config_path.read_text())
            config_path.write_text(yaml.safe_dump({**data, "settle_seconds": 0.4, "inbox": "elsewhere"}))
            daemon.signal(signal.SIGHUP)
            daemon.wait_for_log("reload: settle_seconds: 0.2 -> 0.4")
            daemon.wait_for_log("reload: 'inbox' changed")
            wait_for(lambda: listener.count("RELOADING=1") == 1 and listener.count("READY=1") == 2,
                     what="RELOADING=1 then READY=1")

            config_path.write_text(yaml.safe_dump({**data, "setle_seconds": 1}))
            daemon.signal(signal.SIGHUP)
            daemon.wait_for_log("keeping the old config")
            assert "unknown key 'setle_seconds'" in daemon.log() and "settle_seconds" in daemon.log()
            write_job_folder(inbox, "second", {**SLOW_SPEC, "iterations": 0})
            wait_for(lambda: folders(outbox) == ["first", "second"], what="serving on after a bad reload")

            daemon.signal(signal.SIGINT)
            assert daemon.wait(STOP_WITHIN_SECONDS) == 0, daemon.log()
        assert listener.count("STOPPING=1") == 1
        assert listener.count("RELOADING=1") == 2 and listener.count("READY=1") == 3
    finally:
        listener.close()
