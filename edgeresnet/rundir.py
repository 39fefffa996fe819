"""Run directories appear whole or not at all.

Everything is written to a hidden sibling first and renamed into place only when the
run has succeeded, so an error, a Ctrl-C or a full disk never leaves a half-written
run directory that looks finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .errors import EdgeResNetError


def check_output_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise EdgeResNetError(f"--out {out} is a file", "choose a directory path")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise EdgeResNetError(f"--out {out} already holds files", "choose another --out, or pass --overwrite to replace it")
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
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
    if out.exists():
        retired = out.resolve().parent / f".{out.name}.old-{os.getpid()}"
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(out)
