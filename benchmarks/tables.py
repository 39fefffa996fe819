"""Renders benchmarks/results/*.json into the tables of benchmarks/README.md.

Each table sits between `<!-- table:NAME -->` and `<!-- /table:NAME -->`; everything else
in the README is prose and stays as written. Numbers come only from the JSON files.

    .venv/bin/python benchmarks/tables.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def targets_vs_raw(name: str) -> str:
    data = json.loads((RESULTS / f"targets-vs-raw-{name}.json").read_text())
    lines = ["| pipeline | target | top-1 | delta | agrees with FP32 | size KB | p50 / p99 ms, 1 thread "
             "| p50 / p99 ms, 2 threads | peak MB | time to produce s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in data["rows"]:
        produce = row["produce"]["seconds"] if row["produce"] else "-"
        if row["produce"] and "reused" in row["produce"]:  # an earlier run's report.json: its stages only
            produce = f"{produce} (stages)"
        lines.append(
            f"| {row['pipeline']} | {row['target']} | {row['top1']:.2f} | {row['delta_top1']:+.2f} "
            f"| {row['agreement_fp32']:.2f}% | {row['size_bytes'] / 1024:.0f} "
            f"| {row['p50_ms_1t']:.3f} / {row['p99_ms_1t']:.3f} | {row['p50_ms_2t']:.3f} / {row['p99_ms_2t']:.3f} "
            f"| {row['peak_rss_mb']:.0f} | {produce} |")
    rounds = data.get("latency_rounds", 1)  # the first runs took one round
    latency = f" Latency: the median of {rounds} rounds over all files." if rounds > 1 else ""
    if data.get("latency_runs", 300) != 300:  # recorded since it is not always the default
        latency += f" Each p50 and p99 over {data['latency_runs']} runs."
    return "\n".join(lines) + "\n\n" + _host(data) + latency


def rerun(model: str) -> str:
    """The rows two runs of targets_vs_raw.py share: what a rerun reproduces."""
    earlier = json.loads((RESULTS / f"targets-vs-raw-{model}-earlier.json").read_text())
    now = json.loads((RESULTS / f"targets-vs-raw-{model}.json").read_text())
    before = {(row["pipeline"], row["target"]): row for row in earlier["rows"]}
    lines = ["| pipeline | target | top-1 then / now | p50 ms 1 thread then / now | p50 ms 2 threads then / now |",
             "| --- | --- | --- | --- | --- |"]
    for row in now["rows"]:
        then = before.get((row["pipeline"], row["target"]))
        if then is None:
            continue
        cells = [f"{then['top1']:.2f} / {row['top1']:.2f}"]
        for threads in (1, 2):
            a, b = then[f"p50_ms_{threads}t"], row[f"p50_ms_{threads}t"]
            cells.append(f"{a:.3f} / {b:.3f} ({b / a:.2f}x)")
        lines.append(f"| {row['pipeline']} | {row['target']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nThen: {_host(earlier)[6:]} Now: {_host(now)[6:]}"


def paired_accuracy(model: str, name: str = "paired-accuracy") -> str:
    """One row per edgeresnet file, one column per file it is compared with."""
    data = json.loads((RESULTS / f"{name}-{model}.json").read_text())
    top1 = {(f["pipeline"], f["target"]): f["top1"] for f in data["files"]}
    ours = list(dict.fromkeys((row["edgeresnet"], row["edgeresnet_target"]) for row in data["comparisons"]))
    others = list(dict.fromkeys((row["against"], row["against_target"]) for row in data["comparisons"]))
    cells = {((row["edgeresnet"], row["edgeresnet_target"]), (row["against"], row["against_target"])): row
             for row in data["comparisons"]}
    lines = ["| edgeresnet file | top-1 | " + " | ".join(f"vs {p} {t} ({top1[p, t]:.2f})" for p, t in others) + " |",
             "| --- " * (2 + len(others)) + "|"]
    for file in ours:
        row = [f"{file[0].removeprefix('edgeresnet ')} {file[1]}", f"{top1[file]:.2f}"]
        for other in others:
            cell = cells[file, other]
            low, high = cell["ci95_points"]
            row.append(f"{cell['difference_points']:+.2f} ({low:+.2f} to {high:+.2f}), "
                       f"{cell['only_edgeresnet_right']}/{cell['only_other_right']}, p {cell['mcnemar_p']:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + f"\n\nOn the {data['test_images']:,} test images. " + _host(data)


def scaling() -> str:
    data = json.loads((RESULTS / "scaling.json").read_text())
    # Core ML packages run only on macOS: no latency here, no column.
    targets = [t for t in data["targets"] if any(t in row["p50_ms"] for row in data["rows"])]
    lines = ["| model | measured | MACs (G) | compress s | peak MB | raw vendor steps s | ratio | slowest step | "
             + " | ".join(f"{t} p50 ms" for t in targets) + " |",
             "| --- " * (8 + len(targets)) + "|"]
    for row in data["rows"]:
        slowest, seconds = max(row["seconds_per_step"].items(), key=lambda item: item[1])
        raw = row.get("raw_seconds")
        raw_cells = f"{raw:.0f} | {row['seconds'] / raw:.2f}x" if raw else "- | -"
        lines.append(
            f"| {row['model']} | {row.get('date', '2026-12-02')} | {row['gmacs']:.2f} | {row['seconds']:.0f} | {row['peak_rss_mb']:.0f} | {raw_cells} "
            f"| {slowest} ({seconds:.0f} s) | "
            + " | ".join(f"{row['p50_ms'][t]:.2f}" if t in row["p50_ms"] else "-" for t in targets) + " |")
    return "\n".join(lines) + "\n\n" + _host(data)


def runner_vs_vendor() -> str:
    data = json.loads((RESULTS / "runner-vs-vendor.json").read_text())
    lines = ["| file | vendor tool | runner p50 ms | vendor median ms | ratio | rounds x runs |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in data["results"]:
        lines.append(f"| {row['target']} | {row['vendor_tool']} | {row['runner_p50_ms']:.3f} "
                     f"| {row['vendor_median_ms']:.3f} | {row['ratio']:.2f} | {row['rounds']} x {row['runs']} |")
    return "\n".join(lines) + "\n\n" + _host(data)


def training() -> str:
    data = json.loads((RESULTS / "training.json").read_text())
    lines = ["| model | images | batch | processes x threads | decode threads | prefetch | epoch s | waited for data s "
             "| busy | images/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in data["rows"]:
        lines.append(f"| {row['model']} | {row['images']} | {row.get('batch_size', 128)} "
                     f"| {row['processes']} x {row['threads']} | {row.get('workers') or '-'} | {row['prefetch']} "
                     f"| {row['seconds']:.1f} | {row['data_wait_seconds']:.2f} | {row['busy_percent']:.1f}% "
                     f"| {row['images_per_second']:.0f} |")
    return "\n".join(lines) + "\n\n" + _host(data)


def load_time() -> str:
    data = json.loads((RESULTS / "load-time.json").read_text())
    lines = ["| model | parameters | layout detected | load s (median) |", "| --- | --- | --- | --- |"]
    for row in data["rows"]:
        lines.append(f"| {row['model']} | {row['params'] / 1e6:.2f} M | {row['layout']} | {row['seconds']:.2f} |")
    return "\n".join(lines) + f"\n\nWorst: {data['worst_seconds']:.2f} s (goal {data['goal_seconds']:.0f} s), " \
        f"median of {data['repeats']} fresh processes each. " + _host(data)


def _host(data: dict) -> str:
    host = data["host"]
    return f"Host: {host['cpu']}, {host['cores']} cores, {host['os']}, Python {host['python']}."


TABLES = {
    "targets-resnet20": lambda: targets_vs_raw("resnet20"),
    "targets-resnet20-pruned": lambda: targets_vs_raw("resnet20-pruned"),
    "targets-resnet56": lambda: targets_vs_raw("resnet56"),
    "targets-resnet56-with-qat": lambda: targets_vs_raw("resnet56-with-qat"),
    "rerun-resnet20": lambda: rerun("resnet20"),
    "paired-resnet20": lambda: paired_accuracy("resnet20"),
    "paired-resnet56": lambda: paired_accuracy("resnet56"),
    **{f"paired-ptq-{model}": (lambda model=model: paired_accuracy(model, "paired-ptq"))
       for model in ("resnet20", "resnet56", "resnet20-12fca82f", "resnet56-4bfd9763")},
    "ptq-fidelity": lambda: _script("ptq_fidelity").table(),
    "ptq-settings": lambda: _script("ptq_settings").table(),
    "ptq-time": lambda: _script("ptq_time").table(),
    "tflite-exact-fidelity": lambda: _script("tflite_exact_fidelity").table(),
    "openvino-cpu-fidelity": lambda: _script("openvino_cpu_fidelity").table(),
    "scaling": scaling,
    "runner-vs-vendor": runner_vs_vendor,
    "training": training,
    "foreign-models": lambda: _script("foreign_models").table(),
    "load-time": load_time,
}


def _script(name: str):
    """A benchmark script that renders its own table (it knows its JSON best), imported by path."""
    import importlib.util
    import sys

    if str(HERE) not in sys.path:  # the scripts import their siblings (measuring.py) by name
        sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(readme: Path = HERE / "README.md") -> None:
    text = readme.read_text()
    for name, make in TABLES.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n).*?(<!-- /table:{name} -->)", re.S)
        if pattern.search(text):
            try:
                table = make()
            except FileNotFoundError as missing:
                table = f"(not measured yet: {Path(missing.filename).name} is missing)"
            text = pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)
    readme.write_text(text)


if __name__ == "__main__":
    render()
