"""Progress on stderr (rich, imported only when a bar is drawn): a counting bar, or a spinner."""

from __future__ import annotations


def progress_bar(*columns, disable: bool = False):
    """A rich progress bar on stderr; ``columns`` go between the count and the times."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # stderr, so that a command whose stdout is JSON or a table stays clean.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=disable,
    )


def working(description: str):
    """A spinner with the time elapsed, on stderr, for a step that cannot count its progress (a
    converter in another process, a simulator's calibration passes); gone when the step ends."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(), TextColumn(description), TimeElapsedColumn(), console=Console(stderr=True), transient=True
    )
    progress.add_task(description, total=None)
    return progress
