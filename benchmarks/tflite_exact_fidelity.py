"""How exactly each simulator predicts the int8 TFLite file, as our runner runs it (LiteRT, XNNPACK).

For the fine-tuned CIFAR ResNet-20 and ResNet-56: the ptq stage's tflite parameters (256 train
images), exported to tflite-int8 (the file holds the simulator's ranges); on the 10,000 test
images, the file's top-1, and for the float fake-quant simulator (quantization/tflite.py) and the
exact integer one (quantization/tflite_exact.py): top-1 agreement with the file and logit
differences in output steps (the logits' quantization step). One thread throughout.

    .venv/bin/python benchmarks/tflite_exact_fidelity.py [--limit N] [--models resnet20,resnet56]

Writes benchmarks/results/tflite-exact-fidelity.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from measuring import HERE, file_against_simulators, logit_differences

BATCH = 500


def measure(name: str, shared: Path, limit: int | None, work: Path) -> dict:

    import edgeresnet
    from edgeresnet.data import open_dataset, sample_pixels
    from edgeresnet.export import ExportConfig, export, parse_targets
    from edgeresnet.quantization import tflite_exact
    from edgeresnet.runner.runtimes import open_artifact
    from edgeresnet.stages.ptq import PtqConfig, ptq

    start = time.perf_counter()
    data = shared / "datasets" / "cifar10-jpeg"
    model = edgeresnet.load_model(shared / "models" / "cifar" / f"{name}_cifar10jpeg.pt")
    train, test = open_dataset(data / "train.zip"), open_dataset(data / "test.zip")
    calibration = sample_pixels(train, model.preprocess, 256, seed=0)
    quantized = ptq(model, calibration, "tflite", PtqConfig())
    # min_agreement 0: the export's own check must not stop the measurement.
    (artifact,) = export(quantized, parse_targets(["tflite-int8"]), work / name,
                         samples=sample_pixels(test, model.preprocess, 512, seed=0), calibration=calibration,
                         config=ExportConfig(min_agreement=0))
    runtime = open_artifact(artifact.path, 1)
    step = float(runtime.output["quantization"][0])
    fake = quantized.module.eval()
    exact = tflite_exact.exact_simulator(fake)
    setup = time.perf_counter() - start
    if limit:
        test = test.subset(limit, seed=0)

    logits, labels, seconds = file_against_simulators(test, model.preprocess, BATCH, runtime,
                                                      {"fake": fake, "exact": exact}, f"{name} fidelity")
    file = logits["file"]

    def top1(x):
        return round(100 * float((x.argmax(1) == labels).mean()), 2)

    return {
        "test_images": int(len(labels)),
        "file_top1": top1(file),
        "output_step": step,
        "fake_quant_simulator": logit_differences(file, logits["fake"], step, labels),
        "exact_simulator": logit_differences(file, logits["exact"], step, labels),
        "export_check": artifact.manifest.fidelity.model_dump(),
        "seconds": {"setup": round(setup, 1), **{k: round(v, 1) for k, v in seconds.items()}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--limit", type=int, default=None, help="test images (default: all 10,000)")
    parser.add_argument("--models", default="resnet20,resnet56")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from edgeresnet.manifest import tool_versions

    with tempfile.TemporaryDirectory() as work:
        models = {name: measure(name, args.shared, args.limit, Path(work)) for name in args.models.split(",")}
    result = {
        "what": "fine-tuned CIFAR ResNets, the ptq stage's tflite parameters (256 train images), exported to "
                "tflite-int8 and run by the runner (LiteRT, XNNPACK delegate, 1 thread); the float fake-quant "
                "simulator (quantization/tflite.py) and the exact integer simulator (quantization/tflite_exact.py) "
                "against the file",
        "models": models,
        "tools": tool_versions("torch", "tensorflow", "ai-edge-litert", "onnx2tf"),
        "host": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
    }
    out = HERE / "results" / "tflite-exact-fidelity.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: {"file_top1": v["file_top1"], "fake": v["fake_quant_simulator"], "exact": v["exact_simulator"]}
                      for k, v in models.items()}, indent=1))


def table(path: Path = Path(__file__).resolve().parent / "results" / "tflite-exact-fidelity.json") -> str:
    """The README table: the file against each simulator, per model."""
    data = json.loads(path.read_text())
    lines = ["| model | file top-1 | simulator | its top-1 | agrees with the file | logits bit-identical | "
             "max difference (output steps) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in data["models"].items():
        for key, label in (("fake_quant_simulator", "float fake-quant"), ("exact_simulator", "exact (integer)")):
            r = row[key]
            lines.append(f"| {name} | {row['file_top1']:.2f} | {label} | {r['top1']:.2f} | {r['agreement_with_file']:.2f}% "
                         f"| {r['images_with_identical_logits']:.2f}% | {r['max_logit_difference_steps']:g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
