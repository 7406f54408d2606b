"""Errors the user can cause (a bad value, file or folder, a diverged run): the commands print their
message alone, ``error: <message>``, and exit with status 1 (``cli/app.py``). Their message says what
is wrong and where (the key, the file and line), and how to fix it where that is not obvious.

Everything else (a bug) keeps its traceback."""

from __future__ import annotations


class UserError(ValueError):
    """An error about the user's input: the message is all the user needs to see."""


class ConfigError(UserError):
    """A config value that cannot work (an unknown name, an out-of-range number); names the key."""


class MissingInputError(UserError, FileNotFoundError):
    """An input the user named (a source, a model file, a folder) does not exist; names it."""


class CheckpointError(UserError):
    """A file that cannot be used as asked: one line naming the file and what is wrong with it."""
