"""Errors a user can cause and fix. The CLI prints their message (no traceback) and exits non-zero."""


class UserError(ValueError):
    """Bad input: the message says what was wrong and how to fix it."""


class MissingDataError(UserError, FileNotFoundError):
    """A dataset root or weights file is not where we looked."""
