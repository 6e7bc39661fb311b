"""The error root for what the user must fix: bad data, bad options, a model that does not fit the data or the
request. The command prints such an error as one line; any other exception is skinml's own fault and keeps its
traceback (skinml.app.console)."""

from __future__ import annotations


class UserError(Exception):
    """Something the user must fix; its message is one line that names the file, row, field or option."""


class OptionError(UserError, ValueError):
    """An option or recipe field with a value skinml does not accept."""


class DataError(UserError, ValueError):
    """Data that cannot be used as asked: no images of a class, a manifest that does not match the folder."""


class ModelMismatchError(UserError, ValueError):
    """A logged model that does not fit what it is asked to do: other classes, a missing training run."""
