"""The operator's limits on what one job may ask for: ``max_size``, ``max_iterations``,
``max_time_limit``, and what to do with a job over them (``over_limit``: refuse or clamp)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from styled.daemon.config import DaemonConfig
from styled.engine.spec import JobSpec
from styled.errors import JobSpecError

#: Spec key -> the config key that limits it.
LIMITED_KEYS = {"size": "max_size", "iterations": "max_iterations", "coarse_iterations": "max_iterations",
                "time_limit": "max_time_limit"}


def apply_limits(spec: JobSpec, config: DaemonConfig, *, source: str | None = None,
                 lines: Mapping[str, int] | None = None) -> tuple[JobSpec, list[str]]:
    """The spec within the limits, and a note for each value clamped; JobSpecError when refused.

    A job without ``time_limit`` gets ``max_time_limit``: the operator bounds every job's run time.
    """
    lines = lines or {}
    changes, notes = {}, []
    for key, limit_key in LIMITED_KEYS.items():
        limit, value = getattr(config, limit_key), getattr(spec, key)
        if limit is None:
            continue
        if value is None:
            if key == "time_limit":
                changes[key] = limit
            continue
        if value <= limit:
            continue
        if config.over_limit == "refuse":
            raise JobSpecError(f"'{key}' is {value:g}, over this daemon's {limit_key} of {limit:g}", where=source,
                               key=key, line=lines.get(key),
                               hint=f"ask for at most {limit:g}, or ask the operator to raise {limit_key}")
        changes[key] = limit
        notes.append(f"{key} {value:g} was clamped to the daemon's {limit_key} of {limit:g}")
    return dataclasses.replace(spec, **changes), notes
