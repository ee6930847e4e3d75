"""A batch through the daemon: local threads against a Dask LocalCluster of one and of two workers.

    python benchmarks/cluster.py                      # 12 jobs of 128 px, 60 iterations; 3 drops
    python benchmarks/cluster.py --jobs 4 --iterations 20 --modes cluster-2

Each mode runs ``styled serve`` as a real process on a spool of its own:

- ``threads``: the embedded default, ``devices: [cpu]``: one worker thread, TensorFlow on every core;
- ``cluster-1``: ``cluster: {local: {workers: 1}, threads: 1}``: one worker process on one core;
- ``cluster-2``: two worker processes, one core each.

When the daemon is ready (for a cluster: its workers have started), ``--jobs`` jobs are dropped at
once and timed from the first claim to the last delivery (jobs per minute); from each report come
the waits around a render: claimed -> started (for a cluster: submit to start on a worker) and
finished -> delivered (the end of the optimisation to the outbox folder's rename; for a cluster it
includes staging on the worker and the daemon's publishing). Then ``--drops`` single
jobs are dropped one after another into the idle daemon and timed from the drop to the outbox.
Medians throughout: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CONTENT = REPO / "examples" / "tubingen.jpg"
STYLE = REPO / "examples" / "starry_night.jpg"
MODES = {
    "threads": {"devices": ["cpu"]},
    "cluster-1": {"cluster": {"local": {"workers": 1}, "threads": 1, "dashboard": None}},
    "cluster-2": {"cluster": {"local": {"workers": 2}, "threads": 1, "dashboard": None}},
}
READY_TEXT = "rendering on"
TIMEOUT = 1800.0


def spool(folder: Path, mode: str) -> Path:
    data = {"inbox": "inbox", "outbox": "outbox", "failed": "failed", "work": "work", "settle_seconds": 0.2,
            "rescan_seconds": 5.0, "progress_seconds": 1.0, **MODES[mode]}
    for key in ("inbox", "outbox", "failed", "work"):
        (folder / key).mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(data))
    return folder / "config.yaml"


def drop(inbox: Path, name: str, size: int, iterations: int) -> None:
    staging = inbox.parent / f".{name}"
    staging.mkdir()
    for source, target in ((CONTENT, "photo.png"), (STYLE, "style.png")):
        with Image.open(source) as picture:
            picture.convert("RGB").resize((size, size * 3 // 4)).save(staging / target)
    spec = {"content": "photo.png", "style": "style.png", "size": size, "scales": 1, "iterations": iterations,
            "precision": "float32"}
    (staging / "job.yaml").write_text(yaml.safe_dump(spec))
    os.rename(staging, inbox / name)


def wait(predicate, what: str, daemon: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited ({daemon.returncode}) waiting for {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def delivered(outbox: Path) -> list[Path]:
    return [path for path in outbox.iterdir() if not path.name.startswith(".")]


def seconds(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def run_mode(mode: str, jobs: int, size: int, iterations: int, drops: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"styled-cluster-{mode}-"))
    config = spool(folder, mode)
    log = folder / "daemon.log"
    with log.open("wb") as output:
        daemon = subprocess.Popen([sys.executable, "-m", "styled.cli", "serve", "--config", str(config)],
                                  stdout=output, stderr=subprocess.STDOUT, cwd=folder,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        wait(lambda: READY_TEXT in log.read_text(errors="replace"), "the daemon to be ready", daemon, log)
        if mode.startswith("cluster"):  # the workers import TensorFlow after the scheduler is up
            workers = MODES[mode]["cluster"]["local"]["workers"]
            wait(lambda: log.read_text().count("styled worker") >= workers or _workers_up(folder, workers),
                 "the workers", daemon, log)
        outbox = folder / "outbox"
        for index in range(jobs):
            drop(folder / "inbox", f"job{index:02d}", size, iterations)
        wait(lambda: len(delivered(outbox)) >= jobs, f"{jobs} deliveries", daemon, log)
        reports = [{**json.loads((path / "report.json").read_text())["job"], "appeared": _appeared(path)}
                   for path in delivered(outbox)]
        latencies = []
        for index in range(drops):
            name = f"single{index}"
            start = time.monotonic()
            drop(folder / "inbox", name, size, iterations)
            wait(lambda: (outbox / name).exists(), name, daemon, log)
            latencies.append(time.monotonic() - start)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(120)
    span = seconds(min(r["claimed"] for r in reports), max(r["delivered"] for r in reports))
    result = {
        "mode": mode, "jobs": jobs, "span_s": round(span, 1), "jobs_per_min": round(60 * jobs / span, 2),
        "render_s": round(statistics.median(seconds(r["started"], r["finished"]) for r in reports), 2),
        "submit_to_start_s": round(statistics.median(_submit_to_start(r) for r in reports), 3),
        "finish_to_delivered_s": round(statistics.median(seconds(r["finished"], r["appeared"]) for r in reports), 3),
        "drop_to_delivered_s": round(statistics.median(latencies), 2),
        "workers": sorted({r["worker"] for r in reports}),
    }
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _submit_to_start(report: dict) -> float:
    """From the claim (a job is claimed when a worker is free, and submitted at once) to the start of
    its first attempt."""
    return seconds(report["claimed"], report["started"])


def _appeared(path: Path) -> str:
    """When the delivery's folder got its name in the outbox (its ctime: the rename)."""
    return dt.datetime.fromtimestamp(path.stat().st_ctime, dt.timezone.utc).isoformat()


def _workers_up(folder: Path, workers: int) -> bool:
    try:
        data = json.loads((folder / "work" / ".cluster.json").read_text())
    except (OSError, ValueError):
        return False
    return len(data.get("workers", [])) >= workers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--drops", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = parser.parse_args()
    results = [run_mode(mode, args.jobs, args.size, args.iterations, args.drops) for mode in args.modes]
    print(f"{args.jobs} jobs of {args.size} px, {args.iterations} iterations; {os.cpu_count()} cores")
    print(f"{'mode':<10} {'jobs/min':>8} {'span s':>7} {'render s':>8} {'claim->start s':>14} "
          f"{'finish->delivered s':>19} {'drop->delivered s':>17}")
    for r in results:
        print(f"{r['mode']:<10} {r['jobs_per_min']:>8} {r['span_s']:>7} {r['render_s']:>8} {r['submit_to_start_s']:>14} "
              f"{r['finish_to_delivered_s']:>19} {r['drop_to_delivered_s']:>17}")
    by_mode = {r["mode"]: r for r in results}
    if "cluster-1" in by_mode and "cluster-2" in by_mode:
        print(f"cluster-2 / cluster-1 throughput: {by_mode['cluster-2']['jobs_per_min'] / by_mode['cluster-1']['jobs_per_min']:.2f}x")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
