"""One vocabulary for settings: job specs, the daemon config and plugin options.

A key is declared once, as a :class:`~styled.settings.fields.Field` with its default, its rule and
its help text; validation, error messages and the tables in the docs all come from that one place.
"""

from styled.settings.fields import (
    Field,
    Invalid,
    Rule,
    check_table,
    located,
    setting,
    suggest,
    table,
)

__all__ = ["Field", "Invalid", "Rule", "check_table", "located", "setting", "suggest", "table"]
