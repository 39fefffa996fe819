"""The SSH runner's remote command: hostile names reach the device as names, never as shell syntax.

The command is run here by bash, as the device's login shell would run it, with a stand-in
Python that records its arguments; nothing the names say may execute.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from edgeresnet.runner.bench import BenchConfig
from edgeresnet.runner.remote import SSHDevice, _bench_command

HOSTILE = "we ird $(touch PWNED1) `touch PWNED2`; touch PWNED3 && echo 'q\"uote' | cat > PWNED4 *"


def test_hostile_workdir_python_and_data_names_are_not_interpreted(tmp_path):
    workdir = tmp_path / HOSTILE
    workdir.mkdir()
    recorder = tmp_path / f"py {HOSTILE}"
    recorder.mkdir()
    python = recorder / "python;x"
    python.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                      "json.dump({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'path': os.environ['PYTHONPATH']},"
                      " open(os.environ['RECORD'], 'w'))\n")
    python.chmod(0o755)
    record = tmp_path / "record.json"
    data = Path("images.zip;touch PWNED5")
    command = _bench_command(SSHDevice("device", python=str(python)), str(workdir), data,
                             BenchConfig(threads=2, limit=10))
    subprocess.run(["bash", "-c", command], check=True, cwd=tmp_path, env={"RECORD": str(record), "PATH": "/usr/bin:/bin"})

    seen = json.loads(record.read_text())
    assert seen["cwd"] == str(workdir)
    assert seen["path"].startswith(str(workdir) + "/")
    assert seen["argv"][seen["argv"].index("--data") + 1] == "data.zip;touch PWNED5"
    assert "--threads" in seen["argv"] and "--limit" in seen["argv"]
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


def test_home_relative_python_keeps_its_tilde_meaning_only():
    command = _bench_command(SSHDevice("device", python="~/venv $(id)/bin/python"), "/tmp/w", None, BenchConfig())
    assert '"$HOME"/' + shlex.quote("venv $(id)/bin/python") in command
