"""The one exception type for problems a user can fix (bad config, bad file, bad shape).

The CLI prints these as one line; anything else is a bug and keeps its traceback.
"""


class WanjaxError(ValueError):
    """A user-facing error: the message names the field/file, the value, and what would work."""
