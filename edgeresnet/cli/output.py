"""How every command speaks: results on stdout (a table, or JSON with --json), progress and
messages on stderr, and an error as one line with its exit code."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import click


def fail(message: str, code: int = 2):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def log(message: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks for the job
        click.echo(message, err=True)


def work_on_stderr():
    """While the work runs, whatever a library prints (NNCF's progress bars) goes to stderr:
    stdout carries the result alone, so that `--json` output parses."""
    return contextlib.redirect_stdout(sys.stderr)


def print_json(payload) -> None:
    click.echo(json.dumps(payload, indent=2))
