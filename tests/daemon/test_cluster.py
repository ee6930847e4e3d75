"""``cluster:`` against a real Dask cluster: LocalCluster worker processes started by the daemon, or a
``dask scheduler`` and ``styled worker`` processes; real SIGKILLs of workers, of the scheduler and
of the daemon. Each test bounds its waits, so a hang fails the test instead of the run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
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

pytest.importorskip("distributed")
pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

#: Slow enough to act on while it renders (about 0.1 s an iteration at this size, on one thread).
LONG_SPEC = {"content": "photo.png", "style": "style.png", "size": 48, "scales": 1, "iterations": 400}
QUICK_SPEC = {"content": "photo.png", "style": "style.png", "size": 32, "scales": 1, "iterations": 4}
#: Starting worker processes imports TensorFlow in each of them: allow for a busy machine.
CLUSTER_WAIT = 240.0


def cluster_config(folder: Path, workers: int = 1, **settings) -> Path:
    cluster = {"local": {"workers": workers}, "threads": 1, "dashboard": None, **settings.pop("cluster", {})}
    return write_config(folder, cluster=cluster, **settings)


def lease_holder(work: Path, name: str) -> dict:
    return read_json(work / name / "lease")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def checkpointed(work: Path, name: str, after: int = 0) -> bool:
    state = work_state(work, name)
    return state.get("status") == "rendering" and (state.get("checkpoint") or {}).get("done", 0) > after


def test_a_job_rendered_on_a_cluster_worker_is_delivered_with_the_files_of_a_local_render(tmp_path):
    local_dir, cluster_dir = tmp_path / "local", tmp_path / "cluster"
    for folder in (local_dir, cluster_dir):
        folder.mkdir()
        write_job_folder(folder / "inbox", "photo", QUICK_SPEC)
        write_job_folder(folder / "inbox", "larger", {**QUICK_SPEC, "size": 48})
    with DaemonProcess(write_config(local_dir), "--once") as daemon:
        assert daemon.wait() == 0, daemon.log()[-3000:]
    with DaemonProcess(cluster_config(cluster_dir), "--once") as daemon:
        assert daemon.wait(CLUSTER_WAIT) == 0, daemon.log()[-3000:]
        log = daemon.log()

    def listing(outbox: Path) -> list[str]:
        return sorted(str(path.relative_to(outbox)) for path in outbox.rglob("*"))

    assert listing(cluster_dir / "outbox") == listing(local_dir / "outbox")
    job = read_json(cluster_dir / "outbox" / "photo" / "report.json")["job"]
    assert job["worker"].startswith("tcp://127.0.0.1:"), "the report names the Dask worker"
    assert job["delivered"] and job["delivered"] >= job["finished"]
    assert read_json(local_dir / "outbox" / "photo" / "report.json")["job"]["worker"] == "cpu#1"
    assert "submitted photo to the cluster as styled-" in log and "rendered by tcp://" in log
    assert folders(cluster_dir / "work") == [] and folders(cluster_dir / "failed") == []
    assert not (cluster_dir / "work" / ".cluster.json").exists(), "the status file goes with the daemon"
    for outbox in (local_dir / "outbox", cluster_dir / "outbox"):  # one worker: the second job plans for the first
        first, second = sorted((read_json(path) for path in outbox.glob("*/report.json")),
                               key=lambda report: report["job"]["finished"])
        assert first["memory"][0]["held"] == 0 and second["memory"][0]["held"] == first["memory"][0]["network"]


def test_a_worker_killed_mid_job_hands_it_to_another_worker_which_resumes_and_delivers_once(tmp_path):
    """SIGKILL of the worker process rendering the job: Dask gives the task to the other worker,
    which takes the lease, counts the crash (progress was made: no strike) and resumes from the
    checkpoint. `styled status` shows the cluster and where the job runs meanwhile."""
    config = cluster_config(tmp_path, workers=2, cluster={"dashboard": "127.0.0.1:0"})
    work = tmp_path / "work"
    write_job_folder(tmp_path / "inbox", "long", LONG_SPEC)
    listener = Datagrams()
    try:
        with DaemonProcess(config, env={"NOTIFY_SOCKET": f"@{listener.name}"}) as daemon:
            wait_for(lambda: checkpointed(work, "long"), CLUSTER_WAIT, "a checkpoint of the job")
            holder = lease_holder(work, "long")
            status = run_cli("status", "--config", str(config))
            assert "cluster  tcp://127.0.0.1:" in status.stdout and "2 worker(s)" in status.stdout, status.stdout
            assert "dashboard http://127.0.0.1:" in status.stdout
            assert f"on {holder['worker']}" in status.stdout, status.stdout
            wait_for(lambda: any(line.startswith("STATUS=long: ") and f"on {holder['worker']}" in line
                                 and "cluster tcp://127.0.0.1:" in line for line in listener.fields()),
                     30, "a STATUS= line naming the job's worker and the cluster")
            os.kill(holder["pid"], signal.SIGKILL)
            wait_for(lambda: folders(tmp_path / "outbox") == ["long"], CLUSTER_WAIT, "the delivery")
            daemon.signal(signal.SIGTERM)
            assert daemon.wait() == 0
    finally:
        listener.close()
    job = read_json(tmp_path / "outbox" / "long" / "report.json")["job"]
    assert job["resumed"] and job["resumed_from"][0]["iteration"] > 0, "resumed from the checkpoint"
    assert job["worker"] != holder["worker"], "finished by another worker"
    assert job["attempts"] == 2
    assert folders(tmp_path / "failed") == [] and folders(work) == []


def test_a_job_that_kills_every_worker_ends_in_failed_as_poison(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "killer.py").write_text(KILLER_PLUGIN)
    config = cluster_config(tmp_path, workers=1, max_attempts=2, plugins_dir="plugins")
    write_job_folder(tmp_path / "inbox", "poison", {**QUICK_SPEC, "plugins": {"killer": {}}})
    write_job_folder(tmp_path / "inbox", "innocent", QUICK_SPEC)
    with DaemonProcess(config, "--once") as daemon:
        assert daemon.wait(CLUSTER_WAIT * 2) == 1, daemon.log()[-3000:]
    error = read_json(tmp_path / "failed" / "poison" / "error.json")
    assert error["error"] == "poison", error
    assert error["job"]["attempts"] >= 3
    assert (tmp_path / "failed" / "poison" / "inputs" / "job.yaml").exists()
    assert folders(tmp_path / "outbox") == ["innocent"]
    assert folders(tmp_path / "work") == []


def test_the_daemon_killed_while_the_cluster_renders_resumes_after_a_restart_exactly_once(tmp_path):
    """kill -9 of the daemon takes its LocalCluster's workers with it; the next start finds the job
    mid-render in work/, submits it again and delivers it once, resumed from its checkpoint."""
    config = cluster_config(tmp_path)
    work = tmp_path / "work"
    write_job_folder(tmp_path / "inbox", "long", {**LONG_SPEC, "iterations": 120})
    with DaemonProcess(config) as daemon:
        wait_for(lambda: checkpointed(work, "long"), CLUSTER_WAIT, "a checkpoint of the job")
        worker_pid = lease_holder(work, "long")["pid"]
        daemon.kill9()
    wait_for(lambda: not pid_alive(worker_pid), 60, "the orphaned worker to exit")
    with DaemonProcess(config, "--once") as daemon:
        assert daemon.wait(CLUSTER_WAIT) == 0, daemon.log()[-3000:]
    assert folders(tmp_path / "outbox") == ["long"] and folders(work) == []
    job = read_json(tmp_path / "outbox" / "long" / "report.json")["job"]
    assert job["resumed"] and job["attempts"] == 2


@pytest.mark.parametrize("status", ["rendered", "delivering"])
def test_a_render_the_daemon_did_not_live_to_publish_is_collected_at_the_next_start(tmp_path, status):
    """A worker staged the delivery in work/NAME/result/ and the daemon died before publishing it, or
    while publishing it (the state is made here as such a crash leaves it): the next start publishes
    it, renders nothing."""
    config = cluster_config(tmp_path)
    write_job_folder(tmp_path / "inbox", "photo", QUICK_SPEC)
    with DaemonProcess(write_config(tmp_path), "--once") as daemon:  # a real delivery to stage from
        assert daemon.wait() == 0
    delivered = tmp_path / "outbox" / "photo"
    work = tmp_path / "work" / "photo"
    state = read_json(delivered / "report.json")["job"]
    (work).mkdir()
    shutil.copytree(delivered / "inputs", work / "job")
    shutil.move(delivered, work / "result")
    (work / "state.json").write_text(json_text({
        "id": state["id"], "name": "photo", "kind": "folder", "spec": "job.yaml", "source": state["source"],
        "status": status, "attempts": 1, "worker": "tcp://10.0.0.9:4711", "version": 3}))
    config = cluster_config(tmp_path)
    with DaemonProcess(config, "--once") as daemon:
        assert daemon.wait(CLUSTER_WAIT) == 0, daemon.log()[-3000:]
        assert "submitted" not in daemon.log(), "nothing is rendered again"
    assert folders(tmp_path / "outbox") == ["photo"] and folders(tmp_path / "work") == []
    assert read_json(tmp_path / "outbox" / "photo" / "report.json")["job"]["id"] == state["id"]


def json_text(data: dict) -> str:
    import json

    return json.dumps(data)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Spawned:
    """A child process with its output in a file; killed at the end of the test."""

    def __init__(self, argv: list[str], log: Path, env: dict | None = None):
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self._log.close()


def scheduler(port: int, log: Path) -> Spawned:
    return Spawned([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                    str(port), "--no-dashboard"], log)


def test_the_scheduler_lost_mid_job_the_daemon_reconnects_and_the_job_is_delivered_once(tmp_path):
    """A real `dask scheduler` and a `styled worker`; the scheduler is killed with SIGKILL while the
    job renders and started again a little later. The daemon keeps the job, logs the loss, reconnects
    with backoff and submits it again; `styled worker` starts its worker again; the job resumes."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    config = write_config(tmp_path, cluster={"scheduler": address, "threads": 1, "connect_seconds": 2})
    work = tmp_path / "work"
    write_job_folder(tmp_path / "inbox", "long", {**LONG_SPEC, "iterations": 150})
    processes = [scheduler(port, tmp_path / "scheduler-1.log")]
    try:
        processes.append(Spawned([sys.executable, "-m", "styled.cli", "worker", address, "--name", "node-1"],
                                 tmp_path / "worker.log"))
        with DaemonProcess(config) as daemon:
            wait_for(lambda: checkpointed(work, "long"), CLUSTER_WAIT, "a checkpoint of the job")
            processes[0].process.send_signal(signal.SIGKILL)
            processes[0].process.wait(30)
            daemon.wait_for_log("lost the Dask scheduler")
            time.sleep(3)
            processes.append(scheduler(port, tmp_path / "scheduler-2.log"))
            wait_for(lambda: folders(tmp_path / "outbox") == ["long"], CLUSTER_WAIT, "the delivery")
            log = daemon.log()
            daemon.signal(signal.SIGTERM)
            assert daemon.wait() == 0
    finally:
        for process in reversed(processes):
            process.close()
    assert "cannot reach the Dask scheduler" in log and log.count("connected to the Dask scheduler") >= 2
    job = read_json(tmp_path / "outbox" / "long" / "report.json")["job"]
    assert job["resumed"], "resumed from the checkpoint made before the loss"
    assert folders(work) == [] and folders(tmp_path / "failed") == []


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a private mount namespace")
def test_a_worker_that_cannot_see_the_spool_fails_the_job_saying_so(tmp_path):
    """The worker runs in its own mount namespace with an empty tmpfs over the spool's folder, as a
    render node without the NFS mount would: the job fails with a clear error, it is not rendered."""
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a mount namespace here: {probe.stderr.decode().strip()}")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    config = write_config(tmp_path, cluster={"scheduler": address, "threads": 1, "connect_seconds": 2})
    write_job_folder(tmp_path / "inbox", "unseen", QUICK_SPEC)
    hidden = f"mount -t tmpfs none {tmp_path / 'work'} && exec {sys.executable} -m styled.cli worker {address}"
    processes = [scheduler(port, tmp_path / "scheduler.log")]
    try:
        processes.append(Spawned(["unshare", "-m", "--propagation", "private", "sh", "-c", hidden],
                                 tmp_path / "worker.log"))
        with DaemonProcess(config) as daemon:
            wait_for(lambda: folders(tmp_path / "failed") == ["unseen"], CLUSTER_WAIT, "the failure")
            daemon.signal(signal.SIGTERM)
            assert daemon.wait() == 0
    finally:
        for process in reversed(processes):
            process.close()
    error = read_json(tmp_path / "failed" / "unseen" / "error.json")
    assert error["error"] == "cluster"
    assert "cannot see the job's work folder" in error["message"] and "same path" in error["hint"]
    assert (tmp_path / "failed" / "unseen" / "inputs" / "job.yaml").exists(), "the inputs are kept"
    assert folders(tmp_path / "outbox") == []
