"""Plugins: the hook specs, the manager that loads plugins, and the built-in ones.

What a plugin author imports from here: ``Option``, ``OptionError``, ``PluginSchema`` and the
option rules (``number``, ``integer``, ``one_of``, ``boolean``, ``optional``); ``hookimpl`` and
``LossTerm`` come from ``styled`` itself. Programs that build jobs use ``make_plugin_manager`` and
``validate_job``.
"""

from styled.plugins.hookspecs import hookimpl
from styled.plugins.manager import (
    make_plugin_manager,
    validate_job,
    validate_job_plugins,
)
from styled.plugins.schema import (
    Option,
    OptionError,
    PluginSchema,
    boolean,
    integer,
    number,
    one_of,
    optional,
)

__all__ = ["Option", "OptionError", "PluginSchema", "boolean", "hookimpl", "integer", "make_plugin_manager",
           "number", "one_of", "optional", "validate_job", "validate_job_plugins"]
