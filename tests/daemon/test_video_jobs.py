"""Clips through the daemon: kill -9 and SIGTERM mid-clip resume at the first unfinished frame and
deliver one complete clip once; bad clips fail alone, with their inputs, and the daemon goes on."""

from __future__ import annotations

import os
import signal
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from daemon_support import (
    DaemonProcess,
    daemon_thread,
    folders,
    make_image,
    read_json,
    run_cli,
    wait_for,
    work_state,
    write_config,
    write_loose_spec,
)
from styled.io.images import save_image
from styled.video.clip import open_clip
from video_support import camera_clip, make_clip

FRAMES = 8
#: Slow enough per frame (about a second) for the test to act mid-clip.
CLIP_SPEC = {"content": "clip.mp4", "style": "style.png", "size": 40, "scales": 1, "iterations": 8}
LIMITS = {"max_frames": 100, "max_pixels": 10**6}


def clip_job(inbox: Path, name: str, spec: dict, frames: int = FRAMES, **clip_options) -> Path:
    staging = inbox / f".{name}.staging"
    staging.mkdir(parents=True)
    make_image(staging / "style.png", "style/starry_night.jpg")
    make_clip(staging / "clip.mp4", frames, **clip_options)
    (staging / "job.yaml").write_text(yaml.safe_dump(spec))
    os.rename(staging, inbox / name)
    return inbox / name


def finished_frames(work: Path, name: str) -> int:
    return len(read_json(work / name / "frames" / "frames.json") or [])


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_kill_9_then_sigterm_mid_clip_resume_and_deliver_one_complete_clip_once(tmp_path):
    config_path = write_config(tmp_path)
    work, outbox = tmp_path / "work", tmp_path / "outbox"
    clip_job(tmp_path / "inbox", "walk", CLIP_SPEC)
    with DaemonProcess(config_path) as daemon:
        wait_for(lambda: finished_frames(work, "walk") >= 2, timeout=200, what="two finished frames")
        status = run_cli("status", "--config", str(config_path))
        daemon.kill9()
    assert "frame " in status.stdout and f"/{FRAMES}" in status.stdout, status.stdout
    killed_at = finished_frames(work, "walk")
    before_kill = read_json(work / "walk" / "frames" / "frames.json")[:killed_at]

    with DaemonProcess(config_path) as daemon:
        wait_for(lambda: finished_frames(work, "walk") >= killed_at + 1, timeout=200, what="a frame after the kill")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    assert "resuming walk from frame" in daemon.log()
    assert work_state(work, "walk")["status"] == "interrupted" and folders(outbox) == []
    stopped_at = finished_frames(work, "walk")

    with DaemonProcess(config_path, "--once") as daemon:
        assert daemon.wait(300) == 0
    assert folders(outbox) == ["walk"], "delivered once"
    source = open_clip(outbox / "walk" / "inputs" / "clip.mp4", **LIMITS)
    result = open_clip(outbox / "walk" / "result.mp4", **LIMITS)
    assert (result.frames, result.rate, result.audio_codec) == (FRAMES, source.rate, "aac")
    assert audio_packets(outbox / "walk" / "result.mp4") == audio_packets(source.path)
    report = read_json(outbox / "walk" / "report.json")
    assert report["frames"] == FRAMES and [r["frame"] for r in report["per_frame"]] == list(range(1, FRAMES + 1))
    assert report["per_frame"][:killed_at] == before_kill, "frames finished before the kill are not rendered again"
    resumed = [point["frame"] for point in report["job"]["resumed_from"]]
    assert resumed == [killed_at + 1, stopped_at + 1]
    assert report["resumed_at_frame"] == stopped_at + 1
    assert (outbox / "walk" / "sheet.png").exists() and (outbox / "walk" / "loss.png").exists()
    assert folders(work) == [] and folders(tmp_path / "failed") == []


def bad_clips(inbox: Path) -> dict[str, str]:
    """Jobs that must fail, and what each error says."""
    fake = inbox / ".fake.staging"
    fake.mkdir()
    (fake / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    make_image(fake / "style.png", "style/starry_night.jpg")
    (fake / "job.yaml").write_text(yaml.safe_dump(CLIP_SPEC))
    os.rename(fake, inbox / "fake")
    clip_job(inbox, "long", {**CLIP_SPEC, "iterations": 1}, frames=5)
    clip_job(inbox, "wrong_output", {**CLIP_SPEC, "output": "result.avi"}, frames=2)
    return {"fake": "not a video", "long": "5 frames, over the limit of 4", "wrong_output": "cannot write '.avi'"}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_bad_clips_fail_alone_with_their_inputs_and_good_ones_are_delivered(tmp_path):
    config_path = write_config(tmp_path, max_video_frames=4)
    inbox, outbox, failed = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "failed"
    expected = bad_clips(inbox)
    # A loose spec beside its clip, and a job folder holding a folder of numbered frames.
    make_clip(inbox / "loose_clip.webm", 3, tone=None)
    make_image(inbox / "loose_style.png", "style/the_scream.jpg")
    write_loose_spec(inbox, "loose", {"content": "loose_clip.webm", "style": "loose_style.png", "size": 32,
                                      "method": "adain", "temporal_blend": 0.5})
    staging = inbox / ".numbered.staging"
    (staging / "shots").mkdir(parents=True)
    for number, frame in enumerate(camera_clip(3).frames, start=1):
        save_image(staging / "shots" / f"shot{number}.png", frame)
    make_image(staging / "style.png", "style/starry_night.jpg")
    (staging / "job.yaml").write_text(yaml.safe_dump({"content": "shots", "style": "style.png", "size": 32,
                                                      "iterations": 2, "scales": 1, "fps": 12}))
    os.rename(staging, inbox / "numbered")
    with daemon_thread(config_path):
        wait_for(lambda: set(folders(failed)) >= set(expected) and {"loose", "numbered"} <= set(folders(outbox)),
                 timeout=300, what="the bad clips in failed/ and the good ones delivered")
    for name, message in expected.items():
        error = (failed / name / "error.txt").read_text()
        assert message in error, error
        assert (failed / name / "inputs" / "job.yaml").exists(), "a failed job keeps its inputs"
    assert "key 'content'" in (failed / "fake" / "error.txt").read_text()
    assert open_clip(outbox / "loose" / "result.webm", **LIMITS).frames == 3
    numbered = open_clip(outbox / "numbered" / "result.mp4", **LIMITS)
    assert (numbered.frames, numbered.rate, numbered.audio_codec) == (3, Fraction(12), None)
    assert np.isfinite(read_json(outbox / "numbered" / "report.json")["losses"]["total"])
