"""One error type the user sees.

Every failure caused by the user's input (a file, a flag, a recipe, a data set) raises
an ``EdgeResNetError``. Its message is one line that says what was wrong and how to fix
it; the CLI prints it and exits with code 2, without a traceback. Anything else that
escapes is a bug in edgeresnet and keeps its traceback.
"""

from __future__ import annotations

import re


class EdgeResNetError(Exception):
    """A problem with the user's input, explained in one line with a fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        if self.hint:
            text += f"; {self.hint.rstrip('.')}"
        text = " ".join(text.split())
        return text if text.endswith("?") else text + "."


class CheckpointError(EdgeResNetError):
    """The model file cannot be read, or is not safe to read."""


class ArchitectureError(EdgeResNetError):
    """The weights do not fit a ResNet of the zoo, or the asked-for architecture."""


class DataError(EdgeResNetError):
    """The data set is missing, empty, unlabelled or unreadable."""


class TargetError(EdgeResNetError):
    """An unknown or conflicting export target."""


class ConversionError(EdgeResNetError):
    """A converter could not take the model; the message carries its reason."""


class VerificationError(EdgeResNetError):
    """An exported artifact does not do what the PyTorch model does."""


class AccuracyDropError(EdgeResNetError):
    """A finished run whose artifacts lost more top-1 than allowed: kept, marked failed."""

    exit_code = 3  # not bad input (2): the run worked, its result is not good enough

    def __init__(self, message: str, hint: str | None = None, *, report=None):
        super().__init__(message, hint)
        self.report = report  # the run's RunReport: the results still print


def require(modules: tuple[str, ...], what: str, extra: str) -> None:
    """Fail with the pip extra to install when an optional backend is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgeResNetError(
            f"{what} needs {', '.join(missing)}, which is not installed",
            f'install the extra: pip install "edgeresnet[{extra}]"',
        )


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(text: object, limit: int = 600) -> str:
    """The first non-blank line of a tool's message (or of an exception, as str() shows it), without
    terminal colours."""
    lines = [_ANSI.sub("", line).strip() for line in str(text).splitlines()]
    lines = [line for line in lines if line]
    return lines[0][:limit] if lines else ""


def closest(name: str, choices, n: int = 3) -> str:
    """'did you mean' text for an unknown name, or a list of what exists."""
    import difflib

    choices = sorted(choices)
    matches = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if matches:
        return "did you mean " + " or ".join(repr(m) for m in matches) + "?"
    return "choose one of: " + ", ".join(choices)
