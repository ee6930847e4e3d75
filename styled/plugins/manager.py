"""The plugin manager, and how a job's ``plugins:`` table is checked against the plugins there are.

Plugins load in this order (datasette and pytest work the same way):

1. the built-in defaults (:data:`DEFAULT_PLUGINS`): the content, style and TV terms are a plugin;
2. the first-party plugins in ``styled.plugins.builtin`` (:data:`FIRST_PARTY_PLUGINS`);
3. every ``*.py`` in ``plugins_dir`` (``styled render --plugins-dir``, the daemon's ``plugins_dir``);
4. the entry points in the group ``styled`` of installed distributions.

A plugin's name in a job is the name its :class:`PluginSchema` declares, else the name it was
registered under: the module name for first-party plugins, the file's stem for ``plugins_dir``,
the entry point's name for distributions.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from styled.engine.job import Job
from styled.engine.spec import NO_STYLE_HINT, NO_STYLE_MESSAGE, JobSpec
from styled.errors import JobSpecError, PluginError
from styled.plugins import hookspecs
from styled.plugins.schema import PluginSchema, Resolver
from styled.settings import Invalid, located, suggest

log = logging.getLogger(__name__)

#: Built-in behaviour is registered like any plugin (datasette's DEFAULT_PLUGINS): name -> module.
DEFAULT_PLUGINS = {"gatys": "styled.plugins.builtin.gatys", "temporal": "styled.plugins.builtin.temporal"}
#: The Berger & Memisevic (ICLR 2017) extras, in styled.plugins.builtin like the built-in terms.
FIRST_PARTY_PACKAGE = "styled.plugins.builtin"
FIRST_PARTY_PLUGINS = ("long_range", "symmetry", "inpainting", "season_transfer", "regions", "scale_control")
ENTRY_POINT_GROUP = "styled"
#: Module names that ``plugins_dir`` files are imported under, so they cannot shadow real modules.
PLUGINS_DIR_PACKAGE = "styled_plugins_dir"

BUILT_IN = "built-in"
FIRST_PARTY = "first-party"
PLUGINS_DIR = "plugins dir"
ENTRY_POINT = "entry point"
IN_CODE = "registered in code"

# --- the plugin manager -------------------------------------------------------------------------


class StyledPluginManager(pluggy.PluginManager):
    """A pluggy PluginManager that remembers where each plugin came from (for ``styled plugins``)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, str] = {}

    def register_from(self, plugin: object, name: str, origin: str) -> None:
        """Register ``plugin`` as ``name``; a second plugin with a taken name is an error."""
        taken = self.get_plugin(name)
        if taken is not None:
            raise PluginError(f"two plugins are called '{name}'", where=origin,
                              hint=f"the other one comes from {self.origins.get(name, IN_CODE)}; rename one")
        try:
            self.register(plugin, name=name)
        except pluggy.PluginValidationError as error:  # a hook with arguments the spec does not have
            raise PluginError(str(error), where=origin, hint=_hooks_hint()) from None
        self.origins[name] = origin

    def origin(self, name: str) -> str:
        return self.origins.get(name, IN_CODE)


def make_plugin_manager(plugins_dir: Path | None = None) -> StyledPluginManager:
    """Built-ins, first-party plugins, ``plugins_dir``'s modules, entry points; misspelt hooks fail loudly."""
    pm = StyledPluginManager()
    for name, module_name in DEFAULT_PLUGINS.items():
        pm.register_from(importlib.import_module(module_name), name, f"{BUILT_IN}: {module_name}")
    for name in FIRST_PARTY_PLUGINS:
        module_name = f"{FIRST_PARTY_PACKAGE}.{name}"
        pm.register_from(importlib.import_module(module_name), name, f"{FIRST_PARTY}: {module_name}")
    if plugins_dir is not None:
        _load_plugins_dir(pm, Path(plugins_dir))
    _load_entry_points(pm)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as error:  # a misspelt hook
        raise PluginError(str(error), where=pm.origin(pm.get_name(error.plugin) or ""), hint=_hooks_hint()) from None
    return pm


def _hooks_hint() -> str:
    return f"the hooks are: {', '.join(hook_names())} (docs/plugins.md)"


def _load_plugins_dir(pm: StyledPluginManager, folder: Path) -> None:
    """Import every ``*.py`` in ``folder`` as a plugin named after the file (datasette's --plugins-dir)."""
    if not folder.is_dir():
        raise PluginError("the plugins folder does not exist", where=str(folder))
    for path in sorted(folder.glob("*.py")):
        pm.register_from(_import_file(path), path.stem, f"{PLUGINS_DIR}: {path}")


def _import_file(path: Path) -> object:
    module_name = f"{PLUGINS_DIR_PACKAGE}.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - any error in a plugin file is that file's fault
        raise PluginError(f"the plugin failed to load: {type(error).__name__}: {error}", where=str(path),
                          hint="fix the file or take it out of the plugins folder") from error
    sys.modules[module_name] = module
    return module


def _load_entry_points(pm: StyledPluginManager) -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist
        label = f"{distribution.name} {distribution.version}" if distribution else entry_point.value
        origin = f"{ENTRY_POINT}: {label}"
        try:
            plugin = entry_point.load()
        except Exception as error:  # noqa: BLE001
            raise PluginError(f"the plugin '{entry_point.name}' failed to load: {type(error).__name__}: {error}",
                              where=origin, hint="reinstall or uninstall that package") from error
        pm.register_from(plugin, entry_point.name, origin)


def hook_names() -> list[str]:
    """Every hook of styled, in the order hookspecs.py declares them."""
    return [name for name, value in vars(hookspecs).items() if hasattr(value, f"{hookspecs.PROJECT}_spec")]


# --- plugins in a job ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginInfo:
    """One registered plugin, as ``styled plugins`` lists it."""

    name: str  # as a job names it
    registered_as: str
    origin: str
    hooks: tuple[str, ...]
    schema: PluginSchema | None = field(default=None, repr=False)

    @property
    def selectable(self) -> bool:
        """Whether a job can name it under ``plugins:`` (the built-ins are always on)."""
        return not self.origin.startswith(BUILT_IN)


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with its job name, origin, hooks and schema, in load order."""
    schemas = _schemas(pm)
    infos = []
    for registered, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        hooks = tuple(caller.name for caller in pm.get_hookcallers(plugin) or ())
        schema = schemas.get(registered)
        origin = pm.origin(registered) if isinstance(pm, StyledPluginManager) else IN_CODE
        infos.append(PluginInfo(schema.name if schema else registered, registered, origin, hooks, schema))
    return infos


def _schemas(pm: pluggy.PluginManager) -> dict[str, PluginSchema]:
    """The schema of every plugin that declares one, by registered name."""
    found = {}
    for impl in pm.hook.plugin_schema.get_hookimpls():
        schema = impl.function()
        if schema is not None:
            found[impl.plugin_name] = schema
    return found


def validate_job_plugins(pm: pluggy.PluginManager, spec: JobSpec, resolve: Resolver | None = None, *,
                         lines: Mapping[str, int] | None = None, source: str | None = None) -> JobSpec:
    """The spec with each plugin's options checked and normalised (defaults filled in, paths resolved).

    Raises PluginError naming ``plugins.NAME`` or ``plugins.NAME.OPTION``, the bad value, the
    allowed values or the nearest option, and the YAML line when ``lines`` knows it.
    """
    lines = lines or {}
    available = {info.name: info for info in describe_plugins(pm) if info.selectable}
    normalised = {}
    for name, options in spec.plugins.items():
        key = f"plugins.{name}"
        if name not in available:
            raise PluginError(f"unknown plugin '{name}'", where=source, key=key, line=lines.get(key),
                              hint=_available_hint(name, available))
        schema = available[name].schema
        normalised[name] = dict(options) if schema is None else _checked(schema, options, resolve, key, lines,
                                                                         source)
    if not spec.style and not any(available[name].schema and available[name].schema.brings_styles
                                  for name in spec.plugins):
        raise JobSpecError(NO_STYLE_MESSAGE, where=source, key="style", hint=NO_STYLE_HINT)
    return dataclasses.replace(spec, plugins=normalised)


def plugin_file_finder(pm: pluggy.PluginManager) -> Callable[[Mapping[str, Any]], list[tuple[str, str]]]:
    """``files(plugins_table)``: the (dotted key, file name) of every file a raw spec's ``plugins:``
    table names, by the plugins' schemas. The daemon carries these files with the job."""
    schemas = {info.name: info.schema for info in describe_plugins(pm) if info.schema is not None}

    def files(plugins: Mapping[str, Any]) -> list[tuple[str, str]]:
        found = []
        for name, options in plugins.items():
            schema = schemas.get(name)
            found.extend(schema.files(options) if schema is not None else [])
        return found

    return files


def _available_hint(name: str, available: Mapping[str, Any]) -> str:
    listing = f"available plugins: {', '.join(sorted(available)) or 'none'}"
    close = suggest(name, available)
    return f"{close} {listing}" if close.startswith("did you mean") else listing


def validate_job(pm: pluggy.PluginManager, job: Job, resolve: Resolver | None = None, *,
                 lines: Mapping[str, int] | None = None, source: str | None = None) -> Job:
    """``job`` with its spec's plugins validated: see :func:`validate_job_plugins`."""
    return dataclasses.replace(job, spec=validate_job_plugins(pm, job.spec, resolve, lines=lines, source=source))


def _checked(schema: PluginSchema, options: Mapping[str, Any], resolve: Resolver | None, key: str,
             lines: Mapping[str, int], source: str | None) -> dict[str, Any]:
    try:
        return schema.apply(options, resolve)
    except Invalid as invalid:
        raise located(invalid, PluginError, source=source, lines=lines, prefix=f"{key}.") from None


def plugin_report(info: PluginInfo) -> dict[str, Any]:
    """One plugin for ``styled plugins --json``."""
    options = [] if info.schema is None else [
        {"name": o.name, "default": o.default, "help": o.help, "path": o.path} for o in info.schema.options]
    return {"name": info.name, "registered_as": info.registered_as, "origin": info.origin,
            "selectable": info.selectable, "hooks": list(info.hooks), "options": options,
            "help": info.schema.help if info.schema else ""}


def plugin_text(info: PluginInfo) -> str:
    """One plugin for ``styled plugins``: name and origin, what it does, hooks, then one line per option."""
    lines = [f"{info.name}  ({info.origin})"]
    if info.schema is not None and info.schema.help:
        lines.append(f"  {info.schema.help}")
    lines.append(f"  hooks: {', '.join(info.hooks) or 'none'}")
    if info.schema is not None and info.schema.options:
        width = max(len(option.name) for option in info.schema.options)
        lines.append("  options:")
        lines.extend(f"    {o.name:<{width}}  {o.help}{_default_text(o.default)}" for o in info.schema.options)
    elif info.selectable:
        lines.append("  options: not declared (passed to the plugin unchecked)")
    return "\n".join(lines)


def _default_text(value: Any) -> str:
    """`` (default: ...)`` in YAML's spelling; nothing for None, whose meaning the help text gives."""
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value).replace("'", "")
    return f" (default: {text})"
