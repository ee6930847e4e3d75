"""How the engine calls plugins' hooks beyond pluggy's own calling: answers folded in turn, and
notifications that never fail a render.

The engine knows plugins only through the pluggy PluginManager it is handed; the hook specs and the
manager live above it, in styled.plugins.
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy

log = logging.getLogger(__name__)


def fold(hook: pluggy.HookCaller, value_name: str, value: Any, **kwargs: Any) -> Any:
    """Call each implementation in turn on the previous one's answer (None keeps the value)."""
    for impl in reversed(hook.get_hookimpls()):
        arguments = {**kwargs, value_name: value}
        answer = impl.function(**{name: arguments[name] for name in impl.argnames})
        if answer is not None:
            value = answer
    return value


def call_notification(hook: pluggy.HookCaller, **kwargs: Any) -> None:
    """Notify every plugin; a failing one is logged and neither fails the job nor silences the others."""
    for impl in reversed(hook.get_hookimpls()):
        try:
            impl.function(**{name: kwargs[name] for name in impl.argnames})
        except Exception:  # noqa: BLE001 - a webhook plugin must not take a render down
            log.exception("plugin %s failed in hook %s", impl.plugin_name, hook.name)

