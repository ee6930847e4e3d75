"""Time to quality: how soon styled reaches the loss a plain PyTorch L-BFGS loop reaches in T seconds.

    python benchmarks/vs_torch.py                          # 256 px / 40 s and 512 px / 120 s, 4 pairs
    python benchmarks/vs_torch.py --sizes 256 --budgets 40 --pairs 2 --set scales=1

For each content/style pair and size:

1. the loop of benchmarks/torch_reference.py runs for T seconds, and its output is scored with
   torch_reference's independent implementation of the objective at the output size, in float32:
   that is the quality to reach, L_T;
2. styled (its defaults, with content_weight 1, style_weight 100, tv_weight 0, ``time_limit`` T and
   no iteration limit) runs in its own process; its report's per-iteration history, stamped with
   the render's seconds, gives the first moment t its final scale's loss is at most L_T;
3. to confirm, the image styled had at t (its final scale's best, taken from the render's
   checkpoint after every iteration) is scored by the same independent objective (styled's own
   losses are computed in the precision it runs in). A second render stopped after t's iterations
   would not do: the coarse scales end by their share of ``time_limit`` too, so on a machine whose
   speed varies the second render reaches a different point.

Each process times the same thing: the optimisation with its targets and tracing, not the import
or the weights. Printed per pair: L_T, t, the ratio t / T (below 0.5 is the goal), the confirmed
score over L_T, and the jumps between scales (first loss of a scale over the last of the one
before); then the median and spread of t / T per size. Needs torch (``pip install torch==2.13.0``),
which styled itself does not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "images"
PAIRS = (("content/tubingen.jpg", "style/starry_night.jpg"), ("content/golden_gate.jpg", "style/the_scream.jpg"),
         ("content/hoovertowernight.jpg", "style/shipwreck.jpg"),
         ("content/tubingen.jpg", "style/woman-with-hat-matisse.jpg"))
OBJECTIVE = {"content_weight": 1.0, "style_weight": 100.0, "tv_weight": 0.0}
#: The random detail at each new scale comes from this seed, so runs compare (--set seed=N changes it).
SEED = 1
#: styled's iteration limit in these runs: none that matters, time_limit decides.
UNLIMITED = 1_000_000


def problem(content: Path, style: Path, size: int):
    """The content at the output size and the style at the output's long side, as styled sizes them."""
    from styled.io import images

    photo = images.load_image(content).pixels
    height, width = photo.shape[:2]
    factor = size / max(height, width)
    shape = (max(1, round(height * factor)), max(1, round(width * factor)))
    return (images.resize_to(photo, shape[1], shape[0]),
            images.resize_long_side(images.load_image(style).pixels, max(shape)))


def run_styled(content: Path, style: Path, size: int, budget: float, target: float, overrides: list[str],
               out: Path) -> None:
    """styled on the pair with ``time_limit`` = ``budget``. Its output goes to ``out``; the best image of
    the final scale at the first iteration whose loss was at most ``target`` (if any) to
    ``out``.reached.npy, taken from the render's checkpoint after every iteration."""
    import numpy as np

    from styled import render
    from styled.engine.job import load_job, relative_to
    from styled.engine.spec import build_job_spec
    from styled.engine.types import RenderOptions
    from styled.nets.weights import load_backbone
    from styled.settings.sources import apply_overrides

    data = apply_overrides({"content": str(content), "style": [str(style)], "size": size, **OBJECTIVE,
                            "iterations": UNLIMITED, "time_limit": budget, "seed": SEED}, overrides)
    job = load_job(build_job_spec(data), relative_to(REPO))
    backbone = load_backbone("vgg19")
    last_scale = len(job.spec.scale_sizes()) - 1
    reached = {}

    def on_checkpoint(checkpoint) -> None:
        if not reached and checkpoint.scale_index == last_scale and checkpoint.state.best_loss <= target:
            reached["image"] = checkpoint.state.best_image

    result = render(job, options=RenderOptions(backbones=lambda name, path: backbone, on_checkpoint=on_checkpoint,
                                               checkpoint_seconds=0.0))
    np.save(out, result.image)
    if reached:
        np.save(reached_path(out), reached["image"])
    out.with_suffix(".json").write_text(json.dumps({"iterations": result.iterations, "precision": result.precision,
                                                    "seconds": result.seconds, "history": result.history}))


def reached_path(out: Path) -> Path:
    return out.with_suffix(".reached.npy")


def run_torch(content: Path, style: Path, size: int, budget: float, out: Path) -> None:
    import numpy as np
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from torch_reference import VGG, Objective, lbfgs_loop

    torch.set_num_threads(os.cpu_count() or 1)
    photo, painting = problem(content, style, size)
    vgg = VGG()
    started = time.monotonic()
    objective = Objective(vgg, photo, painting, **OBJECTIVE)
    image, steps = lbfgs_loop(objective, photo, budget - (time.monotonic() - started))
    np.save(out, image)
    out.with_suffix(".json").write_text(json.dumps({"iterations": steps}))


def score(content: Path, style: Path, size: int, outputs: list[Path]) -> list[float]:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from torch_reference import VGG, Objective

    photo, painting = problem(content, style, size)
    objective = Objective(VGG(), photo, painting, **OBJECTIVE)
    return [objective.evaluate(np.load(path)) for path in outputs]


def time_to_reach(history: list[dict], loss: float) -> tuple[float | None, int]:
    """Seconds at which the final scale's loss first was at most ``loss`` (None: never), and the
    iterations done by then over all scales."""
    last = max(entry["scale"] for entry in history)
    for count, entry in enumerate(history, start=1):
        if entry["scale"] == last and entry["total"] <= loss:
            return entry["seconds"], count
    return None, len(history)


def scale_jumps(history: list[dict]) -> list[tuple[float, float]]:
    """Per new scale: its first loss and its last loss, each over the previous scale's last."""
    scales: dict[int, list[float]] = {}
    for entry in history:
        scales.setdefault(entry["scale"], []).append(entry["total"])
    ordered = [scales[key] for key in sorted(scales)]
    return [(now[0] / before[-1], now[-1] / before[-1]) for before, now in zip(ordered, ordered[1:])]


def child(*args: str) -> None:
    subprocess.run([sys.executable, __file__, *args], check=True)


def compare_pair(content: Path, style: Path, size: int, budget: float, overrides: list[str], folder: Path) -> float:
    theirs, ours = folder / "torch.npy", folder / "styled.npy"
    sets = [item for override in overrides for item in ("--set", override)]
    child("--child", "torch", str(content), str(style), str(size), str(budget), "0", str(theirs))
    target = score(content, style, size, [theirs])[0]
    child("--child", "styled", str(content), str(style), str(size), str(budget), repr(target), str(ours), *sets)
    reached_image = reached_path(ours)
    at_budget, *confirmation = score(content, style, size, [ours] + ([reached_image] if reached_image.exists() else []))
    info = json.loads(ours.with_suffix(".json").read_text())
    steps = json.loads(theirs.with_suffix(".json").read_text())["iterations"]
    reached, iterations = time_to_reach(info["history"], target)
    jumps = " ".join(f"{first:.1f}x/{end:.2f}x" for first, end in scale_jumps(info["history"]))
    name = f"{size:5d} px {budget:5.0f} s  {content.stem:>18} x {style.stem:<24}"
    if reached is None or not confirmation:
        print(f"{name} torch {target:.4f} ({steps} it); styled never reached it: {at_budget:.4f} at T "
              f"({info['iterations']} it, {info['precision']}); scale jumps {jumps}; ratio > 1", flush=True)
        return math.inf
    confirmed = confirmation[0]
    ratio = reached / budget
    print(f"{name} torch {target:.4f} ({steps} it)  styled {reached:6.1f} s ({iterations} it, {info['precision']})  "
          f"ratio {ratio:.3f}  confirmed {confirmed / target:.3f}x  at T {at_budget / target:.3f}x  "
          f"scale jumps {jumps}", flush=True)
    return ratio


def compare(size: int, budget: float, pairs: list[tuple[Path, Path]], overrides: list[str]) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        ratios = [compare_pair(content, style, size, budget, overrides, Path(folder)) for content, style in pairs]
    print(f"{size:5d} px {budget:5.0f} s  time to the loop's quality / T: median {statistics.median(ratios):.3f}, "
          f"spread {min(ratios):.3f} .. {max(ratios):.3f} over {len(ratios)} pairs", flush=True)
    return ratios


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, content, style, size, budget, target, out, *rest = sys.argv[2:]
        overrides = [rest[i + 1] for i in range(0, len(rest), 2)]
        if kind == "styled":
            run_styled(Path(content), Path(style), int(size), float(budget), float(target), overrides, Path(out))
        else:
            run_torch(Path(content), Path(style), int(size), float(budget), Path(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--budgets", type=float, nargs="+", default=[40, 120])
    parser.add_argument("--pairs", type=int, default=len(PAIRS))
    parser.add_argument("--images", type=Path, default=SHARED, help="folder with content/ and style/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="job-spec keys for styled's runs (levers to compare)")
    args = parser.parse_args()
    pairs = [(args.images / c, args.images / s) for c, s in PAIRS[: args.pairs]]
    for size, budget in zip(args.sizes, args.budgets):
        compare(size, budget, pairs, args.overrides)


if __name__ == "__main__":
    main()
