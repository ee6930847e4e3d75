"""How many iterations each coarse-to-fine scale runs: by convergence, not by fixed counts.

A coarse scale that has stopped improving only delays the finer ones, where the picture is decided:
once its best loss fell by less than ``convergence`` over the last CONVERGENCE_WINDOW iterations,
it ends and hands the iterations it did not use to the next scale, converted by cost (pixels), so
a render never costs more than its fixed counts would. The last scale runs all of its iterations
(``iterations`` is what the job asked for), except at print sizes, where it too ends once it has
converged: there every iteration costs seconds to minutes, and scales above PRINT_SIDE plan fewer
in proportion to their pixels (JobSpec.scale_iterations). ``time_limit`` shares work the same
way, because each scale's deadline is its cumulative share of the limit (by the planned counts'
cost): time a scale does not use passes to the next, and a print's top scale runs until it has
converged or the limit is reached. docs/performance.md measures the choices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from styled.engine.spec import PRINT_SIDE, JobSpec

#: Iterations over which a scale must improve by ``convergence`` to go on.
CONVERGENCE_WINDOW = 5


def converged(history: Sequence[Mapping[str, float]], tolerance: float, window: int = CONVERGENCE_WINDOW) -> bool:
    """Whether the best total loss fell by less than ``tolerance`` (a fraction) over the last
    ``window`` entries. Never with ``tolerance`` 0 or fewer than twice ``window`` entries (the
    trust region is still finding its step)."""
    if tolerance <= 0 or len(history) < 2 * window:
        return False
    before = min(entry["total"] for entry in history[:-window])
    now = min(before, *(entry["total"] for entry in history[-window:]))
    return before - now < tolerance * abs(before)


def stops_when_converged(spec: JobSpec, index: int) -> bool:
    """Every scale but the last ends once converged; the last too at print sizes."""
    sizes = spec.scale_sizes()
    return spec.convergence > 0 and (index < len(sizes) - 1 or sizes[index] > PRINT_SIDE)


def budget(spec: JobSpec, index: int, done: Sequence[int]) -> int:
    """Iterations scale ``index`` may run: its own, plus what the scales before it left unused
    (``done[k]`` iterations ran at scale k), each iteration worth its pixels at the finer scale.
    With a ``time_limit``, a print's top scale may run up to the job's ``iterations``: the time
    left, or its convergence, ends it first."""
    sizes, planned = spec.scale_sizes(), spec.scale_iterations()
    carried = 0.0
    for earlier in range(index):
        left = max(0.0, planned[earlier] + carried - done[earlier])
        carried = left * (sizes[earlier] / sizes[earlier + 1]) ** 2
    own = planned[index] + int(carried)
    if spec.time_limit is not None and index == len(sizes) - 1 and stops_when_converged(spec, index):
        return max(own, spec.iterations)
    return own
