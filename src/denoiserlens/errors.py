"""The one exception type for a user's mistake: the CLI prints its message and exits with status 2."""


class UserError(Exception):
    """A bad input (path, image, sigma, checkpoint...): one clear line, no traceback, exit status 2."""
