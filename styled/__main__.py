"""``python -m styled``: the same as the ``styled`` command."""

from styled.cli import entry_point

entry_point()
