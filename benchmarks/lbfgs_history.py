"""Loss after 25/50/100/150 L-BFGS iterations for several history lengths (256 px, float32, one scale).

    python benchmarks/lbfgs_history.py --histories 10 20 50 100
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from styled import render
from styled.engine.job import load_job, relative_to
from styled.engine.spec import build_job_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHECKPOINTS = (25, 50, 100, 150)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", type=int, nargs="*", default=[10, 20, 50, 100])
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    for history in args.histories:
        spec = build_job_spec({"content": "tubingen.jpg", "style": ["starry_night.jpg"], "size": args.size,
                               "scales": 1, "iterations": max(CHECKPOINTS), "lbfgs_history": history,
                               "precision": "float32"})
        result = render(load_job(spec, relative_to(EXAMPLES)))
        totals = [entry["total"] for entry in result.history]
        row = {"history": history, **{f"loss@{n}": round(totals[n - 1], 4) for n in CHECKPOINTS},
               "s_per_iteration": round(result.seconds / result.iterations, 3)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
