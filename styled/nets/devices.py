"""Device and precision selection for TensorFlow: ``auto | cpu | gpu | gpu:N``."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from styled.errors import DeviceError
from styled.settings.fields import Invalid
from styled.settings.rules import short

log = logging.getLogger(__name__)

#: The compute dtypes of the VGG pass; ``auto`` is measured (styled.nets.precision).
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Device:
    name: str  # "cpu" or "gpu:N", what reports show
    tf_name: str  # "/CPU:0", "/GPU:N"

    @property
    def is_gpu(self) -> bool:
        return self.name.startswith("gpu")

    @property
    def gpu_index(self) -> int | None:
        """TensorFlow's index of the GPU; None on the CPU."""
        return int(self.tf_name.rsplit(":", 1)[1]) if self.is_gpu else None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send what native code writes to fd 2 to /dev/null meanwhile, unless styled logs at DEBUG.

    TensorFlow's C++ layer prints start-up notes (absl, oneDNN, "could not find cuda drivers",
    "failed call to cuInit" on machines without a GPU) before and around its own log level
    setting; they are noise to users, and ``--debug`` shows them.
    """
    if logging.getLogger("styled").getEffectiveLevel() <= logging.DEBUG:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def load_tensorflow() -> None:
    """Import TensorFlow and probe its GPUs once, without the native start-up noise."""
    with quiet_native_stderr():
        import tensorflow  # noqa: F401

        _gpus()


@functools.cache
def _gpus() -> tuple[str, ...]:
    """List the GPUs once and turn on memory growth, so several workers can share a card."""
    import tensorflow as tf  # here, so that checking a spec's device does not load TensorFlow

    with quiet_native_stderr():
        gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised by an earlier call: nothing to change
            pass
    return tuple(gpu.name for gpu in gpus)


def device_name(value: Any) -> str:
    """A rule: ``auto``, ``cpu``, ``gpu`` or ``gpu:N``."""
    if value in ("auto", "cpu", "gpu") or (
        isinstance(value, str) and value.startswith("gpu:") and value[4:].isdigit()
    ):
        return value
    raise Invalid(f"must be auto, cpu, gpu or gpu:N, got {short(value)}")


def resolve_device(requested: str) -> Device:
    """Map a spec's ``device`` to a TensorFlow device, or raise DeviceError saying what exists."""
    gpus = _gpus()
    if requested == "cpu" or (requested == "auto" and not gpus):
        return Device("cpu", "/CPU:0")
    index = 0 if requested in ("auto", "gpu") else int(requested.split(":")[1])
    if index >= len(gpus):
        found = f"{len(gpus)} GPU(s)" if gpus else "no GPU"
        raise DeviceError(f"device '{requested}' is not available: this machine has {found}",
                          key="device", hint="use device: cpu or device: auto")
    return Device(f"gpu:{index}", f"/GPU:{index}")


def available_devices() -> list[Device]:
    """The CPU and every GPU TensorFlow sees."""
    return [Device("cpu", "/CPU:0"), *(Device(f"gpu:{index}", f"/GPU:{index}") for index in range(len(_gpus())))]
