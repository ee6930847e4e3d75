"""A plugin whose hook name has a typo: loading it must fail loudly."""

from styled import hookimpl


@hookimpl
def register_loses(job):
    return []
