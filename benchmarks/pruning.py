"""Pruning a fine-tuned CIFAR ResNet to fewer MACs: does it export everywhere, and how much faster is it?

For each way of pruning (channels only; whole blocks first, ranked by importance per
measured latency), prunes with `edgeresnet.prune`, exports to every target through the
compress pipeline (top-1 on test images, verified against PyTorch), then times the
unpruned and the pruned tflite-int8 and openvino-int8 files in alternating rounds (this
machine is shared: a disturbance then hits both). The pruned models are not fine-tuned:
their top-1 is what pruning alone leaves, before distillation recovers it.

    .venv/bin/python benchmarks/pruning.py [--model resnet56] [--macs 2.0] [--block-cost latency]
        [--threads 2] [--shared PATH] [--limit 2000] [--rounds 7] [--runs 500]

Writes benchmarks/results/pruning-<model>.json; takes about 15 minutes on 2 cores for ResNet-56
with the defaults (the README's table), about 5 for ResNet-20.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMED = ("tflite-int8", "openvino-int8")
ALL_TARGETS = ["onnx", "tflite-fp32", "tflite-fp16", "tflite-int8", "openvino-fp32", "openvino-fp16", "openvino-int8",
               "coreml-fp16", "coreml-int8w", "coreml-w8a8"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--limit", type=int, default=2000, help="test images for top-1")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--model", default="resnet56", help="a fine-tuned model of ../shared/models/cifar")
    parser.add_argument("--macs", type=float, default=2.0, help="the MACs factor both variants prune to")
    parser.add_argument("--block-cost", choices=("macs", "latency"), default="latency",
                        help="what ranks the blocks of blocks-then-channels (importance per saving)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the timed files")
    args = parser.parse_args()
    variants = {"channels": dict(macs=args.macs),
                "blocks-then-channels": dict(macs=args.macs, remove_blocks=True, block_cost=args.block_cost)}

    import edgeresnet
    from edgeresnet.data import normalize, open_dataset, sample_pixels
    from edgeresnet.export import ExportConfig, parse_targets
    from edgeresnet.pipeline.api import compress
    from edgeresnet.pipeline.run import CompressOptions
    from edgeresnet.runner.runtimes import open_artifact
    from edgeresnet.runner.timing import measure_latency
    from edgeresnet.stages.ptq import PtqConfig

    data = args.shared / "datasets" / "cifar10-jpeg"
    test = open_dataset(data / "test.zip").subset(args.limit, seed=0)
    train = open_dataset(data / "train.zip")
    base = edgeresnet.load_model(args.shared / "models" / "cifar" / f"{args.model}_cifar10jpeg.pt", labels=test.classes)

    models, pruning = {"unpruned": base}, {}
    for name, settings in variants.items():
        start = time.perf_counter()
        models[name] = edgeresnet.prune(base, edgeresnet.PruneConfig(**settings), data=train)
        pruning[name] = {"config": settings, "seconds": round(time.perf_counter() - start, 1), **models[name].plan.info}
        print(f"{name}: {models[name].plan.info['macs_factor']:.2f}x fewer MACs, "
              f"{len(models[name].plan.removed_blocks)} blocks removed", file=sys.stderr)

    # Pruned and not yet fine-tuned, a model has small margins that int8 flips more often.
    options = CompressOptions(calibration=PtqConfig(size=256), export=ExportConfig(min_agreement=80),
                              threads=args.threads)
    results, runtimes = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            report = compress(model, test, parse_targets(ALL_TARGETS), Path(tmp) / name, train_data=train,
                              options=options)
            results[name] = [row.model_dump(include={"target", "size_bytes", "top1", "delta_top1", "agreement", "note"})
                             for row in report.results]
            for target in TIMED:
                runtime = open_artifact(Path(tmp) / name / target / f"{args.model}-{target}.{_suffix(target)}",
                                       args.threads)
                one = sample_pixels(test, base.preprocess, 1)
                runtimes[(name, target)] = (runtime, runtime.to_raw(normalize(one, base.preprocess)))

        p50: dict[tuple[str, str], list[float]] = {key: [] for key in runtimes}
        for _ in range(args.rounds):
            for key, (runtime, raw) in runtimes.items():
                p50[key].append(measure_latency(lambda: runtime.invoke(raw), runs=args.runs, warmup=50).p50_ms)

    latency = {}
    for name in variants:
        latency[name] = {}
        for target in TIMED:
            ratios = [u / p for u, p in zip(p50[("unpruned", target)], p50[(name, target)])]
            latency[name][target] = {
                "unpruned_p50_ms": round(statistics.median(p50[("unpruned", target)]), 4),
                "pruned_p50_ms": round(statistics.median(p50[(name, target)]), 4),
                "speedup": round(statistics.median(ratios), 3),  # median of paired rounds
                "speedup_per_round": [round(r, 3) for r in ratios],
            }
    from edgeresnet.runner.host import host_info

    out = {"model": f"{args.model}_cifar10jpeg.pt", "test_images": len(test), "threads": args.threads,
           "rounds": args.rounds, "runs": args.runs, "pruning": pruning, "latency": latency, "results": results,
           "host": host_info(args.threads)}
    path = HERE / "results" / f"pruning-{args.model}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    for name in variants:
        top1 = next(r["top1"] for r in results[name] if r["target"] == "pytorch-fp32")
        speed = ", ".join(f"{t} {latency[name][t]['speedup']:.2f}x" for t in TIMED)
        print(f"{name:22s} {pruning[name]['macs_factor']:.2f}x fewer MACs  top-1 {top1:.2f} (unpruned "
              f"{results['unpruned'][0]['top1']:.2f})  latency {speed}")
    print(f"wrote {path}")


def _suffix(target: str) -> str:
    return "tflite" if target.startswith("tflite") else "xml"


if __name__ == "__main__":
    main()
