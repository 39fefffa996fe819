"""Table 5: ResNets written elsewhere, trained by their own project's recipe, through edgeresnet.

Three ResNet-18 layouts as their source projects define them (tests/foreign_layouts.py holds
the classes, in plain PyTorch): kuangliu/pytorch-cifar's ResNet-18 and PreAct ResNet-18, and
timm's SE-ResNet-18 (``seresnet18``: BasicBlock with ``attn_layer='se'``). All three keep the
[2, 2, 2, 2] blocks; their width is cut to --width (64 in the originals) so that training fits
this machine. For each model the script

1. trains it on train.zip in plain PyTorch as its own project would (SGD, momentum 0.9,
   Nesterov, weight decay 5e-4, one-cycle cosine learning rate peaking at --lr, batch 128,
   random 32x32 crops of the image padded by 4 black pixels, horizontal flips; seeded), and
   saves it in its source's own format: kuangliu's ``{'net': state_dict, 'acc', 'epoch'}`` in
   ``ckpt.pth``, timm's bare state dict in a ``.pth``; its FP32 top-1 on test.zip is measured
   here, in PyTorch, on the 10,000 images;
2. runs ``edgeresnet inspect`` on the checkpoint (the layout edgeresnet detects, params, MACs)
   and ``edgeresnet compress CKPT --recipe ptq-int8 --target tflite-int8,openvino-int8``,
   recording each file's top-1, delta against edgeresnet's own pytorch-fp32 row, agreement,
   size, and the command's wall time; the goal is to lose at most 0.3 points of top-1;
3. with --prune, ``compress --recipe prune-distill-qat-int8 -o prune.macs=1.5 -o
   distill.epochs=1 -o qat.epochs=1 --target openvino-int8 --max-accuracy-drop 100``:
   whether it ran to the end, the MACs factor and the file's top-1.

Every model is trained before any is compressed, and every ptq run comes before any prune run.
The timm layout is an ImageNet one (7x7 stem, max pool), so edgeresnet would assume 224x224
input resized from 256; trained here on 32x32 images, its inspect and compress commands say so
(``--input-size 32 --resize none``), as its user would. Preprocessing everywhere: RGB, [0, 1],
ImageNet mean and std, no resize (../shared/README.md), which is edgeresnet's default for
the CIFAR layouts.

    .venv/bin/python benchmarks/foreign_models.py [--models kuangliu_resnet18,kuangliu_preact_resnet18,timm_seresnet18]
        [--epochs 3] [--width 16] [--prune] [--out results/foreign-models.json] [--work DIR] [--reuse [--no-ptq]]
    .venv/bin/python benchmarks/tables.py                      # the README table from the JSON

--reuse takes a checkpoint already trained in --work with the same settings instead of training
again; --no-ptq then skips step 2 and keeps the ptq rows of the run that trained it. A run of
some --models replaces those models' entries in --out and keeps the others. When a ptq run
fails edgeresnet's agreement check, it runs again with --min-agreement --retry-min-agreement
(the ``ptq_retry`` rows), so that its files are measured too.

Time on this 2-core host, shared with other work (load 3 to 6 while it ran): an epoch of a
width-8 model took 200-370 s (the 16-wide kuangliu ResNet-18, 477 s), each ptq-int8 run 30-55 s;
the --prune runs (a distillation and a QAT epoch each) have not been timed here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from measuring import BIN, HERE, host

ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
DATA = SHARED / "datasets" / "cifar10-jpeg"
MODELS = ("kuangliu_resnet18", "kuangliu_preact_resnet18", "timm_seresnet18")
SOURCE = {
    "kuangliu_resnet18": "kuangliu/pytorch-cifar models/resnet.py ResNet18",
    "kuangliu_preact_resnet18": "kuangliu/pytorch-cifar models/preact_resnet.py PreActResNet18",
    "timm_seresnet18": "timm resnet.py seresnet18 (BasicBlock, attn_layer='se')",
}
GOAL_POINTS = 0.3  # "loses at most 0.3 points top-1 on the 10,000 test images"
PTQ_TARGETS = "tflite-int8,openvino-int8"
PRUNE_SETTINGS = ("prune.macs=1.5", "distill.epochs=1", "qat.epochs=1")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--epochs", type=int, default=3, help="training epochs on train.zip")
    parser.add_argument("--width", type=int, default=16, help="first stage's width (64 in the originals)")
    parser.add_argument("--lr", type=float, default=0.1, help="peak of the one-cycle learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prune", action="store_true", help="also run prune-distill-qat-int8 (step 3)")
    parser.add_argument("--targets", default="openvino-int8", help="targets of the --prune runs")
    parser.add_argument("--out", default=str(HERE / "results" / "foreign-models.json"))
    parser.add_argument("--work", default="/tmp/edgeresnet-foreign-models",
                        help="checkpoints and compress run directories")
    parser.add_argument("--reuse", action="store_true", help="reuse checkpoints trained in --work with these settings")
    parser.add_argument("--no-ptq", action="store_true",
                        help="skip step 2, keeping the ptq rows --out holds for a reused checkpoint")
    parser.add_argument("--retry-min-agreement", type=float, default=90.0,
                        help="when a ptq run fails edgeresnet's 98%% agreement check, run it again with "
                             "--min-agreement at this bar to measure its files (0: do not)")
    args = parser.parse_args()
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")

    import torch

    torch.set_num_threads(2)
    started = time.perf_counter()
    out, work = Path(args.out), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/foreign_models.py", *sys.argv[1:]])
    settings = {"epochs": args.epochs, "width": args.width, "lr": args.lr, "seed": args.seed, "batch_size": 128,
                "optimizer": "sgd nesterov momentum 0.9 weight_decay 5e-4", "schedule": "one-cycle cosine",
                "augment": "random crop 32 of 4-pixel black padding, horizontal flip", "threads": 2}
    run = {"command": command, "date": time.strftime("%Y-%m-%d"), "host": host(), "settings": settings}
    entries = {name: {"model": name, "source": SOURCE[name], **run} for name in names}

    # What an earlier run measured (--no-ptq keeps its ptq rows), read before this run writes.
    previous = {m["model"]: m for m in json.loads(out.read_text())["models"]} if out.exists() else {}

    def save() -> None:
        _write(out, run, entries, started)

    # 1. Train every model first (the slow part, alone on the CPU), then compress.
    train_images = None
    for name in names:
        ckpt = work / name / _checkpoint_name(name)
        record = work / name / "training.json"
        wanted = {"model": name, **settings}
        if args.reuse and ckpt.exists() and record.exists() and \
                json.loads(record.read_text()).get("settings") == wanted:
            training = json.loads(record.read_text())
            training["reused"] = str(ckpt)
            print(f"[{name}] reusing {ckpt}", file=sys.stderr)
        else:
            if train_images is None:
                train_images = _decoded(DATA / "train.zip", work)
                test_images = _decoded(DATA / "test.zip", work)
            training = train(name, args, train_images, test_images, ckpt)
            training["settings"] = wanted
            training["command"] = command  # the run that trained it, which a --reuse run names too
            record.write_text(json.dumps(training, indent=2) + "\n")
        entries[name]["checkpoint"] = str(ckpt)
        entries[name]["training"] = {k: v for k, v in training.items() if k != "settings"}
        entries[name]["inspect"] = inspect(name, ckpt)
        save()

    # 2. ptq-int8 for every model.
    for name in names:
        ckpt = Path(entries[name]["checkpoint"])
        if args.no_ptq:
            earlier = previous.get(name, {})
            if "reused" in entries[name]["training"] and earlier.get("checkpoint") == str(ckpt) and "ptq" in earlier:
                for key in ("ptq", "ptq_retry"):
                    if key in earlier:
                        entries[name][key] = {"from_run": earlier["command"], **earlier[key]}
        else:
            entries[name]["ptq"] = compress(
                name, ckpt, work / name / "ptq-int8", ["--recipe", "ptq-int8", "--target", PTQ_TARGETS])
            entries[name].pop("ptq_retry", None)
            save()
        # The 98% agreement check failed: the same run with a lower bar, to see what its files score.
        failed = entries[name].get("ptq", {})
        if args.retry_min_agreement and "ptq_retry" not in entries[name] and not failed.get("finished", True) \
                and "agrees with the PyTorch model" in failed.get("error", ""):
            entries[name]["ptq_retry"] = compress(
                name, ckpt, work / name / "ptq-int8-retry",
                ["--recipe", "ptq-int8", "--target", PTQ_TARGETS, "--min-agreement", f"{args.retry_min_agreement:g}"])
            save()

    # 3. prune-distill-qat-int8 for every model.
    if args.prune:
        for name in names:
            ckpt = Path(entries[name]["checkpoint"])
            sets = [arg for setting in PRUNE_SETTINGS for arg in ("-o", setting)]
            entries[name]["prune"] = compress(
                name, ckpt, work / name / "prune-distill-qat-int8",
                ["--recipe", "prune-distill-qat-int8", *sets, "--target", args.targets, "--max-accuracy-drop", "100"])
            save()
    save()
    print(f"wrote {out} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)


# --------------------------------------------------------------------------- models and data


def build(name: str, width: int):
    sys.path.insert(0, str(ROOT / "tests"))
    from foreign_layouts import (CifarBasicBlock, CifarResNet, PreActBlock, PreActResNet, TimmBasicBlock,
                                 TimmResNet)

    if name == "kuangliu_resnet18":
        return CifarResNet(CifarBasicBlock, [2, 2, 2, 2], num_classes=10, w=width)
    if name == "kuangliu_preact_resnet18":
        return PreActResNet(PreActBlock, [2, 2, 2, 2], num_classes=10, w=width)
    # timm's stem stays 64 wide (stem_type=''), as in seresnet18; the stages take the width.
    return TimmResNet(TimmBasicBlock, [2, 2, 2, 2], num_classes=10,
                      channels=(width, 2 * width, 4 * width, 8 * width), block_args=dict(attn_layer="se"))


def _checkpoint_name(name: str) -> str:
    return "ckpt.pth" if name.startswith("kuangliu") else "seresnet18.pth"


def _extra_flags(name: str) -> list[str]:
    """What a user passes for a model whose layout edgeresnet reads as ImageNet's, trained at 32x32."""
    return ["--input-size", "32", "--resize", "none"] if name.startswith("timm") else []


def _decoded(zip_path: Path, work: Path):
    """The data set as (uint8 NHWC pixels, int64 labels), decoded once and kept in --work."""
    import numpy as np

    from edgeresnet.data import open_dataset

    cache = work / f"{zip_path.stem}-decoded.npz"
    if cache.exists():
        with np.load(cache) as saved:
            return saved["x"], saved["y"]
    start = time.perf_counter()
    dataset = open_dataset(zip_path)
    x = np.stack([dataset.image(i) for i in range(len(dataset))])
    y = np.array(dataset.labels, dtype=np.int64)  # a copy: the data set's labels are read-only
    np.savez(cache, x=x, y=y)
    print(f"decoded {zip_path.name}: {x.shape} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return x, y


def _normalised(x_uint8):
    import torch

    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x_uint8.permute(0, 3, 1, 2).float() / 255 - mean) / std


def train(name: str, args, train_images, test_images, ckpt: Path) -> dict:
    """The source project's training loop, in plain PyTorch; saves the checkpoint in its format."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(args.seed)
    model = build(name, args.width)
    x_all, y_all = torch.from_numpy(train_images[0]), torch.from_numpy(train_images[1])
    generator = torch.Generator().manual_seed(args.seed)
    batch, n = 128, len(x_all)
    steps_per_epoch = (n + batch - 1) // batch
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.25,
        anneal_strategy="cos", cycle_momentum=False)
    epochs, start = [], time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        t0, loss_sum, correct = time.perf_counter(), 0.0, 0
        order = torch.randperm(n, generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * batch:(step + 1) * batch]
            images = _augment(x_all[index], generator)
            labels = y_all[index]
            logits = model(_normalised(images))
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(index)
            correct += int((logits.argmax(1) == labels).sum())
        seconds = time.perf_counter() - t0
        epochs.append({"epoch": epoch, "loss": round(loss_sum / n, 4), "train_top1": round(100 * correct / n, 2),
                       "seconds": round(seconds, 1)})
        print(f"[{name}] epoch {epoch}: {epochs[-1]}", file=sys.stderr)
    train_seconds = time.perf_counter() - start
    top1 = evaluate(model, test_images)
    print(f"[{name}] FP32 top-1 {top1:.2f}% on {len(test_images[1])} test images", file=sys.stderr)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if name.startswith("kuangliu"):  # pytorch-cifar main.py (on the CPU: no DataParallel, no `module.`)
        torch.save({"net": state, "acc": top1, "epoch": args.epochs - 1}, ckpt)
        fmt = "kuangliu ckpt.pth: {'net': state_dict, 'acc': top1, 'epoch': last epoch}"
    else:  # timm: torch.save(model.state_dict(), ...)
        torch.save(state, ckpt)
        fmt = "timm: state dict .pth"
    return {"epochs": args.epochs, "seconds": round(train_seconds, 1), "per_epoch": epochs,
            "fp32_top1": round(top1, 2), "test_images": int(len(test_images[1])), "format": fmt}


def _augment(images, generator):
    """RandomCrop(32, padding=4) with black padding and RandomHorizontalFlip, on uint8 NHWC."""
    import torch
    import torch.nn.functional as F

    b, h, w, _ = images.shape
    padded = F.pad(images.permute(0, 3, 1, 2), (4, 4, 4, 4)).permute(0, 2, 3, 1)
    offsets = torch.randint(0, 9, (b, 2), generator=generator).tolist()
    cropped = torch.stack([padded[i, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
    flip = torch.rand(b, generator=generator) < 0.5
    return torch.where(flip.view(b, 1, 1, 1), cropped.flip(2), cropped)


def evaluate(model, test_images) -> float:
    import torch

    model.eval()
    x, y = torch.from_numpy(test_images[0]), torch.from_numpy(test_images[1])
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), 500):
            correct += int((model(_normalised(x[start:start + 500])).argmax(1) == y[start:start + 500]).sum())
    return 100 * correct / len(x)


# --------------------------------------------------------------------------- edgeresnet


def inspect(name: str, ckpt: Path) -> dict:
    cmd = [str(BIN / "edgeresnet"), "inspect", str(ckpt), *_extra_flags(name), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"command": _shown(cmd), "exit_code": done.returncode, "error": _error_line(done.stderr)}
    data = json.loads(done.stdout)
    return {"command": _shown(cmd), "layout": data.get("layout"), "description": data.get("description"),
            "family": data.get("family"), "input_size": data.get("input_size"), "params": data.get("params"),
            "macs": data.get("macs"), "structure": data.get("structure")}


def compress(name: str, ckpt: Path, out_dir: Path, recipe_args: list[str]) -> dict:
    cmd = [str(BIN / "edgeresnet"), "compress", str(ckpt), "--data", str(DATA / "test.zip"),
           "--train-data", str(DATA / "train.zip"), *recipe_args, *_extra_flags(name),
           "--out", str(out_dir), "--overwrite", "--json"]
    print(f"[{name}] {_shown(cmd)}", file=sys.stderr)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    log = out_dir.parent / f"{out_dir.name}.log"
    start = time.perf_counter()
    with log.open("w") as err:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS="2"))
    seconds = time.perf_counter() - start
    result = {"command": _shown(cmd), "seconds": round(seconds, 1), "exit_code": done.returncode,
              "finished": False, "log": str(log)}
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
        if (out_dir / "report.json").exists() and done.returncode == 0:
            report = json.loads((out_dir / "report.json").read_text())
    if done.returncode not in (0, 3) or report is None:
        result["error"] = _error_line(log.read_text())
        print(f"[{name}] failed ({done.returncode}): {result['error']}", file=sys.stderr)
        return result
    result["finished"] = True
    if done.returncode == 3:
        result["error"] = _error_line(log.read_text())
    rows = {row["target"]: row for row in report["results"]}
    fp32 = rows.get("pytorch-fp32")
    result["fp32_top1"] = fp32["top1"] if fp32 else None
    result["stage_seconds"] = report.get("seconds")
    result["rows"] = []
    for row in report["results"]:
        if row["target"] == "pytorch-fp32":
            continue
        delta = row["delta_top1"]
        result["rows"].append({
            "target": row["target"], "top1": row["top1"], "delta_top1": delta, "agreement_fp32": row["agreement"],
            "size_bytes": row["size_bytes"], "source": row.get("source"),
            "meets_goal": None if delta is None else delta >= -GOAL_POINTS - 1e-9})
    stages = report.get("stages") or []
    if stages:
        result["stages"] = [{"stage": s["stage"], "top1": s["top1"], "macs": s["macs"], "params": s["params"],
                             "seconds": s["seconds"]} for s in stages]
        first, last = stages[0], stages[-1]
        result["macs_factor"] = round(first["macs"] / last["macs"], 3) if last["macs"] else None
    for row in result["rows"]:
        print(f"[{name}] {row['target']}: {row['top1']:.2f}% ({row['delta_top1']:+.2f}), "
              f"agreement {row['agreement_fp32']:.2f}%, {row['size_bytes']} B", file=sys.stderr)
    return result


def _shown(cmd: list[str]) -> str:
    """The command as a user types it from the repository root."""
    text = " ".join(shlex.quote(part) for part in cmd)
    return text.replace(str(BIN / "edgeresnet"), ".venv/bin/edgeresnet").replace(str(SHARED), "../shared")


def _error_line(text: str) -> str:
    """The last line that names an error (edgeresnet prints 'error: ...'), else the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"error", line, re.I):
            return line
    return lines[-1] if lines else ""


def _write(out: Path, run: dict, entries: dict, started: float) -> None:
    """This run's models replace their entries of an earlier file; the others stay."""
    previous = json.loads(out.read_text()) if out.exists() else {}
    models = {m["model"]: m for m in previous.get("models", [])}
    models.update(entries)
    ordered = [models[name] for name in MODELS if name in models]
    data = {
        "what": "ResNets of other projects' layouts, trained by their own recipe, through edgeresnet ptq-int8 "
                "(and prune-distill-qat-int8 with --prune)",
        "goal": f"each int8 file loses at most {GOAL_POINTS} points top-1 on the 10,000 test images",
        **run, "wall_seconds": round(time.perf_counter() - started, 1), "models": ordered,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")


# --------------------------------------------------------------------------- README table


def table(path: Path = HERE / "results" / "foreign-models.json") -> str:
    """Two tables: the models (what edgeresnet detected, their training), then every compress run's files."""
    data = json.loads(path.read_text())
    models = ["| model | source | layout edgeresnet detected | params | MACs | trained | FP32 top-1 |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    runs = ["| model | run | target | top-1 | delta | agrees with FP32 | size KB | loses at most 0.3 | compress s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in data["models"]:
        info, training = m.get("inspect", {}), m.get("training", {})
        models.append(
            f"| {m['model']} | {m['source']} | {info.get('layout')}: {info.get('description')} "
            f"| {info['params'] / 1e6:.3f} M | {info['macs'] / 1e6:.1f} M "
            f"| {training['epochs']} epochs, {training['seconds']:.0f} s | {training['fp32_top1']:.2f} |")
        for key in ("ptq", "ptq_retry", "prune"):
            run = m.get(key)
            if run is None:
                continue
            label = _run_label(key, run)
            if not run.get("finished"):
                runs.append(f"| {m['model']} | {label} | - | failed: {_failure(run.get('error', ''))} "
                            f"| | | | | {run['seconds']:.0f} |")
                continue
            for row in run["rows"]:
                runs.append(
                    f"| {m['model']} | {label} | {row['target']} | {row['top1']:.2f} | {row['delta_top1']:+.2f} "
                    f"| {row['agreement_fp32']:.2f}% | {row['size_bytes'] / 1024:.0f} "
                    f"| {_goal(key, row)} | {run['seconds']:.0f} |")
    host_ = data["host"]
    return ("\n".join(models) + "\n\n" + "\n".join(runs) + f"\n\nHost: {host_['cpu']}, {host_['cores']} cores, "
            f"{host_['os']}, Python {host_['python']}.")


def _goal(key: str, row: dict) -> str:
    """The ptq goal (at most 0.3 points lost); a prune run's goal is to run to the end, which it did."""
    if key == "prune":
        return "n/a (ran to the end)"
    return "yes" if row["meets_goal"] else "no"


def _run_label(key: str, run: dict) -> str:
    if key == "ptq":
        return "ptq-int8"
    if key == "ptq_retry":
        bar = re.search(r"--min-agreement (\S+)", run["command"])
        return f"ptq-int8, --min-agreement {bar.group(1) if bar else '?'}"
    label = "prune-distill-qat-int8 (" + ", ".join(PRUNE_SETTINGS) + ")"
    return label + (f", MACs / {run['macs_factor']:.2f}" if run.get("macs_factor") else "")


def _failure(error: str) -> str:
    """edgeresnet's error line, shortened to what failed."""
    flip = re.search(r"resnet-(\S+?)\.\w+ agrees with the PyTorch model on only ([\d.]+)% of (\d+) images "
                     r"\(needs ([\d.]+)%", error)
    if flip:
        target, agreement, images, bar = flip.groups()
        return f"{target} agrees with FP32 on {agreement}% of {images} images (needs {bar}%)"
    return error.removeprefix("error: ").split(";")[0]


if __name__ == "__main__":
    main()
