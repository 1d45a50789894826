"""The one exception type a user is meant to read.

Everything that fails because of what the user asked for (a bad CSV, an unknown
task, a method that cannot run on a model) raises ``ExplorerError`` with a
message that says what was wrong and how to fix it. The CLI prints it as one
line and the app shows it in an error box; neither shows a traceback.
"""


class ExplorerError(ValueError):
    """A problem with the user's input, explained in the message."""


class Cancelled(RuntimeError):
    """Raised when a progress callback asks long work to stop."""
