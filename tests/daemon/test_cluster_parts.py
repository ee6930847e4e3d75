"""The parts of ``cluster:`` that need no running cluster: its config, task keys, the lease, the
judgement of an earlier attempt, ``styled worker``'s command line and restarts, and that the
embedded default never imports Dask."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading

import pytest
from daemon_support import wait_for, write_config

from styled.daemon.cluster_command import WorkerSupervisor, worker_command
from styled.daemon.config import load_daemon_config
from styled.daemon.spool import WorkJob
from styled.daemon.state import JobState, Status, write_state
from styled.errors import ConfigError

CONFIG_HEAD = "inbox: inbox\noutbox: outbox\nfailed: failed\nwork: work\n"


@pytest.mark.parametrize(("text", "key", "line", "says"), [
    ("cluster:\n  local:\n    wrkers: 2\n", "cluster.local.wrkers", 7, "did you mean 'workers'?"),
    ("cluster:\n  local: {workers: 0}\n", "cluster.local.workers", 6, "at least 1"),
    ("cluster: {}\n", "cluster", 5, "exactly one of 'scheduler'"),
    ("cluster:\n  scheduler: tcp://a:8786\n  local: {workers: 2}\n", "cluster", 5, "exactly one of"),
    ("cluster:\n  scheduler: render-1\n", "cluster.scheduler", 6, "tcp://render-1:8786"),
    ("cluster: 2\n", "cluster", 5, "must be a mapping"),
])
def test_a_bad_cluster_setting_is_named_with_its_full_key_and_line(tmp_path, text, key, line, says):
    (tmp_path / "config.yaml").write_text(CONFIG_HEAD + text)
    with pytest.raises(ConfigError) as caught:
        load_daemon_config(tmp_path / "config.yaml")
    assert caught.value.key == key and caught.value.line == line, str(caught.value)
    assert says in str(caught.value)


def test_a_cluster_config_reads_into_typed_settings(tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG_HEAD + "cluster:\n  local: {workers: 2}\n  dashboard: null\n")
    cluster = load_daemon_config(tmp_path / "config.yaml").cluster
    assert cluster.local.workers == 2 and cluster.scheduler is None and cluster.dashboard is None
    assert load_daemon_config(write_config(tmp_path)).cluster is None, "off by default"


def test_a_task_key_is_the_same_until_a_worker_begins_the_attempt():
    from styled.daemon.cluster import task_key

    state = JobState(id="abc", name="photo", kind="folder", spec="job.yaml", source="inbox/photo")
    assert task_key(state) == task_key(state.but(status=Status.QUEUED)) == "styled-abc-1"
    assert task_key(state.but(attempts=1)) == "styled-abc-2"


def test_local_workers_share_the_machines_cores(tmp_path):
    from styled.daemon.cluster import threads_per_worker

    cores = len(os.sched_getaffinity(0))
    (tmp_path / "config.yaml").write_text(CONFIG_HEAD + "cluster:\n  local: {workers: 2}\n")
    assert threads_per_worker(load_daemon_config(tmp_path / "config.yaml").cluster) == max(1, cores // 2)
    (tmp_path / "config.yaml").write_text(CONFIG_HEAD + "cluster:\n  scheduler: tcp://a:1\n  threads: 3\n")
    assert threads_per_worker(load_daemon_config(tmp_path / "config.yaml").cluster) == 3


def claimed_job(tmp_path, **changes) -> WorkJob:
    work = WorkJob(tmp_path / "work" / "photo")
    (work.path / "job").mkdir(parents=True)
    write_state(work.state_path, JobState(id="abc", name="photo", kind="folder", spec="job.yaml",
                                          source="inbox/photo", **changes))
    return work


def test_the_lease_excludes_a_second_render_and_says_who_holds_it(tmp_path):
    from styled.daemon.cluster_worker import read_holder, render_lease

    work = claimed_job(tmp_path)
    with render_lease(work, {"worker": "tcp://a:1", "pid": os.getpid()}, threading.Event()):
        other = os.open(work.lease_path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(other)
        assert read_holder(work)["worker"] == "tcp://a:1"
    other = os.open(work.lease_path, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at the end of the block
    finally:
        os.close(other)


def test_a_worker_waiting_for_a_lease_gives_up_when_it_closes(tmp_path):
    from styled.daemon.cluster_worker import render_lease
    from styled.errors import ClusterError

    work = claimed_job(tmp_path)
    closing = threading.Event()
    with render_lease(work, {"worker": "first"}, threading.Event()):
        threading.Timer(0.3, closing.set).start()
        with pytest.raises(ClusterError, match="closed while waiting"):
            with render_lease(work, {"worker": "second"}, closing):
                pytest.fail("the lease was taken while another render held it")


def test_an_attempt_found_mid_render_under_the_lease_is_judged_as_a_crash(tmp_path):
    from styled.daemon.cluster_worker import settle_earlier_attempt

    work = claimed_job(tmp_path, status=Status.RENDERING, attempts=2,
                       high_water={"done": 10, "phase": 2, "start_checkpoint": -1})
    state = settle_earlier_attempt(work)
    assert state.status == Status.QUEUED and state.strikes == 1, "no progress since the last attempt: a strike"
    staged = claimed_job(tmp_path / "other", status=Status.RENDERING, attempts=1)
    staged.result_dir.mkdir()
    assert settle_earlier_attempt(staged).status == Status.RENDERED, "a staged result is not rendered again"


def test_styled_worker_runs_one_render_at_a_time_and_pins_its_gpu():
    argv, environment = worker_command("tcp://render-1:8786", gpu=1, name="node-1")
    assert argv[1:4] == ["-m", "distributed.cli.dask_worker", "tcp://render-1:8786"]
    assert argv[argv.index("--nthreads") + 1] == "1" and argv[argv.index("--resources") + 1] == "GPU=1"
    assert environment["CUDA_VISIBLE_DEVICES"] == "1" and argv[argv.index("--name") + 1] == "node-1"
    argv, environment = worker_command("tcp://render-1:8786")
    assert "--resources" not in argv and environment["CUDA_VISIBLE_DEVICES"] == ""


def test_styled_worker_starts_its_worker_again_until_it_is_stopped(tmp_path):
    """The supervised command exits at once each time (as a worker whose scheduler is gone does);
    it is started again, then a stop signal ends the loop. The command exits 3 on SIGTERM too, as
    a worker shuts down cleanly on it, so the code is the same whether the stop finds it running."""
    starts = tmp_path / "starts"
    script = ("import signal, sys; signal.signal(signal.SIGTERM, lambda *_: sys.exit(3)); "
              f"open({str(starts)!r}, 'a').write('x'); sys.exit(3)")
    supervisor = WorkerSupervisor([sys.executable, "-c", script], dict(os.environ))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(supervisor.run()), name="test-supervisor")
    thread.start()
    try:
        wait_for(lambda: starts.exists() and len(starts.read_text()) >= 2, 30, "a second start")
    finally:
        supervisor.stop(signal.SIGTERM)
        thread.join(30)
    assert not thread.is_alive() and result == [3]


def test_the_embedded_default_never_imports_dask(tmp_path):
    config = write_config(tmp_path)
    code = ("import sys\nfrom styled.cli import main\n"
            f"assert main(['serve', '--config', {str(config)!r}, '--once']) == 0\n"
            "print('distributed' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
