"""The one exception type users see.

Every problem a user can fix (bad data, bad options, a checkpoint of another config) is raised as
:class:`UserError` with a message that says what is wrong, which file, and what to do. The CLI prints the
message alone (no traceback) and exits with code 2.
"""


class UserError(Exception):
    """A problem with the user's input, reported as one clear message; the CLI exits with code 2."""

    exit_code = 2
