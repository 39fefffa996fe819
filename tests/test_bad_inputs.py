"""Every case of the bad-input catalogue (tests/bad_inputs.py): one line, exit code 2, no
traceback, nothing half-written, no code run, and the message docs/bad-inputs.md shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bad_inputs import CASES, DOCS, RUN, Case, shown

from edgeresnet.cli import main


def run_case(case: Case, root: Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of the case's command, in this process."""
    args = [str(root / "run") if arg == RUN else str(arg) for arg in case.build(root)]
    with case.during():
        result = CliRunner().invoke(main, args, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


FAILING = [case for case in CASES if case.exit_code != 0]
ACCEPTED = [case for case in CASES if case.exit_code == 0]


@pytest.mark.parametrize("case", ACCEPTED, ids=[case.name for case in ACCEPTED])
def test_odd_but_valid_input_is_accepted(case, tmp_path):
    code, stdout, stderr = run_case(case, tmp_path)
    assert code == 0, stderr[-2000:]
    assert (tmp_path / "run" / "report.json").is_file()


@pytest.mark.parametrize("case", FAILING, ids=[case.name for case in FAILING])
def test_bad_input_fails_cleanly(case, tmp_path):
    code, stdout, stderr = run_case(case, tmp_path)
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code == case.exit_code, (code, stderr[-2000:])
    assert "Traceback" not in stderr and len(errors) == 1, stderr[-2000:]
    assert stdout == ""
    assert case.expect.lower() in errors[0].lower(), errors[0]
    assert not (tmp_path / "run").exists() and not list(tmp_path.rglob(".*.partial"))  # nothing half-written
    assert not (tmp_path / "PWNED").exists()  # no payload ran
    assert f"`{shown(case, stderr, tmp_path)}`" in DOCS.read_text(), "regenerate docs/bad-inputs.md: python tests/bad_inputs.py"


def test_the_docs_table_has_a_row_per_case():
    rows = [line for line in DOCS.read_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| input", "| ---"))]
    assert [row.split(" | ")[0][2:] for row in rows] == [case.name for case in CASES]
    assert len(CASES) >= 30
