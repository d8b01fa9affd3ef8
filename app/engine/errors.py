"""Errors a person can act on: each message is one line naming the problem and the fix."""


class GhostpenError(Exception):
    """A problem with the user's input or files; str(error) is the one-line message to show."""


class ModelLoadError(GhostpenError):
    """A model folder or file cannot be used."""


class InvalidParameterError(GhostpenError, ValueError):
    """A sampling parameter outside its allowed range."""


def first_line(text: object, limit: int = 200) -> str:
    """The first non-empty line of `text`, whitespace collapsed, cut to `limit` characters:
    libraries raise messages of many lines, and a status bar or a dialog line holds one."""
    lines = [line for line in str(text).splitlines() if line.strip()]
    line = " ".join(lines[0].split()) if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def user_message(error: BaseException, context: str,
                 details: str = "details in the log") -> str:
    """The one line to show a person for `error`. A GhostpenError already speaks to them: its
    first line. Anything else is a bug or a library's surprise: say what failed (`context`),
    the exception's type and first line, and where the traceback went (`details`)."""
    if isinstance(error, GhostpenError):
        return first_line(error, limit=400) or f"{context}."
    summary = first_line(f"{type(error).__name__}: {error}")
    return f"{context}: {summary} ({details})"
