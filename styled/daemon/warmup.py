"""What a process does once before its first render: TensorFlow imported, ``precision: auto``
measured (the daemon before READY=1, each cluster worker at its start)."""

from __future__ import annotations

import logging

from styled.daemon.config import DaemonConfig
from styled.errors import StyledError

log = logging.getLogger(__name__)


def load_engine() -> None:
    """Import the engine and TensorFlow (quietly: see styled.nets.devices.quiet_native_stderr)."""
    from styled.nets.devices import load_tensorflow

    load_tensorflow()
    import styled.engine.render  # noqa: F401


def measure_precisions(config: DaemonConfig) -> None:
    """Measure ``precision: auto`` on each worker's device before READY=1 (once per machine and
    version; cached after that), so the first job does not pay for it."""
    from styled.nets.devices import resolve_device
    from styled.nets.precision import calibration_for

    if config.defaults.get("precision", "auto") != "auto":
        return
    for name in dict.fromkeys(config.devices):
        try:
            calibration_for(resolve_device(name))
        except StyledError as error:
            log.warning("cannot measure the precision of %s: %s", name, error)
