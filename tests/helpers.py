"""Small builders shared by the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 4, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


def make_tiny_compress_inputs(root: Path) -> Path:
    """A ResNet-8 checkpoint with two classes (resnet8.pt), and train/ and test/ folders of 32x32 images."""
    import torch

    import edgeresnet

    torch.manual_seed(0)
    module = edgeresnet.models.create("resnet8", num_classes=2).eval()
    torch.save(module.state_dict(), root / "resnet8.pt")
    make_image_folder(root / "train", classes=("a", "b"), per_class=32, seed=1)
    make_image_folder(root / "test", classes=("a", "b"), per_class=16, seed=2)
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it (``env``: variables set on top of ours)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "edgeresnet", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
    )


def error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failing command prints; asserts it is one line, exit code 2, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stdout == ""
    return errors[0]


def varied_batch_norms(module, seed: int = 0):
    """``module`` in eval mode with batch norms of non-trivial statistics, so that folding them
    (and int32 biases) is tested for real; seeded."""
    import torch

    torch.manual_seed(seed)
    for bn in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return module.eval()
