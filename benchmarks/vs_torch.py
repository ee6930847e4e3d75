"""styled against a plain PyTorch L-BFGS loop: the same objective, the same pair, the same seconds.

    python benchmarks/vs_torch.py                          # 256 px / 40 s and 512 px / 120 s, 4 pairs
    python benchmarks/vs_torch.py --sizes 256 --budgets 40 --pairs 2 --set scales=1

For each content/style pair and size, styled (its defaults, with content_weight 1, style_weight 100,
tv_weight 0 and ``time_limit`` = the budget) and the loop of benchmarks/torch_reference.py each run
in a process of their own for the same optimisation wall time (targets and tracing included, the
import and the weights not). Both outputs are then scored by torch_reference's independent
implementation of the objective at the output size, in float32; the ratio styled / torch is
printed per pair, with the median and the spread. Below 1 styled is better. Needs torch
(``pip install torch==2.13.0``), which styled itself does not.
"""

from __future__ import annotations

import argparse
import json
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


def problem(content: Path, style: Path, size: int):
    """The content at the output size and the style at the output's long side, as styled sizes them."""
    from styled.io import images

    photo = images.load_image(content).pixels
    height, width = photo.shape[:2]
    factor = size / max(height, width)
    shape = (max(1, round(height * factor)), max(1, round(width * factor)))
    return (images.resize_to(photo, shape[1], shape[0]),
            images.resize_long_side(images.load_image(style).pixels, max(shape)))


def run_styled(content: Path, style: Path, size: int, budget: float, overrides: list[str], out: Path) -> None:
    import numpy as np

    from styled import render
    from styled.engine.job import load_job, relative_to
    from styled.engine.spec import build_job_spec
    from styled.engine.types import RenderOptions
    from styled.nets.weights import load_backbone
    from styled.settings.sources import apply_overrides

    data = apply_overrides({"content": str(content), "style": [str(style)], "size": size, **OBJECTIVE,
                            "iterations": 1_000_000, "time_limit": budget}, overrides)
    job = load_job(build_job_spec(data), relative_to(REPO))
    backbone = load_backbone("vgg19")
    result = render(job, options=RenderOptions(backbones=lambda name, path: backbone))
    np.save(out, result.image)
    out.with_suffix(".json").write_text(json.dumps({"iterations": result.iterations, "precision": result.precision,
                                                    "seconds": result.seconds}))


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


def child(*args: str) -> None:
    subprocess.run([sys.executable, __file__, *args], check=True)


def compare(size: int, budget: float, pairs: list[tuple[Path, Path]], overrides: list[str]) -> list[float]:
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for content, style in pairs:
            ours, theirs = Path(folder) / "styled.npy", Path(folder) / "torch.npy"
            sets = [item for override in overrides for item in ("--set", override)]
            child("--child", "styled", str(content), str(style), str(size), str(budget), str(ours), *sets)
            child("--child", "torch", str(content), str(style), str(size), str(budget), str(theirs))
            styled_loss, torch_loss = score(content, style, size, [ours, theirs])
            info = json.loads(ours.with_suffix(".json").read_text())
            steps = json.loads(theirs.with_suffix(".json").read_text())["iterations"]
            ratios.append(styled_loss / torch_loss)
            print(f"{size:5d} px {budget:5.0f} s  {content.stem:>18} x {style.stem:<24} styled {styled_loss:9.4f} "
                  f"({info['iterations']} it, {info['precision']})  torch {torch_loss:9.4f} ({steps} it)  "
                  f"ratio {ratios[-1]:.3f}", flush=True)
    print(f"{size:5d} px {budget:5.0f} s  median ratio {statistics.median(ratios):.3f}, "
          f"spread {min(ratios):.3f} .. {max(ratios):.3f} over {len(ratios)} pairs", flush=True)
    return ratios


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, content, style, size, budget, out, *rest = sys.argv[2:]
        overrides = [rest[i + 1] for i in range(0, len(rest), 2)]
        if kind == "styled":
            run_styled(Path(content), Path(style), int(size), float(budget), overrides, Path(out))
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
