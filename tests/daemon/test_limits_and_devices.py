"""Operator limits on a job, and which worker takes a job that asks for a device."""

from __future__ import annotations

import pytest
from daemon_support import write_config

from styled.daemon.config import load_daemon_config
from styled.daemon.jobqueue import JobQueue, device_matches
from styled.daemon.limits import apply_limits
from styled.daemon.spool import WorkJob
from styled.engine.spec import build_job_spec
from styled.errors import JobSpecError

SPEC = {"content": "a.png", "style": "b.png"}


def config(tmp_path, **settings):
    return load_daemon_config(write_config(tmp_path, **settings))


def test_a_job_over_a_limit_is_refused_naming_the_key_its_line_and_the_limit(tmp_path):
    spec = build_job_spec({**SPEC, "size": 4096})
    with pytest.raises(JobSpecError) as caught:
        apply_limits(spec, config(tmp_path, max_size=2048), source="job.yaml", lines={"size": 3})
    error = caught.value
    assert (error.key, error.line) == ("size", 3) and "4096, over this daemon's max_size of 2048" in error.message


def test_clamping_keeps_the_job_within_the_limits_and_says_so(tmp_path):
    spec = build_job_spec({**SPEC, "size": 4096, "iterations": 900, "coarse_iterations": 50})
    limited, notes = apply_limits(spec, config(tmp_path, max_size=1024, max_iterations=300, over_limit="clamp"))
    assert (limited.size, limited.iterations, limited.coarse_iterations) == (1024, 300, 50)
    assert notes == ["size 4096 was clamped to the daemon's max_size of 1024",
                     "iterations 900 was clamped to the daemon's max_iterations of 300"]


def test_max_time_limit_bounds_every_job_even_one_that_gives_none(tmp_path):
    limited, notes = apply_limits(build_job_spec(SPEC), config(tmp_path, max_time_limit=600))
    assert limited.time_limit == 600 and notes == []


@pytest.mark.parametrize(("wanted", "worker", "takes"), [
    (None, "cpu", True), ("auto", "gpu:0", True), ("cpu", "cpu", True), ("gpu", "gpu:1", True),
    ("gpu:1", "gpu:1", True), ("gpu:1", "gpu:0", False), ("cpu", "gpu:0", False), ("gpu", "cpu", False),
])
def test_device_matching(wanted, worker, takes):
    assert device_matches(wanted, worker) is takes


def test_each_job_waits_for_a_worker_on_its_device_and_an_impossible_one_is_taken_to_fail(tmp_path):
    queue = JobQueue(["cpu", "gpu:1"])
    jobs = {name: WorkJob(tmp_path / name) for name in ("for_gpu", "any", "impossible")}
    queue.put(jobs["for_gpu"], "gpu:1")
    queue.put(jobs["any"], None)
    queue.put(jobs["impossible"], "gpu:7")
    assert queue.take("cpu", timeout=0) == jobs["any"]
    assert queue.take("cpu", timeout=0) == jobs["impossible"], "no worker has gpu:7: take it, and fail it"
    assert queue.take("cpu", timeout=0) is None
    assert queue.outstanding() == 3 and queue.known() == set(p.path for p in jobs.values())
    assert queue.take("gpu:1", timeout=0) == jobs["for_gpu"]
    queue.done(jobs["any"])
    assert queue.outstanding() == 2
