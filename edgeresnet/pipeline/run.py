"""compress: a recipe's stages in order, then export (verified), evaluation and the report.

    input ─▶ prune ─▶ distill ─▶ qat, once per int8 runtime asked for ─▶ export ─▶ evaluate, time ─▶ report

The pipeline only sequences stages (edgeresnet/stages) and writes the run directory:

    RUN/
      recipe.yaml            the resolved recipe: every setting, defaults included
      run.json               what the run was started with; --resume checks it
      log.txt                what the run printed, with times
      stages/NN-<stage>/     per stage: metrics.json, and model.safetensors or checkpoints/
      stages.json, stages.png  accuracy, MACs and size per stage, and the plot of accuracy
      report.json            RunReport: accuracy, size and latency per target
      reference-predictions.npz  PyTorch FP32's top-1 per image of the data, for `bench`
      <target>/manifest.json  one directory per artifact
      <target>/<arch>-<target>.<ext>

Under torchrun every process calls ``compress``: rank 0 runs everything above and writes
it, the others take part in the training stages only (edgeresnet/distributed.py).

The run is written in a hidden `.RUN.partial` directory and renamed into place when it
succeeds. Interrupted during a stage, that directory stays: rerun with ``resume=True`` and
finished stages are loaded, a training stage continues from its last finished epoch, and
the result is the same as an uninterrupted run's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .. import distributed, interrupts
from ..data import ImageDataset, normalize, sample_pixels
from ..errors import AccuracyDropError
from ..export import ExportConfig, Target, export, grouped
from ..loading import fit_labels
from ..models.model import Model
from ..recipes import Recipe
from ..run_report import RunReport, plot_stages
from ..rundir import partial_path, resumable_directory
from ..runner.bench import REFERENCE_NAME
from ..runner.host import host_info
from ..stages.ptq import PtqConfig, calibrate
from ..training.config import Execution, TrainConfig
from ..training.loop import check_precision
from .inputs import describe_data
from .plan import Plan, accuracy_limit, check_plan, check_unlabelled_training, failure_reason, learns_from_labels
from .rows import artifact_row, pytorch_row
from .stage_runner import StageRunner, run_identity


class CompressOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    calibration: PtqConfig = PtqConfig()
    export: ExportConfig = ExportConfig()
    threads: int = Field(default=2, ge=1)
    batch_size: int = Field(default=256, ge=1)
    latency_runs: int = Field(default=100, ge=1)
    latency_warmup: int = Field(default=10, ge=0)


def run_compress(
    model: Model,
    data: ImageDataset,
    targets: list[Target],
    out: Path,
    *,
    recipe: Recipe | None = None,
    train_data: ImageDataset | None = None,
    options: CompressOptions = CompressOptions(),
    overwrite: bool = False,
    resume: bool = False,
    max_accuracy_drop: float | None = None,
    execution: Execution = Execution(),
    log: Callable[[str], None] = lambda message: None,
) -> RunReport | None:
    """Run ``recipe``'s stages on ``model`` and export the result to each target, evaluated on ``data``:
    the sequencing under ``edgeresnet.compress`` (pipeline/api.py), which reads the inputs, labels
    ``data`` as the model reads it and checks what needs neither torch nor data first.

    ``train_data`` feeds the training stages, pruning's importance and int8 calibration
    (``data`` calibrates when it is absent and nothing trains). Returns what report.json holds
    (``report.directory`` is ``out``); under torchrun, on rank 0 (the other processes train,
    write nothing and return None). ``execution``: the device and loader of the training stages.

    An artifact that loses more than ``max_accuracy_drop`` points of top-1 against ``model``
    (default: the recipe's; none without a recipe) fails the run: it is written all the same,
    marked failed in report.json and in that artifact's manifest, and AccuracyDropError raised.

    ``data`` may be unlabelled (``data.labelled`` False): the files are calibrated, verified and
    timed on it, and every accuracy is None. The accuracy guard cannot judge without labels: an
    explicit ``max_accuracy_drop`` is then an error, the recipe's default is skipped with a message.
    """
    if train_data is not None and learns_from_labels(recipe):  # calibration alone reads no labels
        train_data = fit_labels(model.num_classes, train_data, log)
    plan = check_plan(recipe, targets, train_data)  # a wrong combination fails before any work
    check_unlabelled_training(recipe, train_data)
    max_accuracy_drop = accuracy_limit(max_accuracy_drop, recipe, data, log)
    for _, config in plan.stages:
        if isinstance(config, TrainConfig):
            check_precision(config, execution.device)
    with distributed.process_group(execution.device) as world:
        if not world.is_main:
            runner = StageRunner.follower(partial_path(out), execution)
            current = model
            for name, config in plan.stages:
                current = runner.run(name, config, current, teacher=model, train=train_data, schemes=plan.schemes)
            return None
        return _lead(
            model,
            data,
            targets,
            out,
            recipe,
            train_data,
            options,
            plan,
            overwrite=overwrite,
            resume=resume,
            max_accuracy_drop=max_accuracy_drop,
            execution=execution,
            log=log,
        )


def _lead(
    model: Model,
    data: ImageDataset,
    targets: list[Target],
    out: Path,
    recipe: Recipe | None,
    train_data: ImageDataset | None,
    options: CompressOptions,
    plan: Plan,
    *,
    overwrite: bool,
    resume: bool,
    max_accuracy_drop: float | None,
    execution: Execution,
    log,
) -> RunReport:
    """compress on one process, or on rank 0 of several: every stage, every file."""
    calibration_config = plan.calibration or options.calibration
    seconds: dict[str, float] = {}

    with resumable_directory(
        Path(out), overwrite=overwrite, resume=resume, keep=StageRunner.has_progress, log=log
    ) as run:
        log = logging_to(run / "log.txt", log)

        @contextmanager
        def stage(name: str):
            start = time.perf_counter()
            yield
            interrupts.check()  # a stop that a library swallowed ends the run here, not later
            seconds[name] = round(time.perf_counter() - start, 3)
            log(f"{name} done in {seconds[name]:.1f} s")

        world = distributed.world()
        if world.distributed and plan.stages:
            log(f"training stages run on {world.size} processes (torchrun), device {execution.device}")
        identity = run_identity(model, data, train_data, recipe, targets, options)
        runner = StageRunner(run, identity, data, options.threads, options.batch_size, log, execution)
        if recipe is not None:
            (run / "recipe.yaml").write_text(recipe.to_yaml())
        (run / "config.json").write_text(
            json.dumps(
                {
                    "targets": [t.name for t in targets],
                    "options": options.model_dump(),
                    "execution": {**execution.model_dump(), "processes": world.size},
                },
                indent=2,
            )
            + "\n"
        )
        spec = model.preprocess
        with stage("evaluate-fp32"):
            baseline = runner.record_input(model)
        # Per-image FP32 predictions: `edgeresnet bench` measures agreement against them, on any device.
        fingerprint = data.fingerprint()  # hashes every sample name (and pixels of an .npz): once
        np.savez(run / REFERENCE_NAME, predictions=baseline.predictions, data=fingerprint)

        current = model
        for name, config in plan.stages:
            with stage(name):
                current = runner.run(name, config, current, teacher=model, train=train_data, schemes=plan.schemes)
        sources = runner.sources(targets)  # which model each target is exported from

        calibration = None
        if any(t.needs_calibration for t in targets):
            with stage("calibrate"):
                calibration = calibrate(model, train_data or data, calibration_config)
        with stage("export"):
            samples = sample_pixels(data, spec, min(options.export.verify_samples, len(data)), seed=1)
            artifacts = []
            for source, group in grouped(sources):
                artifacts += export(
                    source.model,
                    group,
                    run,
                    samples=samples,
                    calibration=calibration.pixels if calibration else None,
                    config=options.export,
                    threads=options.threads,
                    ptq=calibration_config,
                    log=log,
                )

        limit = max_accuracy_drop  # resolved by compress(): the flag, else the recipe's, and none without labels
        described = describe_data(data, fingerprint)
        rows = [pytorch_row(model, baseline, normalize(samples[:1], spec), options)]
        for artifact in sorted(artifacts, key=lambda a: targets.index(a.target)):
            with stage(f"evaluate-{artifact.target.name}"):
                rows.append(
                    artifact_row(
                        artifact,
                        data,
                        fingerprint,
                        spec,
                        samples[:1],
                        baseline,
                        sources[artifact.target],
                        options,
                        limit,
                        described,
                    )
                )
        failures = [reason for row in rows if (reason := failure_reason(row.target, row.delta_top1, limit))]
        records = runner.records
        (run / "stages.json").write_text(json.dumps([r.model_dump() for r in records], indent=2) + "\n")
        plot_stages(records, rows, run / "stages.png")
        report = RunReport(
            model=model.describe(),
            data=described,
            calibration=calibration.describe() if calibration else None,
            results=rows,
            seconds=seconds,
            host=host_info(options.threads),
            recipe=recipe.to_dict() if recipe is not None else None,
            stages=records,
            max_accuracy_drop=limit,
            failures=failures,
        )
        report._directory = out  # not in report.json, which lies in it
        (run / "report.json").write_text(report.model_dump_json(indent=2) + "\n")
    if failures:
        failed = AccuracyDropError(
            f"{failures[0]}{f' (and {len(failures) - 1} more)' if len(failures) > 1 else ''}; "
            f"the run is kept in {out}, marked failed in report.json and the manifests",
            "train longer or prune less, or pass a larger --max-accuracy-drop knowingly",
            report=report,
        )
        raise failed
    return report


def logging_to(path: Path, log: Callable[[str], None]) -> Callable[[str], None]:
    def both(message: str) -> None:
        log(message)
        with open(path, "a") as file:
            file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {message}\n")

    return both
