"""The plugin manager: built-in defaults, first-party plugins, a plugins folder, entry points."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

from styled import hookspecs

log = logging.getLogger(__name__)

#: Built-in behaviour is registered like any plugin (datasette's DEFAULT_PLUGINS).
DEFAULT_PLUGINS = ("styled.losses",)


def make_plugin_manager(plugins_dir: Path | None = None) -> pluggy.PluginManager:
    """A plugin manager with the defaults, then plugins_dir's modules; misspelt hooks fail loudly."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(__import__(module_name, fromlist=["_"]), name=module_name)
    pm.check_pending()
    return pm


def fold(hook: pluggy.HookCaller, value_name: str, value: Any, **kwargs: Any) -> Any:
    """Call each implementation in turn on the previous one's answer (None keeps the value)."""
    for impl in reversed(hook.get_hookimpls()):
        arguments = {**kwargs, value_name: value}
        answer = impl.function(**{name: arguments[name] for name in impl.argnames})
        if answer is not None:
            value = answer
    return value


def call_notification(hook: pluggy.HookCaller, **kwargs: Any) -> None:
    """Notify plugins; a failing notification is logged, never allowed to fail the job."""
    try:
        hook(**kwargs)
    except Exception:  # noqa: BLE001 - a webhook plugin must not take a render down
        log.exception("plugin hook %s failed", hook.name)


NotificationCall = Callable[..., None]
