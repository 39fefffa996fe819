"""How long reading a model takes, beyond importing torch, for every layout edgeresnet loads.

Each model is saved as its source's users save it (tests/foreign_layouts.py builds them in
plain PyTorch), at full size where the source has one: torchvision ResNet-50 and ResNeXt-50,
a Hugging Face ResNet-50 folder (transformers' save_pretrained), pytorch-cifar ResNet-18,
timm SE-ResNet-50 and ResNet-50d layouts. Each load runs in a fresh process that imports
torch first and then times `import edgeresnet; edgeresnet.load_model(path)` (detection,
building, strict loading and, for a module, the equivalence check), the median of --repeats.
The goal: at most 2 s.

    .venv/bin/python benchmarks/load_time.py [--repeats 3] [--out benchmarks/results/load-time.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

_TIMED = """
import time, torch
start = time.perf_counter()
import edgeresnet
model = edgeresnet.load_model({path!r})
print(time.perf_counter() - start, model.layout, model.arch)
"""


def full_size_models():
    """name -> (module builder, saver): full-size layouts, as their projects define them."""
    import torch

    import foreign_layouts as fl

    def timm(block, layers, **kw):
        return lambda: fl.TimmResNet(block, layers, num_classes=1000, **kw)

    def hf():
        import transformers

        return transformers.ResNetForImageClassification(transformers.ResNetConfig(num_labels=1000))

    return {
        "torchvision resnet50": (lambda: fl.ResNet(fl.Bottleneck, [3, 4, 6, 3]), fl.save_state_dict_pth),
        "torchvision resnext50_32x4d": (lambda: fl.ResNet(fl.Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4),
                                        fl.save_state_dict_pth),
        "huggingface resnet-50 folder": (hf, fl.save_hf_pretrained),
        "timm resnet50d": (timm(fl.TimmBottleneck, [3, 4, 6, 3], stem_width=32, stem_type="deep", avg_down=True),
                           fl.save_safetensors),
        "timm seresnet50": (timm(fl.TimmBottleneck, [3, 4, 6, 3], block_args=dict(attn_layer="se")),
                            fl.save_state_dict_pth),
        "pytorch-cifar ResNet18": (lambda: fl.CifarResNet(fl.CifarBasicBlock, [2, 2, 2, 2]),
                                   lambda m, d: _kuangliu(m, d, torch)),
        "pytorch-cifar PreActResNet18": (lambda: fl.PreActResNet(fl.PreActBlock, [2, 2, 2, 2]),
                                         lambda m, d: _kuangliu(m, d, torch)),
    }


def _kuangliu(module, directory: Path, torch) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ckpt.pth"
    torch.save({"net": {f"module.{k}": v for k, v in module.state_dict().items()}, "acc": 0.0, "epoch": 0}, path)
    return path


def measure(path: Path, repeats: int) -> dict:
    times, layout, arch = [], None, None
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", _TIMED.format(path=str(path))], capture_output=True, text=True,
                              check=True)
        seconds, layout, arch = done.stdout.split()
        times.append(float(seconds))
    return {"seconds": round(statistics.median(times), 3), "all": [round(t, 3) for t in times], "layout": layout,
            "arch": arch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "load-time.json")
    args = parser.parse_args()
    import foreign_layouts as fl
    from edgeresnet.runner.host import host_info

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        builds = {f"{entry.name} (tiny)": (entry.build, entry.save) for entry in fl.CATALOGUE}
        for name, (build, save) in {**full_size_models(), **builds}.items():
            module = build().eval()
            path = save(module, Path(tmp) / name.replace(" ", "_"))
            params = sum(p.numel() for p in module.parameters())
            row = {"model": name, "params": params, **measure(path, args.repeats)}
            rows.append(row)
            print(f"{name:40s} {params / 1e6:7.2f} M params  {row['seconds']:.2f} s  {row['layout']}", flush=True)
    result = {"host": host_info(), "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats,
              "goal_seconds": 2.0, "worst_seconds": max(r["seconds"] for r in rows), "rows": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
