"""Print sizes: peak memory against styled's estimate, seconds per iteration, tiled against untiled.

    python benchmarks/print_size.py                                  # 1024 and 2048 px, float32
    python benchmarks/print_size.py --sizes 4096 --budget 6GB        # one tiled iteration at 4096 px
    python benchmarks/print_size.py --sizes 2048 --tiled-only --budget 4GB

For each size, each mode runs in a process of its own (so its peak RSS is its own): ``untiled``
(``tile_size`` unset and a budget the whole image fits in, skipped with ``--tiled-only``),
``tiled`` (the ``--budget`` given, or tiles forced to ``--tile`` pixels; activations kept between
the passes where the plan has room) and ``no-keep`` (the same tiles, the kept activations turned off:
a second forward pass per tile, as before they could be kept; skipped with ``--no-compare-keep``). Each renders one scale of
Tübingen x The Starry Night, square (the worst case for a long side), for ``--iterations``
iterations, and prints the memory plan styled chose (tiles, optimiser, estimate), the peak RSS,
the median seconds per iteration after the first, and the tiled / untiled ratios where both ran.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTENT = REPO / "examples" / "tubingen.jpg"
STYLE = REPO / "examples" / "starry_night.jpg"


def square_content(size: int) -> Path:
    """Tübingen stretched to a square of ``size`` pixels, made once (by the parent, so that making it
    does not count in a child's peak RSS)."""
    from styled.io import images

    square = REPO / "benchmarks" / ".cache" / f"tubingen_{size}.png"
    if not square.exists():
        square.parent.mkdir(exist_ok=True)
        images.save_image(square, images.resize_to(images.load_image(CONTENT).pixels, size, size))
    return square


def child(size: int, precision: str, iterations: int, budget: str, tile: int | None, keep: bool) -> dict:
    import numpy as np

    from styled.engine import memory

    if not keep:  # the lever off: nothing is ever planned to be kept
        memory.kept_bytes = lambda *args, **kwargs: 0

    from styled import render
    from styled.engine.job import load_job, relative_to
    from styled.engine.spec import build_job_spec
    from styled.engine.types import RenderOptions

    data = {"content": str(square_content(size)), "style": [str(STYLE)], "size": size, "scales": 1, "iterations": iterations,
            "precision": precision, "max_memory": budget, "tile_size": tile or "auto", "tv_weight": 20}
    stamps: list[float] = []
    started = time.monotonic()
    result = render(load_job(build_job_spec(data), relative_to(REPO)),
                    options=RenderOptions(on_progress=lambda p: stamps.append(time.monotonic()) if not p.tiles or
                                          p.tile == 0 else None))
    gaps = list(np.diff([started, *stamps]))
    return {"size": size, "precision": precision, "plan": result.memory[-1],
            "seconds_per_iteration": statistics.median(gaps[1:]) if len(gaps) > 1 else gaps[0],
            "first_iteration": gaps[0], "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "loss": result.losses["total"]}


def run(size: int, precision: str, iterations: int, budget: str, tile: int | None, keep: bool = True) -> dict | None:
    command = [sys.executable, __file__, "--child", str(size), precision, str(iterations), budget, str(tile or 0),
               str(int(keep))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  {size} px {budget}: failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def show(mode: str, row: dict) -> None:
    plan = row["plan"]
    core = "x".join(str(side) for side in plan["tile"]) if plan["tile"] else "-"
    kept = " kept" if plan.get("keep") else ""
    print(f"  {row['size']:5d} px {row['precision']:8s} {mode:8s} tiles {plan['tiles']:4d}{kept} (core {core}, "
          f"halo {plan['halo']})  {plan['optimizer']} {plan['history'] or ''}  estimate {plan['estimate'] / 1e9:6.2f} GB"
          f"  peak RSS {row['peak_rss'] / 1e9:6.2f} GB  {row['seconds_per_iteration']:8.2f} s/it"
          f"  (first {row['first_iteration']:.1f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--precisions", nargs="+", default=["float32"])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--budget", default=None, help="max_memory of the tiled runs (default: force --tile)")
    parser.add_argument("--tile", type=int, default=1024, help="tile_size of the tiled runs when --budget is not given")
    parser.add_argument("--tiled-only", action="store_true")
    parser.add_argument("--no-compare-keep", action="store_true", help="skip the tiled run without kept activations")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, precision, iterations, budget, tile, keep = args.child
        print(json.dumps(child(int(size), precision, int(iterations), budget, int(tile) or None, keep == "1")))
        return
    for size in args.sizes:
        square_content(size)
        for precision in args.precisions:
            untiled = None if args.tiled_only else run(size, precision, args.iterations, "200GB", None)
            if untiled:
                show("untiled", untiled)
            tiling = (args.budget or "200GB", None if args.budget else args.tile)
            tiled = {"tiled": run(size, precision, args.iterations, *tiling)}
            if not args.no_compare_keep:
                tiled["no-keep"] = run(size, precision, args.iterations, *tiling, keep=False)
            for mode, row in tiled.items():
                if row:
                    show(mode, row)
                if untiled and row:
                    print(f"  {size:5d} px {precision:8s} {mode} / untiled: "
                          f"{row['seconds_per_iteration'] / untiled['seconds_per_iteration']:.2f}x time, "
                          f"{row['peak_rss'] / untiled['peak_rss']:.2f}x peak RSS; "
                          f"loss {row['loss']:.5g} / {untiled['loss']:.5g}", flush=True)


if __name__ == "__main__":
    main()
