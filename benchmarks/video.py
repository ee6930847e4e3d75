"""Flicker, style and speed of a clip: styling each frame alone against Ruder et al.'s temporal term.

    python benchmarks/video.py                               # 24 frames, 256 px, 50 iterations, 1 scale
    python benchmarks/video.py --frames 8 --iterations 20    # a quick look
    python benchmarks/video.py --pictures docs/images        # also the comparison pictures

The clip is examples/tubingen.jpg seen by a virtual camera that pans, zooms and turns
(styled.video.camera), so the true optical flow is known. For each mode it prints seconds per frame
(median over the frames after the first, and the first frame alone), Ruder et al.'s temporal error
(the mean squared difference between each stylised frame and the previous one warped by the *true*
flow, over the pixels the true flow makes reliable), and the mean final style and content losses.
Then the optical flow: each DIS preset's end-point error against the true flow and its time per
frame pair (both directions), and the flow's share of a frame's time. Medians throughout.

Modes: ``alone`` (temporal_weight 0: each frame from its own content), ``temporal`` (styled's
defaults: temporal term, warped start), ``long`` (temporal_frames [1, 2, 4]), ``adain`` (per frame)
and ``adain-blend`` (temporal_blend 0.5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from styled.engine.job import relative_to  # noqa: E402
from styled.engine.spec import build_job_spec  # noqa: E402
from styled.io.images import load_image  # noqa: E402
from styled.plugins.manager import make_plugin_manager  # noqa: E402
from styled.video.camera import CameraClip, film  # noqa: E402
from styled.video.encode import write_clip  # noqa: E402
from styled.video.flow import DIS_PRESETS, frame_pair, grey, optical_flow, reliability, warp  # noqa: E402
from styled.video.render import load_clip_job, render_clip  # noqa: E402
from styled.video.store import FrameStore  # noqa: E402

CONTENT = REPO / "examples" / "tubingen.jpg"
STYLE = REPO / "examples" / "starry_night.jpg"
MODES = {
    "alone": {"temporal_weight": 0},
    "temporal": {},
    "long": {"temporal_frames": [1, 2, 4]},
    "adain": {"method": "adain"},
    "adain-blend": {"method": "adain", "temporal_blend": 0.5},
}
RATE = Fraction(24)
JPEG_QUALITY = 85
#: The GIF of the whole clip is shown at this scale, to keep it near a megabyte.
GIF_SCALE = 0.75


def true_temporal_error(frames: list[np.ndarray], camera: CameraClip) -> float:
    """Mean over frame pairs of the reliable-pixel mean squared difference to the warped previous frame."""
    errors = []
    for index in range(1, len(frames)):
        backward, forward = camera.true_flow(index, index - 1), camera.true_flow(index - 1, index)
        weights = reliability(backward, forward)
        squared = np.square(frames[index] - warp(frames[index - 1], backward)).mean(axis=-1)
        errors.append(float((squared * weights).sum() / weights.sum()))
    return statistics.fmean(errors)


def run_mode(folder: Path, name: str, settings: dict, args: argparse.Namespace, camera: CameraClip) -> dict:
    spec = build_job_spec({"content": str(folder / "clip.mp4"), "style": str(STYLE), "size": args.size,
                           "iterations": args.iterations, "scales": args.scales, "seed": 0, **settings})
    job = load_clip_job(spec, relative_to(folder), name=name, max_pixels=10**8, max_frames=10**4)
    store = FrameStore(folder / name)
    started = time.perf_counter()
    result = render_clip(job, make_plugin_manager(), store)
    seconds = time.perf_counter() - started
    frames = [store.load(index) for index in range(len(result.records))]
    later = [record["seconds"] for record in result.records[1:]]
    return {"mode": name, "seconds": seconds, "first": result.records[0]["seconds"],
            "per_frame": statistics.median(later), "error": true_temporal_error(frames, camera),
            "style": result.losses.get("style", float("nan")), "content": result.losses.get("content", float("nan")),
            "frames": frames}


def flow_table(camera: CameraClip, repeats: int) -> list[dict]:
    rows = []
    greys = [grey(frame) for frame in camera.frames]
    for preset in DIS_PRESETS:
        errors, times = [], []
        for index in range(1, len(greys)):
            truth = camera.true_flow(index, index - 1)
            lap = []
            for _ in range(repeats):
                started = time.perf_counter()
                flow = optical_flow(greys[index], greys[index - 1], preset)
                optical_flow(greys[index - 1], greys[index], preset)
                lap.append(time.perf_counter() - started)
            times.append(statistics.median(lap))
            errors.append(float(np.linalg.norm(flow - truth, axis=-1).mean()))
        rows.append({"preset": preset, "epe": statistics.fmean(errors), "ms": 1000 * statistics.median(times)})
    return rows


def flow_seconds_per_frame(camera: CameraClip, preset: str) -> float:
    """What styled's render does with the flow for one frame: both flows, the check, one warp."""
    greys = [grey(frame) for frame in camera.frames]
    laps = []
    for index in range(1, len(greys)):
        started = time.perf_counter()
        pair = frame_pair(greys[index], greys[index - 1], preset)
        warp(camera.frames[index - 1], pair.backward)
        laps.append(time.perf_counter() - started)
    return statistics.median(laps)


def save_pictures(folder: Path, results: dict[str, dict], camera: CameraClip) -> None:
    """A strip of four consecutive frames per mode, and a GIF of per-frame | temporal side by side."""
    from PIL import Image as PILImage

    shown = [mode for mode in ("alone", "temporal", "adain", "adain-blend") if mode in results]
    start = len(camera.frames) // 2 - 2
    gap = 4
    rows = [np.concatenate([np.pad(frame, ((0, 0), (0, gap), (0, 0)), constant_values=1.0)
                            for frame in results[mode]["frames"][start:start + 4]], axis=1) for mode in shown]
    strip = np.concatenate([np.pad(row, ((0, gap), (0, 0), (0, 0)), constant_values=1.0) for row in rows], axis=0)
    folder.mkdir(parents=True, exist_ok=True)
    _jpeg(strip).save(folder / "video_frames.jpg", quality=JPEG_QUALITY)
    _jpeg(results["temporal"]["frames"][len(camera.frames) // 2]).save(folder / "video_still.jpg", quality=JPEG_QUALITY)
    if "alone" in results:
        pairs = [np.concatenate([a, np.ones((a.shape[0], gap, 3), np.float32), b], axis=1)
                 for a, b in zip(results["alone"]["frames"], results["temporal"]["frames"])]
        pictures = [_jpeg(p).resize((round(p.shape[1] * GIF_SCALE), round(p.shape[0] * GIF_SCALE)),
                                    PILImage.Resampling.LANCZOS) for p in pairs]
        pictures[0].save(folder / "video_compare.gif", save_all=True, append_images=pictures[1:],
                         duration=int(1000 / RATE), loop=0, optimize=True)


def _jpeg(pixels: np.ndarray):
    from PIL import Image as PILImage

    return PILImage.fromarray((np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--scales", type=int, default=1, help="coarse-to-fine scales per frame (2 doubles the time)")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--flow-repeats", type=int, default=5)
    parser.add_argument("--pictures", type=Path, help="write video_frames.jpg, video_still.jpg, video_compare.gif here")
    args = parser.parse_args()
    height = round(args.size * 9 / 16)
    camera = film(load_image(CONTENT).pixels, (height, args.size), args.frames)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        write_clip(folder / "clip.mp4", camera.frames, RATE)
        print(f"clip: {args.frames} frames of {args.size}x{height}, {args.scales} scale(s), {args.iterations} "
              f"iterations (first frame {2 * args.iterations}), style {STYLE.name}")
        results = {}
        for mode in args.modes:
            results[mode] = run_mode(folder, mode, MODES[mode], args, camera)
            row = results[mode]
            print(f"  {mode:12s} {row['per_frame']:7.2f} s/frame  first {row['first']:7.2f} s  total {row['seconds']:7.1f} s"
                  f"  temporal error {row['error']:.5f}  style {row['style']:.4f}  content {row['content']:.4f}",
                  flush=True)
    if "alone" in results:
        base = results["alone"]
        print("against styling each frame alone (alone = 1):")
        for mode, row in results.items():
            print(f"  {mode:12s} temporal error x{row['error'] / base['error']:.3f}  "
                  f"({base['error'] / row['error']:.1f} times lower)  style x{row['style'] / base['style']:.3f}  "
                  f"seconds per frame x{row['per_frame'] / base['per_frame']:.2f}")
    print(f"optical flow at {args.size}x{height} (both directions per frame pair, median of {args.flow_repeats}):")
    for row in flow_table(camera, args.flow_repeats):
        print(f"  {row['preset']:10s} end-point error {row['epe']:.3f} px   {row['ms']:6.1f} ms per pair")
    if "temporal" in results:
        flow = flow_seconds_per_frame(camera, "medium")
        share = flow / results["temporal"]["per_frame"]
        print(f"flow per frame (medium: two flows, the check, a warp): {1000 * flow:.1f} ms, "
              f"{100 * share:.2f} % of a frame's {results['temporal']['per_frame']:.1f} s")
    if args.pictures and "temporal" in results:
        save_pictures(args.pictures, results, camera)
        print(f"pictures in {args.pictures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
