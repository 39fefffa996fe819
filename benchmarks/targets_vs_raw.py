"""Table 1: edgeresnet's int8 artifacts against the pipelines a user would write by hand.

For each fine-tuned CIFAR baseline (../shared/models/cifar), in one run on one machine:
- PyTorch FP32 eager, the reference;
- the raw vendor pipelines of benchmarks/raw_pipelines.py (onnx2tf int8 PTQ, OpenVINO with
  nncf.quantize, ONNX Runtime static int8), each given the same 256 calibration images that
  edgeresnet's ptq-int8 samples from train.zip;
- `edgeresnet compress --recipe R` for each recipe, to tflite-int8 and openvino-int8.
Each file is measured by the runner's own measuring child: top-1 on the 10,000 test images,
p50 and p99 latency of one image at 1 and 2 threads, peak resident memory. Latency is taken in
--rounds rounds, each measuring every file in turn, and reported as the median of the rounds:
this host is shared, and a disturbance then lands on one round of every file, not on all of
one file's runs. Producing a file is timed as the wall time of its command (edgeresnet's
includes evaluating and verifying every file on the 10,000 images; the raw pipelines' does not).

    .venv/bin/python benchmarks/targets_vs_raw.py [--models resnet20,resnet56] [--recipes ptq-int8,qat-int8,prune-distill-qat-int8]
        [--set prune-distill-qat-int8:prune.macs=1.5] [--reuse-run qat-int8=DIR]
        [--out results/targets-vs-raw-{model}-NAME.json] [--rounds 3] [--runs 300]

--set changes one setting of one recipe's `compress` runs (passed on as its -o override).
--reuse-run takes a finished `compress` run directory of that model and recipe (to the same
targets) instead of training again; its time to produce is then the sum of the stage times in
its report.json (no process start-up), and its row says so. Every edgeresnet row names the
settings in which its run's recipe differs from the shipped one. --out writes a second run of
a table beside the first instead of over it (`{model}` is replaced by the model's name).

Writes benchmarks/results/targets-vs-raw-<model>.json; benchmarks/tables.py renders them.
With ptq-int8 only, about 6 minutes per model; qat-int8 adds about 40 minutes for ResNet-20 and
90 for ResNet-56, prune-distill-qat-int8 about 90 minutes for ResNet-56 and 50 for ResNet-20
with the settings run_all.sh gives it (to both targets).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from measuring import BIN, HERE, host, measure_file, timed

RAW = ("onnx2tf", "openvino-nncf", "onnxruntime")
RAW_TARGET = {"onnx2tf": "tflite-int8", "openvino-nncf": "openvino-int8", "onnxruntime": "onnxruntime-int8"}
TARGETS = "tflite-int8,openvino-int8"
THREADS = (1, 2)
CALIBRATION_IMAGES = 256  # what ptq-int8's calibrate stage samples from train.zip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_producing_arguments(parser, recipes="ptq-int8,qat-int8,prune-distill-qat-int8")
    parser.add_argument("--runs", type=int, default=300, help="timed inferences per latency")
    parser.add_argument("--rounds", type=int, default=3, help="latency rounds over all files (median reported)")
    parser.add_argument("--out", default=str(HERE / "results" / "targets-vs-raw-{model}.json"),
                        help="where to write each model's table; {model} is replaced by the model's name")
    args = parser.parse_args()
    reuse, settings = producing_options(args)
    for model in args.models.split(","):
        result = table_for(model, args.shared, args.recipes.split(","), args.runs, args.rounds, reuse, settings)
        out = Path(args.out.replace("{model}", model))
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)


def add_producing_arguments(parser: argparse.ArgumentParser, recipes: str) -> None:
    """The options that say which files to produce: this script's and paired_accuracy.py's."""
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--models", default="resnet20,resnet56")
    parser.add_argument("--recipes", default=recipes)
    parser.add_argument("--reuse-run", action="append", default=[], metavar="RECIPE=DIR",
                        help="a finished compress run of this recipe to use instead of producing it again")
    parser.add_argument("--set", action="append", default=[], metavar="RECIPE:STAGE.KEY=VALUE",
                        help="a setting of one recipe's compress runs (its -o override); repeatable")


def producing_options(args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, list[str]]]:
    """--reuse-run as {recipe: run directory}, --set as {recipe: [setting, ...]}."""
    reuse = {recipe: Path(path) for recipe, path in (item.split("=", 1) for item in args.reuse_run)}
    settings: dict[str, list[str]] = {}
    for item in args.set:
        recipe, setting = item.split(":", 1)
        settings.setdefault(recipe, []).append(setting)
    return reuse, settings


def table_for(model: str, shared: Path, recipes: list[str], runs: int, rounds: int,
              reuse: dict[str, Path], settings: dict[str, list[str]]) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = prepare(model, shared, tmp)
        # Produce every file first, then measure them all back to back: the latencies of one table
        # are then taken in one stretch, not between hours of training that other work may contend.
        produced = produce_all(inputs, recipes, reuse, settings, tmp)
        print(f"{model}: measuring {len(produced)} files", file=sys.stderr)
        rows.append(eager_row(inputs, runs, tmp))
        reference = np.asarray(rows[0].pop("predictions"))
        rows += _measured(produced, inputs.pixels, inputs.labels, inputs.preprocess, runs, rounds, reference)
    fp32 = rows[0]["top1"]
    for row in rows:
        row["delta_top1"] = round(row["top1"] - fp32, 2)
    return {"what": f"{model} fine-tuned on train.zip: int8 pipelines on the {inputs.test_images} test images",
            "model": model, "test_images": inputs.test_images, "calibration_images": CALIBRATION_IMAGES,
            "latency_rounds": rounds, "latency_runs": runs,
            "rows": rows, "host": host()}


@dataclass(frozen=True)
class Inputs:
    """What every pipeline of one model's table is given, as files in the table's scratch folder."""

    model: str
    checkpoint: Path
    data: Path  # the folder of test.zip and train.zip
    preprocess: dict  # the checkpoint's preprocessing, as the measuring child takes it
    pixels: Path  # the test images, uint8 NHWC .npy
    labels: Path
    calibration: Path  # CALIBRATION_IMAGES training images, what ptq-int8's calibrate stage takes
    test_images: int


def prepare(model: str, shared: Path, tmp: Path) -> Inputs:
    import edgeresnet
    from edgeresnet.data import open_dataset, sample_pixels

    # "resnet20": the baseline fine-tuned on train.zip; "resnet20-12fca82f": the published checkpoint.
    fine_tuned = shared / "models" / "cifar" / f"{model}_cifar10jpeg.pt"
    checkpoint = fine_tuned if fine_tuned.exists() else shared / "models" / "cifar" / f"{model}.th"
    data = shared / "datasets" / "cifar10-jpeg"
    test, train = open_dataset(data / "test.zip"), open_dataset(data / "train.zip")
    spec = edgeresnet.load_model(checkpoint).preprocess
    pixels, labels, calibration = tmp / "test.npy", tmp / "labels.npy", tmp / "calibration.npy"
    np.save(pixels, sample_pixels(test, spec, len(test), seed=0))
    np.save(labels, test.subset(len(test), seed=0).labels)
    np.save(calibration, sample_pixels(train, spec, CALIBRATION_IMAGES, seed=0))
    return Inputs(model, checkpoint, data, spec.model_dump(mode="json"), pixels, labels, calibration, len(test))


def produce_all(inputs: Inputs, recipes: list[str], reuse: dict[str, Path], settings: dict[str, list[str]],
                tmp: Path) -> list[tuple]:
    """Every file of the table: the raw pipelines', then each recipe's (produced, or from --reuse-run).
    Each as (pipeline, target, file, produce), produce being its wall time and peak memory."""
    from edgeresnet.runner.bench import find_artifacts

    produced = []
    for raw in RAW:
        out = tmp / raw
        produce = timed([sys.executable, str(HERE / "raw_pipelines.py"), raw, str(inputs.checkpoint),
                         str(inputs.calibration), str(out)], tmp / f"{raw}.log")
        produced.append((f"raw {raw}", RAW_TARGET[raw], Path(json.loads((out / "result.json").read_text())["file"]),
                         produce))
    for recipe in recipes:
        if recipe in reuse:
            run = reuse[recipe]
            report = json.loads((run / "report.json").read_text())
            assert report["model"]["arch"] == inputs.model and report["recipe"]["name"] == recipe, run
            produce = {"seconds": round(sum(report["seconds"].values()), 1), "reused": str(run)}
        else:
            run = tmp / recipe
            print(f"{inputs.model}: edgeresnet compress --recipe {recipe}", file=sys.stderr)
            produce = timed([str(BIN / "edgeresnet"), "compress", str(inputs.checkpoint),
                             "--data", str(inputs.data / "test.zip"), "--train-data", str(inputs.data / "train.zip"),
                             "--recipe", recipe, "--target", TARGETS,
                             "--max-accuracy-drop", "100",  # the table shows every result, good or not
                             "--out", str(run), *[f"--set={setting}" for setting in settings.get(recipe, [])]],
                            tmp / f"{recipe}.log")
            report = json.loads((run / "report.json").read_text())
        produced += [(_pipeline(recipe, report), manifest.target, directory / manifest.file, produce)
                     for manifest, directory in find_artifacts(run)]
    return produced


def eager_row(inputs: Inputs, runs: int, tmp: Path) -> dict:
    """PyTorch FP32 eager, in a process of its own; its "predictions" are the test set's, in order."""
    eager = timed([sys.executable, str(HERE / "eager_fp32.py"), str(inputs.checkpoint), str(inputs.pixels),
                   str(inputs.labels), str(tmp / "eager.json"), str(runs)], tmp / "eager.log")
    return {"pipeline": "pytorch", "target": "pytorch-fp32", **json.loads((tmp / "eager.json").read_text()),
            "produce": None, "peak_rss_mb": eager["peak_rss_mb"]}


def _measured(produced: list, pixels: Path, labels: Path, spec: dict, runs: int, rounds: int,
              reference: np.ndarray) -> list[dict]:
    rows = [{"pipeline": pipeline, "target": target, "file": artifact.name, "size_bytes": _size(artifact),
             "produce": produce} for pipeline, target, artifact, produce in produced]
    truth = np.load(labels)
    latencies = [{threads: [] for threads in THREADS} for _ in rows]  # per file and thread count: each round's
    for round_ in range(rounds):
        for row, (_, _, artifact, _), latency in zip(rows, produced, latencies):
            for threads in THREADS:
                scored = round_ == 0 and threads == THREADS[-1]  # top-1 once, on all the test images
                measured = measure_file(artifact, pixels, labels if scored else None, threads, spec, runs)
                latency[threads].append(measured["latency"])
                row["peak_rss_mb"] = max(row.get("peak_rss_mb", 0), round(measured["memory"]["peak_rss_mb"], 1))
                if scored:
                    predictions = np.asarray(measured["predictions"])
                    row["top1"] = round(100 * float((predictions == truth).mean()), 2)
                    row["agreement_fp32"] = round(100 * float((predictions == reference).mean()), 2)
    for row, latency in zip(rows, latencies):
        for threads, per_round in latency.items():
            for quantile in ("p50", "p99"):
                values = [measured[f"{quantile}_ms"] for measured in per_round]
                row[f"{quantile}_ms_{threads}t"] = round(float(np.median(values)), 3)
                row[f"{quantile}_ms_{threads}t_rounds"] = [round(value, 3) for value in values]
    return rows


def _pipeline(recipe: str, report: dict) -> str:
    """A row's pipeline: the recipe, and the settings in which the run's resolved recipe (in its
    report.json) differs from the shipped one, i.e. its -o overrides, so a row says what made it."""
    from edgeresnet.recipes import load_recipe

    changes = _changed_settings(report["recipe"], load_recipe(recipe).to_dict())
    return f"edgeresnet {recipe}" + (f" ({', '.join(changes)})" if changes else "")


def _changed_settings(resolved: dict, shipped: dict) -> list[str]:
    changes = []
    for ran, default in zip(resolved["stages"], shipped["stages"]):
        (stage, settings), (_, defaults) = next(iter(ran.items())), next(iter(default.items()))
        changes += [f"{stage}.{key}={json.dumps(value)}" for key, value in settings.items()
                    if value != defaults.get(key)]
    return changes


def _size(artifact: Path) -> int:
    weights = artifact.with_suffix(".bin") if artifact.suffix == ".xml" else None
    return artifact.stat().st_size + (weights.stat().st_size if weights and weights.exists() else 0)


if __name__ == "__main__":
    main()
