"""The one exception type for mistakes a user can fix (bad files, bad folders, bad versions)."""


class CmarError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits non-zero."""
