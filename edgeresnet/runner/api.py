"""``edgeresnet.bench``: what `edgeresnet bench` does, as a function (no torch, like the rest of
the runner): the data a run was evaluated on by default, here or on a device over SSH, and the
result written beside the run for `edgeresnet report`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..data import ImageDataset, open_dataset
from .bench import BenchConfig, BenchReport, locate_artifacts, result_name, run_directory
from .bench import bench as measure
from .remote import SSHDevice, remote_bench


def bench(
    path: str | Path,
    data: str | Path | ImageDataset | None = None,
    config: BenchConfig = BenchConfig(),
    *,
    ssh: SSHDevice | None = None,
    json_out: str | Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> BenchReport:
    """Latency, memory and accuracy of each artifact at ``path`` (a run directory, or one artifact).

    Args:
        path: a run directory written by ``compress``, an artifact's directory, or the file.
        data: the images accuracy is measured on (default: those the run was evaluated on, with
            the run's seeded subset, if they are here). Unlabelled images give agreement with
            PyTorch FP32 and no accuracy.
        config: threads, timed runs, batch, subset and the OpenVINO device.
        ssh: run on this device over SSH instead of here (``data`` must then be a path).
        json_out: also write the result to this file.
        log: called with progress lines.

    The result is also written beside the run as bench-<device>.json (one file's result merged
    into the run's), where ``report`` reads it.

    Example::

        result = edgeresnet.bench("runs/demo", config=BenchConfig(threads=4))
        print([(row.target, row.latency.p50_ms) for row in result.results if row.latency])
    """
    path = Path(path)
    # A path without artifacts is the first thing to say, before any note about data (measuring
    # and the ssh copy check each file's sha256 then: reading them here would be a second time).
    locate_artifacts(path)
    if data is None and (found := default_data(path, config.seed)):
        data, run_subset, labelled = found
        if config.limit is None and run_subset:
            config = config.model_copy(update={"limit": run_subset})  # the run's own seeded subset
        if not labelled:  # the run read them without labels (the embedded samples, say): so does bench
            config = config.model_copy(update={"labels": False})
    if data is None:
        log("no --data given and none recorded for this run: measuring latency and memory only")
    if ssh is not None:
        if isinstance(data, ImageDataset):
            data = Path(data.source)
        report = remote_bench(path, Path(data) if data is not None else None, config, ssh, log=log)
    else:
        dataset = data if isinstance(data, ImageDataset) or data is None else open_dataset(data)
        report = measure(path, dataset, config, progress=log)
    beside, merged = result_destination(report)
    beside.write_text(merged.model_dump_json(indent=2) + "\n")
    log(f"wrote {beside}" + (f" ({len(merged.results)} files)" if merged is not report else ""))
    if json_out and Path(json_out).resolve() != beside.resolve():
        Path(json_out).write_text(report.model_dump_json(indent=2) + "\n")
        log(f"wrote {json_out}")
    return report


def result_destination(report: BenchReport) -> tuple[Path, BenchReport]:
    """Where ``report`` goes beside its run for `edgeresnet report`, and what is written there.

    A run's bench of every file is written as it is. A bench of one file of it never drops the
    others' rows: it replaces that file's row in the run's result when the two were measured
    alike (same host CPU, settings and images), and otherwise goes beside the file instead.
    """
    source = Path(report.source)
    run = run_directory(source)
    destination = run / result_name(report.device)
    if source.resolve() == run.resolve() or not destination.is_file():
        return destination, report
    try:
        existing = BenchReport.model_validate_json(destination.read_text())
    except ValueError:  # an older schema or a damaged file: the new result replaces it
        return destination, report
    alike = (
        existing.config == report.config
        and existing.data == report.data
        and existing.host.get("cpu") == report.host.get("cpu")
    )
    if not alike:
        artifact_dir = source if source.is_dir() else source.parent
        return artifact_dir / result_name(report.device), report
    measured = {row.target: row for row in report.results}
    rows = [measured.pop(row.target, row) for row in existing.results] + list(measured.values())
    return destination, existing.model_copy(update={"created": report.created, "results": rows})


def default_data(path: Path, seed: int = 0) -> tuple[Path, int | None, bool] | None:
    """The images the run at `path` was evaluated on, if its report.json names data that exist here:
    (their path, the size of the seeded subset it used or None for all of them, whether the run
    read them with labels: a run on the embedded samples without --data, or on one folder of
    images for a many-class model, read them unlabelled).

    A run evaluated on a subset (compress --limit) gets the same subset back: the
    fingerprint decides, so that the manifest's baseline applies to what bench measures.
    """
    report = run_directory(path) / "report.json"
    if not report.is_file():
        return None
    recorded = json.loads(report.read_text()).get("data", {})
    source = Path(recorded.get("source", ""))
    if not source.name or not source.exists():
        return None
    labelled = recorded.get("labelled", True)
    data = open_dataset(source)
    data = data if labelled else data.unlabelled()
    samples = recorded.get("samples")
    if samples and samples < len(data) and data.subset(samples, seed).fingerprint() == recorded.get("fingerprint"):
        return source, samples, labelled
    return source, None, labelled
