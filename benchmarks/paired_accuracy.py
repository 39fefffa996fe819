"""Table 1, paired: are the top-1 differences between the int8 files larger than chance?

Two files scored on the same 10,000 test images differ only on the images one gets right
and the other wrong. This script produces the same files as targets_vs_raw.py (the raw
pipelines, edgeresnet's recipes, or earlier `compress` runs given with --reuse-run), keeps
every file's answer to every test image, and compares each edgeresnet file with each raw
pipeline's file and with PyTorch FP32, image by image:
- the images only edgeresnet's file gets right, and only the other file gets right;
- the difference in top-1 points with its 95% confidence interval (paired: the variance of
  the per-image difference, not of two independent top-1s);
- the exact two-sided McNemar p-value: how likely a split at least this uneven of the
  discordant images is if both files were equally accurate.
A lower bound above -0.2 points, say, means edgeresnet's file is at most 0.2 points less
accurate than the other, at 95% confidence. No latency: targets_vs_raw.py measures that.

    .venv/bin/python benchmarks/paired_accuracy.py [--models resnet20,resnet56] [--recipes ptq-int8,qat-int8]
        [--reuse-run qat-int8=DIR] [--set RECIPE:STAGE.KEY=VALUE]

Writes benchmarks/results/paired-accuracy-<model>.json, with every file's right and wrong
answers as a bitmask (hex of numpy.packbits, in test-set order) so the comparisons can be
recomputed; benchmarks/tables.py renders them. With ptq-int8 only, about 2.5 minutes for ResNet-20 (more for ResNet-56).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from measuring import HERE, host, measure_file
from targets_vs_raw import add_producing_arguments, eager_row, prepare, produce_all, producing_options

Z95 = 1.959964  # the two-sided 95% quantile of the standard normal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_producing_arguments(parser, recipes="ptq-int8,qat-int8")
    parser.add_argument("--out", default=str(HERE / "results" / "paired-accuracy-{model}.json"),
                        help="where to write each model's results ({model} is replaced)")
    args = parser.parse_args()
    reuse, settings = producing_options(args)
    for model in args.models.split(","):
        result = paired_table(model, args.shared, args.recipes.split(","), reuse, settings)
        out = Path(args.out.replace("{model}", model))
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)


def paired_table(model: str, shared: Path, recipes: list[str], reuse: dict[str, Path],
                 settings: dict[str, list[str]]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = prepare(model, shared, tmp)
        produced = produce_all(inputs, recipes, reuse, settings, tmp)
        truth = np.load(inputs.labels)
        eager = eager_row(inputs, runs=1, tmp=tmp)
        files = [{"pipeline": "pytorch", "target": "pytorch-fp32",
                  "correct": np.asarray(eager["predictions"]) == truth}]
        for pipeline, target, artifact, _ in produced:
            print(f"{model}: scoring {pipeline} {target}", file=sys.stderr)
            # Two threads, as the table's top-1; the latency runs are a formality here.
            measured = measure_file(artifact, inputs.pixels, inputs.labels, 2, inputs.preprocess, runs=1, warmup=1)
            files.append({"pipeline": pipeline, "target": target,
                          "correct": np.asarray(measured["predictions"]) == truth})
    others = [f for f in files if not f["pipeline"].startswith("edgeresnet")]
    comparisons = [{"edgeresnet": ours["pipeline"], "edgeresnet_target": ours["target"],
                    "against": other["pipeline"], "against_target": other["target"],
                    **paired_difference(ours["correct"], other["correct"])}
                   for ours in files if ours["pipeline"].startswith("edgeresnet") for other in others]
    return {"what": f"{model} fine-tuned on train.zip: each edgeresnet int8 file against each other file, "
                    f"image by image on the {len(truth)} test images",
            "model": model, "test_images": int(len(truth)),
            "files": [{"pipeline": f["pipeline"], "target": f["target"],
                       "top1": round(100 * float(f["correct"].mean()), 2),
                       "correct_bits": np.packbits(f["correct"]).tobytes().hex()} for f in files],
            "comparisons": comparisons, "host": host()}


def paired_difference(ours: np.ndarray, other: np.ndarray) -> dict:
    """Top-1 of ``ours`` minus ``other`` (per-image booleans of the same images), in points, with
    its paired 95% interval and the exact McNemar p-value of the discordant images."""
    n = len(ours)
    only_ours = int(np.sum(ours & ~other))
    only_other = int(np.sum(~ours & other))
    difference = (only_ours - only_other) / n
    # The per-image difference is +1, -1 or 0: its variance over the n images, divided by n.
    variance = ((only_ours + only_other) / n - difference**2) / n
    half_width = Z95 * math.sqrt(variance)
    return {"only_edgeresnet_right": only_ours, "only_other_right": only_other,
            "difference_points": round(100 * difference, 2),
            "ci95_points": [round(100 * (difference - half_width), 2), round(100 * (difference + half_width), 2)],
            "mcnemar_p": round(mcnemar_exact_p(only_ours, only_other), 4)}


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar test: the binomial(b + c, 1/2) probability of a split at least as uneven."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


if __name__ == "__main__":
    main()
