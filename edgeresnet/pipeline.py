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
from torch import nn

from . import distributed, interrupts
from .data import ImageDataset, normalize, open_dataset, sample_pixels
from .errors import AccuracyDropError, EdgeResNetError
from .evaluate import Accuracy, agreement, evaluate
from .export import Artifact, ExportConfig, Target, export, grouped, parse_targets
from .export.targets import check_calibration_source
from .loading import as_model, fit_labels
from .manifest import AccuracySpec, write_manifest
from .model import Model
from .recipes import Recipe
from .report import ResultRow, RunReport, plot_stages
from .rundir import partial_path, resumable_directory
from .runner.bench import REFERENCE_NAME
from .runner.host import host_info
from .runner.runtimes import open_artifact
from .runner.timing import measure_latency
from .stage_runs import Source, StageRunner, run_identity
from .stages.ptq import PtqConfig, calibrate
from .stages.qat import TARGET_SCHEMES
from .training.config import Execution, TrainConfig
from .training.loop import check_precision


class CompressOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    calibration: PtqConfig = PtqConfig()
    export: ExportConfig = ExportConfig()
    threads: int = Field(default=2, ge=1)
    batch_size: int = Field(default=256, ge=1)
    latency_runs: int = Field(default=100, ge=1)
    latency_warmup: int = Field(default=10, ge=0)


def compress(
    model: Model | str | Path | nn.Module,
    data: ImageDataset | str | Path | None,
    targets: list[Target] | list[str] | str,
    out: Path | str,
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
    """Run ``recipe``'s stages on ``model`` and export the result to each target, evaluated on ``data``.

    ``train_data`` feeds the training stages, pruning's importance and int8 calibration
    (``data`` calibrates when it is absent and nothing trains). Returns what report.json holds;
    under torchrun, on rank 0 (the other processes train, write nothing and return None).
    ``execution``: the device and loader of the training stages.

    An artifact that loses more than ``max_accuracy_drop`` points of top-1 against ``model``
    (default: the recipe's; none without a recipe) fails the run: it is written all the same,
    marked failed in report.json and in that artifact's manifest, and AccuracyDropError raised.

    ``model`` may be a Model, a path or an nn.Module; ``data`` a data set or its path;
    ``targets`` Target values or their names ("tflite-int8" or "tflite-int8,onnx").

    ``data`` may be unlabelled (``data.labelled`` False): the files are calibrated, verified and
    timed on it, and every accuracy is None. ``data=None`` verifies and times them on the embedded
    sample images, unlabelled, when nothing needs calibration images (int8 does, labelled or not:
    then ``train_data`` calibrates). The accuracy guard cannot judge without labels: an explicit
    ``max_accuracy_drop`` is then an error, the recipe's default is skipped with a message.
    """
    model = as_model(model)
    if isinstance(targets, str) or (targets and isinstance(targets[0], str)):
        targets = parse_targets([targets] if isinstance(targets, str) else list(targets))
    if data is None:
        check_calibration_source(targets, train_data is not None)
        data = embedded_samples(log)
    data = data if isinstance(data, ImageDataset) else open_dataset(data)
    out = Path(out)
    data = fit_labels(model.num_classes, data, log)
    if train_data is not None and _learns_from_labels(recipe):  # calibration alone reads no labels
        train_data = fit_labels(model.num_classes, train_data, log)
    model = model.replace(labels=model.labels or data.classes or None)
    plan = _check_plan(recipe, targets, train_data)  # a wrong combination fails before any work
    _check_unlabelled_training(recipe, train_data)
    max_accuracy_drop = _accuracy_limit(max_accuracy_drop, recipe, data, log)
    distributed.check_device(execution.device)
    for _, config in plan.stages:
        if isinstance(config, TrainConfig):
            check_precision(config, execution.device)
    with distributed.process_group(execution.device) as world:
        if not world.is_main:
            runner = StageRunner.follower(partial_path(Path(out)), execution)
            current = model
            for name, config in plan.stages:
                current = runner.run(name, config, current, teacher=model, train=train_data, schemes=plan.schemes)
            return None
        return _lead(
            model,
            data,
            targets,
            Path(out),
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
    plan: _Plan,
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
        log = _logging_to(run / "log.txt", log)

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
        rows = [_pytorch_row(model, baseline, normalize(samples[:1], spec), options)]
        for artifact in sorted(artifacts, key=lambda a: targets.index(a.target)):
            with stage(f"evaluate-{artifact.target.name}"):
                rows.append(
                    _artifact_row(
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
        failures = [reason for row in rows if (reason := _failure(row.target, row.delta_top1, limit))]
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


class _Plan(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    stages: list[tuple[str, BaseModel]]  # the training and pruning stages, in order
    schemes: list[str]  # the int8 runtimes qat trains for
    calibration: PtqConfig | None  # the ptq stage's settings


def _check_plan(recipe: Recipe | None, targets: list[Target], train_data: ImageDataset | None) -> _Plan:
    if recipe is None:
        return _Plan(stages=[], schemes=[], calibration=None)
    stages = [(s.name, s.config) for s in recipe.stages if s.name != "ptq"]
    ptq = recipe.stage("ptq")
    schemes: list[str] = []
    qat = recipe.stage("qat")
    if qat is not None:
        wanted = [TARGET_SCHEMES[t.name] for t in targets if t.name in TARGET_SCHEMES]
        if not wanted:
            raise EdgeResNetError(
                f"recipe {recipe.name} trains for int8 (qat) but no int8 target is asked for",
                "add an int8 --target such as tflite-int8, or use a recipe without qat",
            )
        scheme = qat.config.scheme
        if scheme != "auto" and any(w != scheme for w in wanted):
            other = next(t.name for t in targets if TARGET_SCHEMES.get(t.name, scheme) != scheme)
            raise EdgeResNetError(
                f"recipe {recipe.name} trains qat for {scheme}'s int8 arithmetic, but {other} needs its own",
                "set qat.scheme to auto (-o qat.scheme=auto) to train one per int8 target, or drop that target",
            )
        schemes = list(dict.fromkeys(wanted))
    trains = [name for name, _ in stages if name in ("distill", "qat")]
    if trains and train_data is None:
        raise EdgeResNetError(
            f"recipe {recipe.name} trains ({', '.join(trains)}) and needs training images",
            "pass --train-data with an ImageFolder, .zip or .npz (not the evaluation data; unlabelled "
            "images only with alpha 1)",
        )
    return _Plan(stages=stages, schemes=schemes, calibration=ptq.config if ptq else None)


def embedded_samples(log: Callable[[str], None] = lambda message: None) -> ImageDataset:
    """The embedded CIFAR-10 sample images, unlabelled: what files are verified and timed on without
    --data. Each model's own preprocessing resizes them to its input (and to gray for a 1-channel one)."""
    from .assets import DEMO_DATA

    data = open_dataset(DEMO_DATA).unlabelled()
    log(
        f"no --data given: verifying and timing on the {len(data)} embedded sample images of {DEMO_DATA.name}, "
        "unlabelled and resized by the model's preprocessing (no accuracy: pass --data for it)"
    )
    return data


def describe_data(data: ImageDataset, fingerprint: str) -> dict:
    """What report.json and every manifest record of the images the files were verified, evaluated and timed on."""
    from .assets import DEMO_DATA

    described = {
        "name": Path(data.source).name,
        "source": data.source,
        "samples": len(data),
        "fingerprint": fingerprint,
        "classes": list(data.classes),
        "labelled": data.labelled,
    }
    if not data.labelled and Path(data.source) == DEMO_DATA:
        described["embedded"] = True  # no --data: the embedded sample images, resized by the model's preprocessing
    return described


def _accuracy_limit(asked: float | None, recipe: Recipe | None, data: ImageDataset, log) -> float | None:
    """The top-1 drop the run is held to: ``asked``, else the recipe's; none on unlabelled data.

    Without labels there is no top-1 to compare. Asked for explicitly, the guard that cannot
    judge is an error (the user expects it to hold); coming only from a recipe's default, it is
    skipped with a message, so that a builtin recipe still runs on unlabelled data.
    """
    if data.labelled:
        return asked if asked is not None else recipe.max_accuracy_drop if recipe else None
    if asked is not None:
        raise EdgeResNetError(
            f"--max-accuracy-drop compares top-1 against the input model, but {data.source} has no labels",
            "pass labelled --data (root/<class>/<image>), or drop "
            "--max-accuracy-drop and judge by the agreement column",
        )
    if recipe is not None and recipe.max_accuracy_drop is not None:
        log(
            f"recipe {recipe.name}'s max_accuracy_drop ({recipe.max_accuracy_drop:g} points) is not checked: "
            f"{Path(data.source).name} has no labels"
        )
    return None


def _learns_from_labels(recipe: Recipe | None) -> bool:
    """Whether a stage of ``recipe`` reads --train-data's labels (when it has any)."""
    return recipe is not None and any(
        stage.name in ("distill", "qat") or (stage.name == "prune" and stage.config.importance == "taylor")
        for stage in recipe.stages
    )


def _check_unlabelled_training(recipe: Recipe | None, train_data: ImageDataset | None) -> None:
    """Training stages on unlabelled --train-data: distill and qat learn from the teacher's outputs
    alone with alpha 1 (the labels' weight is 1 - alpha); taylor pruning needs labels."""
    if recipe is None or train_data is None or train_data.labelled:
        return
    hint = "pass --train-data with labels (root/<class>/<image>)"
    for stage in recipe.stages:
        if stage.name in ("distill", "qat") and stage.config.alpha < 1:
            alpha = stage.config.alpha
            raise EdgeResNetError(
                f"{stage.name} weighs the labels by {1 - alpha:g} (alpha {alpha:g}), and {train_data.source} has no "
                f"labels",
                f"{hint}, or learn from the teacher alone with -o {stage.name}.alpha=1",
            )
        if stage.name == "prune" and stage.config.importance == "taylor":
            raise EdgeResNetError(
                f"prune's taylor importance needs labels, and {train_data.source} has none",
                f"{hint}, or set -o prune.importance=l1 (or l2, bn)",
            )


def _failure(target: str, delta_top1: float | None, limit: float | None) -> str | None:
    """Why a file that lost more than ``limit`` points of top-1 failed; None when it did not."""
    if limit is None or delta_top1 is None or -delta_top1 <= limit + 1e-9:
        return None
    return (
        f"{target} lost {-delta_top1:.2f} points of top-1 against the input model, more than the "
        f"{limit:g} --max-accuracy-drop allows"
    )


def _logging_to(path: Path, log: Callable[[str], None]) -> Callable[[str], None]:
    def both(message: str) -> None:
        log(message)
        with open(path, "a") as file:
            file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {message}\n")

    return both


def _accuracy_spec(accuracy: Accuracy, fingerprint: str) -> AccuracySpec:
    """Top-1 and top-5 are None on unlabelled data: the samples and their fingerprint still say what ran."""
    return AccuracySpec(top1=accuracy.top1, top5=accuracy.top5, samples=accuracy.n, data=fingerprint)


def _pytorch_row(model: Model, baseline: Accuracy, one, options: CompressOptions) -> ResultRow:
    predict = model.predictor(options.threads)
    size = sum(t.numel() * t.element_size() for t in model.module.state_dict().values())
    return ResultRow(
        target="pytorch-fp32",
        file=None,
        size_bytes=size,
        top1=baseline.top1,
        top5=baseline.top5,
        delta_top1=0.0 if baseline.labelled else None,
        agreement=100.0,
        latency=measure_latency(
            lambda: predict(one), runs=options.latency_runs, warmup=options.latency_warmup
        ).to_dict(),
    )


def _artifact_row(
    artifact: Artifact,
    data: ImageDataset,
    fingerprint: str,
    spec,
    pixels,
    baseline: Accuracy,
    source: Source,
    options,
    limit: float | None,
    described: dict,
) -> ResultRow:
    """Evaluate and time one artifact; `pixels` is the image (uint8 NHWC RGB) it is timed on. Its
    manifest learns its accuracy (None on unlabelled data), what it was verified and measured on
    (``described``), and whether it failed the ``limit`` on lost top-1."""
    file = str(Path(artifact.target.name) / artifact.path.name)
    # The manifest learns what the artifact was measured to do; the runner checks against it later.
    update = {"baseline": _accuracy_spec(baseline, fingerprint), "data": described}
    if artifact.manifest.fidelity is None:  # no runtime for it here: its spec was validated instead
        write_manifest(artifact.manifest.model_copy(update=update), artifact.directory)
        check = (artifact.manifest.validation or {}).get("runtime_check", "no runtime on this host")
        return ResultRow(
            target=artifact.target.name,
            file=file,
            size_bytes=artifact.manifest.size_bytes,
            top1=None,
            top5=None,
            delta_top1=None,
            agreement=None,
            latency=None,
            note=f"not run: {check}",
            source=source.stage,
        )
    # A TensorRT file where no NVIDIA GPU is: its graph's accuracy in onnxruntime on the CPU, and no
    # latency (a CPU's says nothing of the engine's); `bench` on the device measures the engine.
    elsewhere = _tensorrt_elsewhere(artifact)
    runtime = open_artifact(
        artifact.path, options.threads, image_input=artifact.manifest.image_input, runtime="onnx" if elsewhere else None
    )
    accuracy = evaluate(
        runtime,
        data,
        spec,
        batch_size=options.batch_size,
        progress=artifact.target.name,
        layout=runtime.input_layout,
        normalized=not runtime.image_input,
    )
    update["accuracy"] = _accuracy_spec(accuracy, fingerprint)
    delta = round(accuracy.top1 - baseline.top1, 4) if accuracy.labelled and baseline.labelled else None
    update["failed"] = _failure(artifact.target.name, delta, limit)
    write_manifest(artifact.manifest.model_copy(update=update), artifact.directory)
    raw = runtime.to_raw(pixels if runtime.image_input else normalize(pixels, spec))
    latency = (
        None
        if elsewhere
        else measure_latency(
            lambda: runtime.invoke(raw), runs=options.latency_runs, warmup=options.latency_warmup
        ).to_dict()
    )
    return ResultRow(
        target=artifact.target.name,
        file=file,
        size_bytes=artifact.manifest.size_bytes,
        top1=accuracy.top1,
        top5=accuracy.top5,
        delta_top1=delta,
        agreement=round(agreement(accuracy.predictions, baseline.predictions), 3),
        latency=latency,
        source=source.stage,
        source_agreement=round(agreement(accuracy.predictions, source.predictions), 3),
        note=f"accuracy of its ONNX in onnxruntime (CPU), no latency: {elsewhere}; bench it on the device"
        if elsewhere
        else None,
    )


def _tensorrt_elsewhere(artifact: Artifact) -> str | None:
    """Why a TensorRT file's engine cannot be built here (None for other files, or where it can)."""
    if artifact.target.runtime != "tensorrt":
        return None
    from .runner.tensorrt import unavailable_reason

    return unavailable_reason()
