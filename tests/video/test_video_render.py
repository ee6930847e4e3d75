"""Clips through the real engine: tiny frames, few iterations, the temporal term doing its job."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import shared_image
from daemon_support import run_cli
from styled.engine.job import relative_to
from styled.engine.spec import build_job_spec
from styled.engine.types import RenderOptions
from styled.plugins.manager import make_plugin_manager
from styled.video.clip import open_clip
from styled.video.flow import reliability, warp
from styled.video.render import load_clip_job, render_clip
from styled.video.store import FrameStore
from video_support import make_clip

FRAMES = 5
TINY = {"size": 48, "scales": 1, "iterations": 6}


def clip_job(folder: Path, **settings):
    spec = build_job_spec({"content": str(folder / "clip.mp4"), "style": str(shared_image("style/starry_night.jpg")),
                           **TINY, **settings})
    return load_clip_job(spec, relative_to(folder), name="clip", max_pixels=10**6, max_frames=100)


def true_temporal_error(store: FrameStore, camera, frames: int) -> float:
    """Ruder et al.'s temporal error with the camera's true flow, over the pixels it makes reliable."""
    errors = []
    for index in range(1, frames):
        backward, forward = camera.true_flow(index, index - 1), camera.true_flow(index - 1, index)
        weights = reliability(backward, forward)
        squared = np.square(store.load(index) - warp(store.load(index - 1), backward)).mean(axis=-1)
        errors.append(float((squared * weights).sum() / weights.sum()))
    return float(np.mean(errors))


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    camera = make_clip(folder / "clip.mp4", FRAMES)
    return folder, camera


def render_into(folder: Path, name: str, **settings):
    store = FrameStore(folder / name)
    result = render_clip(clip_job(folder, **settings), make_plugin_manager(), store)
    return store, result


def test_the_temporal_term_cuts_flicker_against_styling_each_frame_alone(clip_folder):
    folder, camera = clip_folder
    alone, alone_result = render_into(folder, "alone", temporal_weight=0)
    held, held_result = render_into(folder, "held")
    assert true_temporal_error(held, camera, FRAMES) < 0.5 * true_temporal_error(alone, camera, FRAMES)
    assert held_result.losses["temporal"] > 0 and "temporal" not in alone_result.losses
    assert held_result.losses["style"] < 1.5 * alone_result.losses["style"]
    assert len(held_result.records) == FRAMES
    assert held_result.records[0]["iterations"] == 2 * TINY["iterations"]  # the first frame gets twice as many
    assert all(record["iterations"] == TINY["iterations"] for record in held_result.records[1:])


def test_long_term_frames_add_terms_that_look_further_back(clip_folder):
    folder, camera = clip_folder
    store, result = render_into(folder, "long", temporal_frames=[1, 2, 4])
    assert len(result.records) == FRAMES
    assert true_temporal_error(store, camera, FRAMES) < 0.01


def test_adain_per_frame_with_flow_blending_flickers_less(clip_folder):
    folder, camera = clip_folder
    plain, _ = render_into(folder, "adain", method="adain")
    blended, result = render_into(folder, "adain_blend", method="adain", temporal_blend=0.7)
    assert true_temporal_error(blended, camera, FRAMES) < 0.5 * true_temporal_error(plain, camera, FRAMES)
    assert result.iterations == 0


def test_a_stopped_clip_resumes_at_its_first_unfinished_frame(clip_folder):
    folder, _ = clip_folder
    store = FrameStore(folder / "resumed")
    job = clip_job(folder)
    finished = []
    stop = RenderOptions(should_stop=lambda: len(store.records) >= 2,
                         on_progress=lambda progress: finished.append(progress.frame))
    first = render_clip(job, make_plugin_manager(), store, stop)
    assert first.interrupted and len(first.records) == 2
    kept = store.frame_path(1).read_bytes()
    second = render_clip(job, make_plugin_manager(), store)
    assert not second.interrupted and second.resumed_at == 2 and len(second.records) == FRAMES
    assert store.frame_path(1).read_bytes() == kept  # finished frames are not rendered again
    assert second.report()["resumed_at_frame"] == 3
    assert max(finished) == 2  # a stop between frames is seen before the next one starts


def test_a_store_made_for_other_settings_is_emptied_not_mixed(clip_folder):
    folder, _ = clip_folder
    store = FrameStore(folder / "changed")
    render_clip(clip_job(folder, iterations=2), make_plugin_manager(), store)
    assert store.open({"something": "else"}) == 0
    assert not store.frame_path(0).exists()


def test_progress_counts_frames_and_the_eta_covers_the_clip(clip_folder):
    folder, _ = clip_folder
    seen = []
    render_clip(clip_job(folder, iterations=3), make_plugin_manager(), FrameStore(folder / "progress"),
                RenderOptions(on_progress=seen.append))
    assert {p.frames for p in seen} == {FRAMES}
    assert [p.frame for p in seen] == sorted(p.frame for p in seen)
    first_frame = [p for p in seen if p.frame == 1 and p.eta is not None]
    assert first_frame[0].eta > 0
    later = [p for p in seen if p.frame == FRAMES - 1 and p.eta is not None]
    assert later[-1].eta < first_frame[0].eta


@pytest.mark.slow
def test_styled_render_writes_the_clip_with_its_timing_and_sound(clip_folder, tmp_path):
    folder, _ = clip_folder
    output = tmp_path / "out.mp4"
    done = run_cli("render", str(folder / "clip.mp4"), str(shared_image("style/starry_night.jpg")), "-o", str(output),
                   "--size", "48", "--iterations", "3", "--set", "scales=1", "--set", "frames=true", "--quiet")
    assert done.returncode == 0, done.stderr
    source, result = open_clip(folder / "clip.mp4", max_frames=100, max_pixels=10**6), \
        open_clip(output, max_frames=100, max_pixels=10**6)
    assert (result.frames, result.rate, result.audio_codec) == (source.frames, source.rate, "aac")
    assert result.duration == pytest.approx(source.duration)
    assert audio_packets(output) == audio_packets(folder / "clip.mp4")
    report = json.loads(output.with_suffix(".json").read_text())
    assert report["frames"] == FRAMES and len(report["per_frame"]) == FRAMES
    assert report["temporal_error"] is not None and report["clip"]["fps"] == 24.0
    assert sorted(p.name for p in (tmp_path / "out_frames").iterdir()) == [f"{i:06d}.png" for i in range(1, 6)]
    assert not (tmp_path / ".out.mp4.frames").exists()  # the resume store goes once the clip is written


def test_styled_render_refuses_an_image_output_for_a_clip(clip_folder, tmp_path):
    from styled.cli import main

    folder, _ = clip_folder
    code = main(["render", str(folder / "clip.mp4"), str(shared_image("style/starry_night.jpg")), "-o",
                 str(tmp_path / "out.png")])
    assert code == 2


def test_styled_render_refuses_a_fake_clip_with_exit_2(tmp_path, capsys):
    from styled.cli import main

    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    code = main(["render", str(fake), str(shared_image("style/starry_night.jpg")), "-o", str(tmp_path / "o.mp4")])
    assert code == 2
    assert "not a video" in capsys.readouterr().err


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def test_frame_rates_like_ntsc_survive_exactly(tmp_path):
    from styled.cli import main

    make_clip(tmp_path / "clip.mp4", 3, rate=Fraction(30000, 1001), tone=None)
    code = main(["render", str(tmp_path / "clip.mp4"), str(shared_image("style/starry_night.jpg")), "-o",
                 str(tmp_path / "out.webm"), "--size", "32", "--iterations", "1", "--set", "method=adain", "--quiet"])
    assert code == 0
    assert open_clip(tmp_path / "out.webm", max_frames=10, max_pixels=10**6).rate == Fraction(30000, 1001)


def test_init_adain_reaches_the_frames_of_a_clip(clip_folder):
    folder, camera = clip_folder
    store, result = render_into(folder, "init_adain", init="adain", iterations=2)
    plain, _ = render_into(folder, "init_content", iterations=2)
    assert len(result.records) == FRAMES
    # Few iterations: the first frame still shows where it started, AdaIN or the photo.
    assert np.abs(store.load(0) - plain.load(0)).mean() > 0.02
