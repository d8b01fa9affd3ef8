"""Errors a person can act on: each message is one line naming the problem and the fix."""


class GhostpenError(Exception):
    """A problem with the user's input or files; str(error) is the one-line message to show."""


class ModelLoadError(GhostpenError):
    """A model folder or file cannot be used."""


class InvalidParameterError(GhostpenError, ValueError):
    """A sampling parameter outside its allowed range."""
