"""Rules shared by job specs, the daemon config and plugin options: one message for one fault."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from styled.settings.fields import Invalid, Rule, suggest


def integer(minimum: int | None = None, maximum: int | None = None) -> Rule:
    """A whole number in [minimum, maximum]."""

    def rule(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"must be a whole number, got {short(value)}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise Invalid(f"must be {_range_text(minimum, maximum)}, got {short(value)}")
        return value

    return rule


def number(minimum: float | None = None, maximum: float | None = None, *, exclusive_min: bool = False) -> Rule:
    """A finite number in [minimum, maximum] (or (minimum, maximum] with ``exclusive_min``)."""

    def rule(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise Invalid(f"must be a number, got {short(value)}")
        too_small = minimum is not None and (value <= minimum if exclusive_min else value < minimum)
        if too_small or (maximum is not None and value > maximum):
            raise Invalid(f"must be {_range_text(minimum, maximum, exclusive_min)}, got {short(value)}")
        return float(value)

    return rule


#: Units a memory size may be given in; K, M, G and T are powers of 1000, KiB, MiB... of 1024.
MEMORY_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
                "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
MEMORY_PATTERN = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")


def memory_size(value: Any) -> int | None:
    """``auto`` (None), a number of bytes, or a size such as ``6GB``, ``512MB`` or ``8GiB``."""
    if value == "auto":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _LARGEST_FLOAT:
        return value
    match = MEMORY_PATTERN.fullmatch(value) if isinstance(value, str) else None
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in MEMORY_UNITS or float(match.group(1)) <= 0:
        raise Invalid(f"must be auto or a memory size such as 6GB, 512MB or 8GiB, got {short(value)}")
    return int(float(match.group(1)) * MEMORY_UNITS[unit])


def _finite(value: int | float) -> bool:
    """A finite float, or an int small enough to be one (a 300-digit int overflows float())."""
    if isinstance(value, int):
        return abs(value) <= _LARGEST_FLOAT
    return math.isfinite(value)


_LARGEST_FLOAT = int(sys.float_info.max)


def _range_text(minimum: float | None, maximum: float | None, exclusive_min: bool = False) -> str:
    low = None if minimum is None else (f"greater than {minimum}" if exclusive_min else f"at least {minimum}")
    high = None if maximum is None else f"at most {maximum}"
    return " and ".join(part for part in (low, high) if part)


def one_of(*allowed: str) -> Rule:
    """One of ``allowed``; a near miss gets a suggestion."""

    def rule(value: Any) -> str:
        if value not in allowed:
            hint = suggest(value, allowed)
            raise Invalid(f"must be one of {', '.join(allowed)}, got {short(value)}",
                          hint if hint.startswith("did you mean") else None)
        return value

    return rule


def boolean(value: Any) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {short(value)}")
    return value


def text(value: Any) -> str:
    """A non-empty text."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"must be a non-empty text, got {short(value)}")
    return value


def optional(rule: Rule) -> Rule:
    """``rule``, or None."""

    def optional_rule(value: Any) -> Any:
        return None if value is None else rule(value)

    return optional_rule


def listed(rule: Rule, what: str, *, allow_single: bool = True, allow_empty: bool = True) -> Rule:
    """A list whose items pass ``rule`` (a single item stands for a list of one); a tuple comes out."""

    def list_rule(value: Any) -> tuple[Any, ...]:
        if value is None and allow_empty:
            return ()
        items = [value] if allow_single and not isinstance(value, (list, tuple)) and value is not None else value
        if not isinstance(items, (list, tuple)) or (not items and not allow_empty):
            raise Invalid(f"must be {what}, got {short(value)}")
        return tuple(rule(item) for item in items)

    return list_rule


def mapping(what: str, example: str | None = None) -> Rule:
    """A mapping (None stands for an empty one); checked further by whoever reads it."""

    def mapping_rule(value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise Invalid(f"must be {what}, got {short(value)}", example)
        return dict(value)

    return mapping_rule


#: A quoted user value is at most this long, so that a message stays one short line.
MAX_QUOTED_CHARS = 60


def short(value: Any) -> str:
    """``repr(value)``, cut to MAX_QUOTED_CHARS: a message quotes a prefix, never a whole document."""
    if isinstance(value, (dict, list, tuple)) and len(value) > MAX_QUOTED_CHARS:
        return f"a {type(value).__name__} of {len(value)} items"
    try:
        text_ = repr(value) if not isinstance(value, int) or value.bit_length() < 200 else "a very large number"
    except (ValueError, RecursionError):
        text_ = f"a {type(value).__name__}"
    return text_ if len(text_) <= MAX_QUOTED_CHARS else text_[: MAX_QUOTED_CHARS - 3] + "..."

