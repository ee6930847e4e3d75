"""Counts for a hostile inbox and for kill -9 cycles, against a real ``styled serve`` process.

Usage: python benchmarks/hostile.py [--specs 120] [--jobs 8] [--kills 20] [--seed 1]

1. A fuzzed corpus: ``--specs`` loose specs and job folders made from valid specs by random
   mutations (aliases, tags, duplicate keys, deep nesting, huge numbers, cut files, binary junk,
   random keys and values, FIFOs, links), plus a few good jobs, dropped into one inbox. Prints how
   many were tried, delivered, failed (each failure must carry a reason), left behind (hung), and
   whether the daemon still answered SIGTERM with exit 0.
2. Kill cycles: ``--jobs`` healthy jobs, the daemon killed with SIGKILL ``--kills`` times at random
   moments and restarted, then drained with ``--once``. Prints tried, delivered, doubled, lost,
   failed innocent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
GOOD = {"content": "photo.png", "style": "style.png", "size": 32, "scales": 1, "iterations": 2}
WAIT_SECONDS = 900


def small_image(source: Path, target: Path, side: int = 32) -> None:
    with Image.open(source) as picture:
        picture.convert("RGB").resize((side, side * 3 // 4)).save(target)


def mutate(rng: random.Random, text: str) -> str:
    choices = [
        lambda t: t + "size: 32\nsize: 64\n",
        lambda t: "x: &a [1, 2]\n" + t + "y: *a\n",
        lambda t: "content: !!python/object/apply:os.system [touch /tmp/pwned]\n" + t,
        lambda t: "style: " + "[" * rng.randint(30, 30000) + "]\n",
        lambda t: t + "iterations: " + "9" * rng.randint(30, 9000) + "\n",
        lambda t: t[: rng.randint(0, len(t))],
        lambda t: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))).decode("latin-1"),
        lambda t: t + f"{rng.choice(['sise', 'stlye', 'plugins', 'device'])}: {rng.choice(['big', '-1', '[]', 'gpu:9'])}\n",
        lambda t: t.replace("photo.png", rng.choice(["../x.png", "/etc/passwd", "~/a.png", "nowhere.png"])),
        lambda t: t + "plugins:\n  " + rng.choice(["symetry", "inpainting", "long_range"]) + ": {weight: " +
        rng.choice(["-3", "x", "1e999", "[1]"]) + "}\n",
        lambda t: t,
    ]
    return rng.choice(choices)(text)


def write_corpus(inbox: Path, count: int, rng: random.Random) -> dict[str, str]:
    """name -> 'good' or 'bad' (a mutation may happen to leave a spec valid: 'either')."""
    kinds = {}
    base = yaml.safe_dump(GOOD)
    for index in range(count):
        name = f"case{index:03d}"
        staging = inbox / f".{name}"
        staging.mkdir()
        small_image(EXAMPLES / "tubingen.jpg", staging / "photo.png")
        small_image(EXAMPLES / "starry_night.jpg", staging / "style.png")
        twist = rng.random()
        if twist < 0.08:
            os.mkfifo(staging / "job.yaml")
        elif twist < 0.16:
            (staging / "job.yaml").write_text(base)
            (staging / "photo.png").unlink()
            (staging / "photo.png").symlink_to("/etc/passwd")
        elif twist < 0.22:
            (staging / "job.yaml").write_text(base)
            (staging / "photo.png").unlink()
            os.mkfifo(staging / "photo.png")
        else:
            (staging / "job.yaml").write_text(mutate(rng, base), encoding="utf-8", errors="replace")
        os.rename(staging, inbox / name)
        kinds[name] = "either"
    for index in range(3):
        name = f"good{index}"
        staging = inbox / f".{name}"
        staging.mkdir()
        small_image(EXAMPLES / "tubingen.jpg", staging / "photo.png")
        small_image(EXAMPLES / "starry_night.jpg", staging / "style.png")
        (staging / "job.yaml").write_text(base)
        os.rename(staging, inbox / name)
        kinds[name] = "good"
    return kinds


def config(root: Path, **extra) -> Path:
    data = {"inbox": "inbox", "outbox": "outbox", "failed": "failed", "work": "work", "devices": ["cpu"],
            "settle_seconds": 0.2, "rescan_seconds": 2.0, "checkpoint_seconds": 0.5, "progress_seconds": 0.1,
            "missing_file_seconds": 0.5, **extra}
    for key in ("inbox", "outbox", "failed", "work"):
        (root / key).mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(data))
    return root / "config.yaml"


def serve(config_path: Path, *args: str) -> subprocess.Popen:
    log = open(config_path.parent / "daemon.log", "ab")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "styled.cli", "serve", "--config", str(config_path), *args],
                            stdout=log, stderr=subprocess.STDOUT, env=env)


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def wait_for_log(root: Path, text: str, start: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while text not in (root / "daemon.log").read_text(errors="replace")[start:]:
        if time.monotonic() > deadline:
            raise SystemExit(f"no {text!r} in the daemon's log")
        time.sleep(0.1)


def corpus_run(root: Path, count: int, rng: random.Random) -> None:
    config_path = config(root, rescan_seconds=1.0)
    kinds = write_corpus(root / "inbox", count, rng)
    daemon = serve(config_path)
    deadline = time.monotonic() + WAIT_SECONDS
    while len(names(root / "outbox") | names(root / "failed")) < len(kinds) and time.monotonic() < deadline:
        time.sleep(0.5)
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(120)
    delivered, failed = names(root / "outbox"), names(root / "failed")
    with_reason = {n for n in failed if (root / "failed" / n / "error.txt").read_text().startswith("The job")}
    hung = set(kinds) - delivered - failed
    good_lost = {n for n, kind in kinds.items() if kind == "good"} - delivered
    print(f"corpus: tried {len(kinds)}, delivered {len(delivered)}, failed for cause {len(with_reason)}, "
          f"failed without a reason {len(failed - with_reason)}, hung {len(hung)}, good jobs lost {len(good_lost)}, "
          f"exit after SIGTERM {code}, /tmp/pwned exists: {Path('/tmp/pwned').exists()}")


def kill_cycles(root: Path, jobs: int, kills: int, rng: random.Random) -> None:
    config_path = config(root)
    base = {**GOOD, "size": 48, "iterations": 30}
    for index in range(jobs):
        staging = root / "inbox" / f".job{index}"
        staging.mkdir()
        small_image(EXAMPLES / "tubingen.jpg", staging / "photo.png", 48)
        small_image(EXAMPLES / "starry_night.jpg", staging / "style.png", 48)
        (staging / "job.yaml").write_text(yaml.safe_dump(base))
        os.rename(staging, root / "inbox" / f"job{index}")
    done = 0
    while done < kills and len(names(root / "outbox")) < jobs:
        start = (root / "daemon.log").stat().st_size if (root / "daemon.log").exists() else 0
        daemon = serve(config_path)
        wait_for_log(root, "watching", start)
        time.sleep(rng.uniform(0.3, 5.0))
        daemon.kill()
        daemon.wait()
        done += 1
    code = serve(config_path, "--once").wait(WAIT_SECONDS)
    delivered = names(root / "outbox")
    ids = [json.loads((root / "outbox" / n / "report.json").read_text())["job"]["id"] for n in delivered]
    expected = {f"job{index}" for index in range(jobs)}
    print(f"kill cycles: {done} kills; tried {jobs}, delivered {len(delivered & expected)}, "
          f"doubled {len(delivered - expected) + len(ids) - len(set(ids))}, lost {len(expected - delivered)}, "
          f"failed innocent {len(names(root / 'failed'))}, --once exit {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=120)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep the spools and logs")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.keep:
        (args.keep / "corpus").mkdir(parents=True)
        (args.keep / "cycles").mkdir()
        corpus_run(args.keep / "corpus", args.specs, rng)
        kill_cycles(args.keep / "cycles", args.jobs, args.kills, rng)
        return
    with tempfile.TemporaryDirectory() as corpus, tempfile.TemporaryDirectory() as cycles:
        corpus_run(Path(corpus), args.specs, rng)
        kill_cycles(Path(cycles), args.jobs, args.kills, rng)


if __name__ == "__main__":
    main()
