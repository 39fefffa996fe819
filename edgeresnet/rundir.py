"""Run directories appear whole or not at all.

Everything is written to a hidden sibling first and renamed into place only when the
run has succeeded, so an error, a Ctrl-C or a full disk never leaves a half-written
run directory that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import EdgeResNetError


def check_output_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise EdgeResNetError(f"--out {out} is a file", "choose a directory path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise EdgeResNetError(
            f"--out {out} already holds files", "choose another --out, or pass --overwrite to replace it"
        )
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a file where a folder should be, a read-only mount, no permission
        raise EdgeResNetError(
            f"cannot create the folder of --out {out}: {error.strerror}", "choose an --out in a writable directory"
        ) from None
    if not os.access(parent, os.W_OK):
        raise EdgeResNetError(f"cannot write to {parent}", "choose an --out in a writable directory")


@contextlib.contextmanager
def staged_directory(out: Path, overwrite: bool = False):
    """Yield a fresh directory to fill; it becomes `out` when the block ends without error."""
    check_output_dir(out, overwrite)
    staging = out.resolve().parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _promote(staging, out)


def partial_path(out: Path) -> Path:
    """Where a resumable run of `out` keeps its work until it finishes."""
    return out.resolve().parent / f".{out.name}.partial"


@contextlib.contextmanager
def resumable_directory(
    out: Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    keep: Callable[[Path], bool] = lambda staging: False,
    log=lambda message: None,
):
    """Like staged_directory, but an interrupted run whose work `keep` says is worth keeping
    stays in `.NAME.partial`, where `resume` continues it. Without `resume`, it starts over."""
    staging = partial_path(out)
    if resume and not staging.is_dir() and not overwrite and out.is_dir() and any(out.iterdir()):
        raise EdgeResNetError(
            f"--out {out} holds a finished run: there is nothing to resume",
            "its results are in report.json; drop --resume and choose another --out to run again",
        )
    if resume and staging.is_dir():
        log(f"resuming the interrupted run in {staging}")
    else:
        if staging.is_dir():
            log(f"starting over: the interrupted run in {staging} is discarded (pass --resume to continue it)")
        check_output_dir(out, overwrite)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        if keep(staging):
            log(f"the work so far is kept in {staging}: rerun the same command with --resume to continue")
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    _promote(staging, out)


def _promote(staging: Path, out: Path) -> None:
    """Rename the finished run into place, replacing an earlier run at `out` (--overwrite)."""
    if out.exists():
        retired = out.resolve().parent / f".{out.name}.old-{os.getpid()}"
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out)


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write ``path`` whole or not at all: a stop mid-write (a signal, a full disk) leaves the
    old file or none, never a truncated one that a resumed run would then read."""
    partial = path.with_name(path.name + ".partial")
    if isinstance(data, str):
        partial.write_text(data)
    else:
        partial.write_bytes(data)
    os.replace(partial, path)
