"""Reading and writing clips with PyAV: timing, sound and bad input."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from styled.errors import VideoError
from styled.io.images import save_image
from styled.video.clip import open_clip, read_frames
from styled.video.encode import audio_problem, write_clip
from video_support import camera_clip, make_clip

LIMITS = {"max_frames": 100, "max_pixels": 10**6}


def audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [bytes(packet) for packet in container.demux(stream) if packet.size]


def test_a_written_clip_reads_back_with_its_frames_rate_and_sound(tmp_path):
    made = make_clip(tmp_path / "clip.mp4", 6, rate=Fraction(30000, 1001))
    clip = open_clip(tmp_path / "clip.mp4", **LIMITS)
    assert (clip.frames, clip.rate, clip.width, clip.height, clip.audio_codec) == (6, Fraction(30000, 1001), 48, 36, "aac")
    frames = list(read_frames(clip))
    assert len(frames) == 6 and frames[0].shape == (36, 48, 3)
    assert np.abs(frames[3] - made.frames[3]).mean() < 0.03  # x264 at CRF 18 on a tiny frame


def test_the_sound_is_copied_packet_for_packet_not_re_encoded(tmp_path):
    make_clip(tmp_path / "clip.mp4", 6)
    clip = open_clip(tmp_path / "clip.mp4", **LIMITS)
    write_clip(tmp_path / "copy.mkv", read_frames(clip), clip.rate, audio_from=clip.path)
    assert audio_packets(tmp_path / "copy.mkv") == audio_packets(tmp_path / "clip.mp4")
    copy = open_clip(tmp_path / "copy.mkv", **LIMITS)
    assert (copy.frames, copy.rate) == (6, clip.rate)


# GIF keeps delays in hundredths of a second: 10 fps is exact there, 12 fps would come back as 12.5.
@pytest.mark.parametrize("suffix, rate", [(".webm", 12), (".gif", 10), (".mov", 12)])
def test_other_containers_keep_the_frame_count_and_rate(tmp_path, suffix, rate):
    clip = camera_clip(4)
    write_clip(tmp_path / f"clip{suffix}", clip.frames, Fraction(rate))
    again = open_clip(tmp_path / f"clip{suffix}", **LIMITS)
    assert (again.frames, again.rate) == (4, Fraction(rate))


def test_audio_that_a_container_cannot_hold_is_named():
    from pathlib import Path

    assert audio_problem("aac", Path("out.mp4")) is None
    assert "vorbis" in audio_problem("vorbis", Path("out.mp4"))
    assert "no sound" in audio_problem("aac", Path("out.gif"))
    assert audio_problem("vorbis", Path("out.mkv")) is None


def test_a_file_that_is_not_a_video_is_refused_clearly(tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(b"this is a text file\n" * 50)
    with pytest.raises(VideoError, match="not a video") as caught:
        open_clip(fake, **LIMITS)
    assert caught.value.key == "content" and caught.value.where == str(fake)


def test_a_sound_file_without_pictures_is_refused(tmp_path):
    path = tmp_path / "song.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="no video stream"):
        open_clip(path, **LIMITS)


def test_a_variable_frame_rate_clip_is_refused(tmp_path):
    path = tmp_path / "vfr.mkv"
    frames = camera_clip(5).frames
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 36, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for frame, pts in zip(frames, [0, 40, 80, 200, 240]):  # a 120 ms gap among 40 ms steps
            picture = av.VideoFrame.from_ndarray((frame * 255).astype(np.uint8), format="rgb24")
            picture.pts = pts
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="variable frame rate") as caught:
        open_clip(path, **LIMITS)
    assert "fps_mode cfr" in caught.value.hint


def test_clips_over_the_frame_or_pixel_limit_are_refused(tmp_path):
    make_clip(tmp_path / "clip.mp4", 5, tone=None)
    with pytest.raises(VideoError, match="5 frames, over the limit of 4"):
        open_clip(tmp_path / "clip.mp4", max_frames=4, max_pixels=10**6)
    with pytest.raises(VideoError, match="48 x 36, over the limit"):
        open_clip(tmp_path / "clip.mp4", max_frames=100, max_pixels=1000)


def test_a_folder_of_numbered_frames_plays_in_number_order_at_fps(tmp_path):
    frames = camera_clip(3).frames
    for number, frame in zip((9, 10, 100), frames):  # 10 sorts after 9, not before it
        save_image(tmp_path / f"frame_{number}.png", frame)
    (tmp_path / "notes.txt").write_text("not a frame")
    clip = open_clip(tmp_path, fps=12.5, **LIMITS)
    assert (clip.frames, clip.rate, clip.audio_codec) == (3, Fraction(25, 2), None)
    read = list(read_frames(clip))
    assert all(np.abs(a - b).max() < 1 / 255 + 1e-6 for a, b in zip(read, frames))


def test_a_folder_frame_of_another_size_is_refused_by_name(tmp_path):
    frames = camera_clip(2).frames
    save_image(tmp_path / "f1.png", frames[0])
    save_image(tmp_path / "f2.png", frames[1][:20])
    clip = open_clip(tmp_path, **LIMITS)
    with pytest.raises(VideoError, match="the first was 48 x 36") as caught:
        list(read_frames(clip))
    assert caught.value.where.endswith("f2.png")


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(VideoError, match="no numbered frames"):
        open_clip(tmp_path, **LIMITS)
