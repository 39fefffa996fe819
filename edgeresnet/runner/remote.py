"""bench --ssh: the same benchmark, run on a device over SSH, the JSON brought back.

What crosses: one tar stream holding the artifacts (with their manifests), the evaluation
data as it is on disk, and the runner itself as a zip of this package (pure Python,
imported from the zip: the device needs only the runner's dependencies, e.g.
`pip install numpy pillow pydantic click rich pyyaml ai-edge-litert`, no torch and no
TensorFlow). It is unpacked into a fresh directory under the device's $TMPDIR (or /tmp),
which is removed afterwards unless `keep` is set. Plain `ssh` is used, so
~/.ssh/config, keys and agents work as they do for the user; BatchMode keeps it from
ever waiting at a password prompt. Host keys are checked strictly, whatever the config
says: a device whose key is not in known_hosts, or differs from it, is refused (it could
be anyone, and it is about to receive the user's models and data).
"""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeResNetError
from .bench import REFERENCE_NAME, BenchConfig, BenchReport, find_artifacts

RUNNER_ZIP = "edgeresnet-runner.zip"
SSH_UNREACHABLE = 255  # ssh's own exit status for connection and authentication failures
# The device needs room for the bundle unpacked, plus the decoded images the bench maps.
DISK_FACTOR = 3


@dataclass(frozen=True)
class SSHDevice:
    destination: str  # user@host, or a Host of the ssh config
    config_file: Path | None = None  # ssh -F; default: the user's ~/.ssh/config
    python: str = "python3"  # the device's Python that has the runner's dependencies
    keep: bool = False  # leave the work directory on the device (its path is logged)
    connect_timeout: int = 15

    def command(self, remote: str) -> list[str]:
        # Options on the command line win over ~/.ssh/config, so no config can turn the check off.
        options = [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
        ]
        if self.config_file:
            options = ["-F", str(self.config_file), *options]
        return ["ssh", *options, self.destination, remote]


def remote_bench(
    path: Path, data: Path | None, config: BenchConfig, device: SSHDevice, log=lambda message: None
) -> BenchReport:
    """Benchmark the artifacts at `path` on `device`; `data` is copied there as it is."""
    artifacts = find_artifacts(path)  # sha256 checked here, before anything is copied
    with tempfile.TemporaryDirectory(prefix="edgeresnet-ssh-") as tmp:
        bundle = _bundle(artifacts, data, Path(tmp) / "bundle.tar.gz")
        log(f"{device.destination}: copying {bundle.stat().st_size / 1e6:.1f} MB (artifacts, data, runner)")
        workdir = _ssh(device, 'mktemp -d "${TMPDIR:-/tmp}/edgeresnet-bench.XXXXXX"').strip()
        try:
            _check_free_disk(device, workdir, DISK_FACTOR * _unpacked_size(bundle))
            with open(bundle, "rb") as stream:
                _ssh(device, f"tar -xzf - -C {shlex.quote(workdir)}", stdin=stream)
            log(f"{device.destination}: benchmarking in {workdir}")
            # Exit status 3: some files failed and the others were measured; the JSON says which.
            output = _ssh(device, _bench_command(device, workdir, data, config), stream_stderr=True, ok_codes=(0, 3))
        finally:
            if device.keep:
                log(f"{device.destination}: kept {workdir}")
            else:
                _ssh(device, f"rm -rf {shlex.quote(workdir)}")
    try:
        report = BenchReport.model_validate_json(output)
    except ValueError:
        raise EdgeResNetError(
            f"{device.destination} returned no benchmark result",
            "run the same `edgeresnet bench` on the device to see why",
        ) from None
    return report.model_copy(update={"device": device.destination, "source": str(path)})


def _bench_command(device: SSHDevice, workdir: str, data: Path | None, config: BenchConfig) -> str:
    args = [
        "-m",
        "edgeresnet",
        "bench",
        "run",
        "--json",
        "--runs",
        str(config.runs),
        "--warmup",
        str(config.warmup),
        "--batch",
        str(config.batch),
        "--openvino-device",
        config.device,
        "--seed",
        str(config.seed),
    ]
    if config.threads:  # else every core of the device
        args += ["--threads", str(config.threads)]
    if config.limit:
        args += ["--limit", str(config.limit)]
    if data is not None:
        args += ["--data", _data_name(data)]
        if not config.labels:
            args += ["--no-labels"]
    quoted = " ".join(shlex.quote(arg) for arg in args)
    return (
        f"cd {shlex.quote(workdir)} && PYTHONPATH={shlex.quote(workdir + '/' + RUNNER_ZIP)} "
        f"{_remote_path(device.python)} {quoted}"
    )


def _remote_path(path: str) -> str:
    """Quoted for the device's shell, keeping a leading ~/ meaning the device user's home."""
    return '"$HOME"/' + shlex.quote(path[2:]) if path.startswith("~/") else shlex.quote(path)


def _data_name(data: Path) -> str:
    # A folder travels as a zip of itself: open_dataset reads both, with the same fingerprint.
    return "data.zip" if data.is_dir() else f"data{''.join(data.suffixes[-1:])}"


def _bundle(artifacts, data: Path | None, output: Path) -> Path:
    """One .tar.gz: run/<artifact dirs>, run/reference-predictions.npz, the data, the runner zip."""
    run_dir = artifacts[0][1].parent  # the run's directory: where compress put the reference predictions
    with tarfile.open(output, "w:gz") as tar:
        for manifest, directory in artifacts:
            tar.add(directory / "manifest.json", f"run/{directory.name}/manifest.json")
            for name in manifest.files:
                tar.add(directory / name, f"run/{directory.name}/{name}")
        if (run_dir / REFERENCE_NAME).is_file():
            tar.add(run_dir / REFERENCE_NAME, f"run/{REFERENCE_NAME}")
        if data is not None:
            if data.is_dir():
                _add_bytes(tar, "data.zip", _zip_folder(data))
            else:
                tar.add(data, _data_name(data))
        _add_bytes(tar, RUNNER_ZIP, runner_zip())
    return output


def runner_zip() -> bytes:
    """This package as a zip that Python imports from: the code only, not the demo model and images."""
    package = Path(__file__).resolve().parents[1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(package.rglob("*.py")):
            archive.write(file, f"edgeresnet/{file.relative_to(package).as_posix()}")
    return buffer.getvalue()


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # JPEG and PNG are compressed already
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(folder).as_posix())
    return buffer.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(payload))


def _unpacked_size(bundle: Path) -> int:
    with tarfile.open(bundle, "r:gz") as tar:
        return sum(member.size for member in tar.getmembers())


def _check_free_disk(device: SSHDevice, workdir: str, needed: int) -> None:
    output = _ssh(device, f"df -Pk {shlex.quote(workdir)}")
    try:
        free = int(output.strip().splitlines()[-1].split()[3]) * 1024
    except (IndexError, ValueError):
        return  # a df we cannot read: let tar report a full disk itself
    if free < needed:
        raise EdgeResNetError(
            f"{device.destination} has {free / 1e6:.1f} MB free in {workdir.rsplit('/', 1)[0]}, "
            f"the benchmark needs {needed / 1e6:.1f} MB",
            "free space on the device, or point TMPDIR there at a larger disk",
        )


def _refuse_host_key(destination: str, stderr: str):
    if "has changed" in stderr or "HAS CHANGED" in stderr:
        raise EdgeResNetError(
            f"the host key of {destination} differs from the one in known_hosts: it may not be your "
            "device (or the device was reinstalled)",
            "check its new key's fingerprint on the device, "
            f"then replace the old one: ssh-keygen -R HOST, and connect once with `ssh {destination}`",
        )
    raise EdgeResNetError(
        f"the host key of {destination} is not in known_hosts, and edgeresnet never accepts one unseen",
        f"connect once with `ssh {destination}` and check the fingerprint it shows",
    )


def _ssh(device: SSHDevice, remote: str, *, stdin=None, stream_stderr: bool = False, ok_codes=(0,)) -> str:
    """Run `remote` on the device; its stdout. Failures (an exit status not in ``ok_codes``)
    become one line naming the device."""
    try:
        done = subprocess.run(
            device.command(remote),
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
        )
    except FileNotFoundError:
        raise EdgeResNetError("ssh is not installed here", "install an OpenSSH client") from None
    stderr = done.stderr.decode(errors="replace")
    if stream_stderr:  # the device's progress; its error line, if any, is raised below
        sys.stderr.write("".join(line for line in stderr.splitlines(keepends=True) if not line.startswith("error: ")))
    if done.returncode == SSH_UNREACHABLE and "Host key verification failed" in stderr:
        _refuse_host_key(device.destination, stderr)
    if done.returncode == SSH_UNREACHABLE:
        reason = stderr.strip().splitlines()[-1] if stderr.strip() else "no reason given"
        raise EdgeResNetError(
            f"cannot reach {device.destination} over ssh: {reason}",
            f"check that `ssh {device.destination} true` works without a password prompt",
        )
    if done.returncode not in ok_codes:
        errors = [line[len("error: ") :] for line in stderr.splitlines() if line.startswith("error: ")]
        reason = errors[-1] if errors else (stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise EdgeResNetError(f"on {device.destination}: {reason}")
    return done.stdout.decode(errors="replace")
