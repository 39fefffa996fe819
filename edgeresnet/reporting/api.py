"""``edgeresnet.report``: what `edgeresnet report` does, as a function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .render import write_comparison
from .sources import Row, Source, load_sources, verdicts


@dataclass(frozen=True)
class Comparison:
    """What ``report`` wrote and found: the files, one row per file per run and device, where each
    result was measured, and per device the fastest file within the accuracy budget."""

    files: list[Path]
    rows: list[Row]
    sources: list[Source]
    per_device: list[str]

    def to_dict(self) -> dict:
        """What `edgeresnet report --json` prints."""
        return {
            "files": [str(path) for path in self.files],
            "rows": [vars(row) | {"samples_ms": None} for row in self.rows],
            "per_device": self.per_device,
        }


def report(
    runs: Sequence[str | Path],
    out: str | Path = "comparison",
    *,
    max_accuracy_drop: float = 1.0,
    log: Callable[[str], None] = lambda message: None,
) -> Comparison:
    """Compare run directories, benchmarked on one or more devices, in one table and three plots.

    Args:
        runs: run directories written by ``compress`` (and measured by ``bench`` on any device).
        out: the directory for comparison.md, comparison.html and the PNG plots.
        max_accuracy_drop: the top-1 points below FP32 within which each device's fastest file is named.
        log: called with a line per file written.

    Example::

        comparison = edgeresnet.report(["runs/ptq", "runs/qat"], "comparison")
        print(comparison.per_device)
    """
    run_dirs = [Path(run) for run in runs]
    rows, sources = load_sources(run_dirs)
    notes = verdicts(rows, {(source.run, source.device): source.host for source in sources}, max_accuracy_drop)
    written = write_comparison(run_dirs, rows, Path(out), notes, sources)
    for path in written:
        log(f"wrote {path}")
    return Comparison(files=written, rows=rows, sources=sources, per_device=notes)
