"""bench --ssh against a real OpenSSH server on loopback, whose Python has only the runner's dependencies.

The "device" is this machine reached through sshd, with a virtual environment that holds
`edgeresnet[runner]` and nothing else (no torch, no TensorFlow): what a Raspberry Pi needs.
The runner itself travels with the artifacts. .ci/run installs openssh-server; elsewhere
the module skips when sshd is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import edgeresnet
from edgeresnet.assets import DEMO_DATA, DEMO_MODEL
from edgeresnet.data import open_dataset
from edgeresnet.runner.bench import BenchReport

from helpers import REPO, error_line, free_port, run_cli

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
if not Path(SSHD).exists():
    if os.environ.get("CI"):
        pytest.fail("sshd is missing: .ci/run installs openssh-server", pytrace=False)
    pytest.skip("sshd (openssh-server) is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """sshd on two loopback ports: the second one's device reports a nearly full disk."""
    root = tmp_path_factory.mktemp("device")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    tmpdir, fakebin = root / "device-tmp", root / "fakebin"
    tmpdir.mkdir()
    fakebin.mkdir()
    # The full disk: this device's df says 512 KB are free wherever it is asked.
    (fakebin / "df").write_text("#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
                                "echo '/dev/full 1000000 999488 512 100% /'\n")
    (fakebin / "df").chmod(0o755)
    port, full_port = free_port(), free_port()
    (root / "sshd_config").write_text(f"""
ListenAddress 127.0.0.1:{port}
ListenAddress 127.0.0.1:{full_port}
HostKey {root / 'host_key'}
PidFile {root / 'sshd.pid'}
AuthorizedKeysFile {root / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
SetEnv TMPDIR={tmpdir}
Match LocalPort {full_port}
    SetEnv TMPDIR={tmpdir} PATH={fakebin}:/usr/bin:/bin
""")
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    # known_hosts holds the server's real key; "impostor" holds another key for the same address
    # (a man in the middle), "stranger" none: both must be refused.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "other_key")], check=True)
    for name, key in (("known_hosts", "host_key"), ("impostor_hosts", "other_key")):
        (root / name).write_text("".join(f"[127.0.0.1]:{p} {(root / f'{key}.pub').read_text().split()[0]} "
                                         f"{(root / f'{key}.pub').read_text().split()[1]}\n" for p in (port, full_port)))
    (root / "stranger_hosts").write_text("")
    hosts = {"edgeresnet-device": (port, "known_hosts"), "full-device": (full_port, "known_hosts"),
             "unreachable-device": (free_port(), "known_hosts"), "impostor-device": (port, "impostor_hosts"),
             "stranger-device": (port, "stranger_hosts")}
    # StrictHostKeyChecking no here: edgeresnet's own command line must override it.
    (root / "ssh_config").write_text("".join(f"""
Host {name}
  HostName 127.0.0.1
  Port {host_port}
  User {user}
  IdentityFile {root / 'client_key'}
  IdentitiesOnly yes
  UserKnownHostsFile {root / known}
  StrictHostKeyChecking no
  LogLevel ERROR
""" for name, (host_port, known) in hosts.items()))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        server.kill()
        pytest.fail(f"sshd did not start: {server.stderr.read()[-2000:]}")
    yield {"config": root / "ssh_config", "tmpdir": tmpdir}
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def device_python(tmp_path_factory) -> Path:
    """A virtual environment with `edgeresnet[runner]` only, as on a Raspberry Pi."""
    venv = tmp_path_factory.mktemp("device-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"{REPO}[runner]"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    absent = subprocess.run([str(python), "-c", "import importlib.util as u; "
                             "print([m for m in ('torch', 'tensorflow') if u.find_spec(m)])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert absent == "[]", f"the runner extra pulled in {absent}"
    return python


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ssh-run") / "run"
    report = edgeresnet.compress(edgeresnet.load_model(DEMO_MODEL), open_dataset(DEMO_DATA),
                                 edgeresnet.parse_targets(["tflite-int8,openvino-fp32"]), out,
                                 options=edgeresnet.CompressOptions(latency_runs=5))
    return out, {row.target: row for row in report.results}


def _ssh_bench(device, python, *args):
    return run_cli("bench", *args, "--ssh-config", device["config"], "--remote-python", python, "--runs", "10",
                   "--threads", "2")


def test_bench_over_ssh_runs_on_the_device_and_leaves_nothing(device, device_python, run_dir):
    out, exported = run_dir
    result = _ssh_bench(device, device_python, out, "--ssh", "edgeresnet-device", "--data", DEMO_DATA, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = BenchReport.model_validate_json(result.stdout)
    assert report.device == "edgeresnet-device" and report.source == str(out)
    rows = {row.target: row for row in report.results}
    for target in ("tflite-int8", "openvino-fp32"):
        assert rows[target].status == "ok"
        assert rows[target].accuracy.top1 == pytest.approx(exported[target].top1)
        assert rows[target].accuracy.agreement == pytest.approx(exported[target].agreement)
    assert list(device["tmpdir"].iterdir()) == []  # the work directory is gone

    kept = _ssh_bench(device, device_python, out / "tflite-int8", "--ssh", "edgeresnet-device", "--keep-remote")
    assert kept.returncode == 0, kept.stderr[-3000:]
    (left,) = device["tmpdir"].iterdir()  # asked to keep it: exactly one directory, named in the log
    assert str(left) in kept.stderr
    shutil.rmtree(left)


def test_unreachable_host_is_one_line(device, device_python, run_dir):
    out, _ = run_dir
    line = error_line(_ssh_bench(device, device_python, out, "--ssh", "unreachable-device"))
    assert "cannot reach unreachable-device over ssh" in line


def test_a_device_whose_host_key_is_unknown_or_changed_is_refused(device, device_python, run_dir):
    out, _ = run_dir
    stranger = error_line(_ssh_bench(device, device_python, out, "--ssh", "stranger-device"))
    assert "host key of stranger-device is not in known_hosts" in stranger and "ssh stranger-device" in stranger
    impostor = error_line(_ssh_bench(device, device_python, out, "--ssh", "impostor-device"))
    assert "host key of impostor-device differs from the one in known_hosts" in impostor
    assert list(device["tmpdir"].iterdir()) == []  # refused before anything was sent


def test_device_with_no_free_disk_is_one_line(device, device_python, run_dir):
    out, _ = run_dir
    line = error_line(_ssh_bench(device, device_python, out, "--ssh", "full-device", "--data", DEMO_DATA))
    assert "full-device has 0.5 MB free" in line and "needs" in line
    assert list(device["tmpdir"].iterdir()) == []  # nothing copied, the empty work directory removed
