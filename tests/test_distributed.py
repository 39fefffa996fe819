"""Training on several processes (torchrun, DDP over gloo on this CPU) gives one process's result.

In float64 the two-process run must equal the one-process run to rounding (1e-10): any
difference in what the processes compute together (the split of each batch, the
averaging of gradients, batch norm's statistics, int8 ranges) would show far above that,
as the run without synchronised batch norm shows. In float32, through the CLI under
torchrun, the weights agree to float32's rounding grown over the steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import free_port, make_image_folder, make_tiny_compress_inputs, run_cli

RECIPE = """
name: ddp-check
targets: [{target}]
stages:
  - prune:
      ratio: 0.25
      importance: l1
      recalibrate_images: 0
  - distill:
      epochs: 2
      batch_size: 16
      sync_batchnorm: true
"""
QAT = """
  - qat:
      epochs: 1
      batch_size: 16
      sync_batchnorm: true
      calibration_images: 32
"""


# --------------------------------------------------------------------------- fit() in float64


CASES = [(True, None), (True, "tflite"), (True, "openvino"), (False, None)]  # (sync_batchnorm, QAT scheme)


def _train(rank: int, world: int, port: int, root: str) -> None:
    """One process of a job: fit() a ResNet-8 in float64 for each case (plain, or QAT for a
    scheme); rank 0 saves the weights and the history of each."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import importlib

    import torch.nn.functional as F

    import edgeresnet
    from edgeresnet import distributed
    from edgeresnet.data import open_dataset
    from edgeresnet.preprocess import Preprocess
    from edgeresnet.training.config import TrainConfig
    from edgeresnet.training.data import TrainBatches
    from edgeresnet.training.loop import fit

    def loss_fn(net, inputs, labels):
        logits = net(inputs.double())
        return F.cross_entropy(logits, labels), logits

    spec = Preprocess(input_size=32, resize=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    results = {}
    with distributed.process_group() if world > 1 else contextlib.nullcontext():
        for sync, scheme in CASES if world > 1 else [case for case in CASES if case[0]]:
            torch.manual_seed(0)
            module = edgeresnet.models.create("resnet8", num_classes=2)
            config = TrainConfig(epochs=2, batch_size=16, sync_batchnorm=sync)
            batches = TrainBatches(open_dataset(Path(root) / "train"), spec, config, progress=False)
            if scheme is not None:
                calibration = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
                simulator = importlib.import_module(f"edgeresnet.quantization.{scheme}")
                # OpenVINO: NNCF's quantizers (our CPU simulation computes in float32, as the plugin does,
                # so it cannot take part in this float64 comparison).
                prepare = simulator._nncf_prepare if scheme == "openvino" else simulator.prepare_for_training
                module = prepare(module, calibration, 64)
            module = module.double()
            history = fit(module, batches, config, loss_fn)
            results[f"{sync}-{scheme}"] = {"state": module.state_dict(),
                                           "history": [(r.loss, r.train_top1) for r in history]}
    if rank == 0:
        torch.save(results, Path(root) / f"{world}.pt")


def _largest_difference(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp-data")
    make_image_folder(root / "train", classes=("a", "b"), per_class=32, seed=1)
    return root


def test_two_processes_train_exactly_as_one_in_float64(images):
    import torch.multiprocessing as mp

    mp.spawn(_train, args=(1, 0, str(images)), nprocs=1)
    mp.spawn(_train, args=(2, free_port(), str(images)), nprocs=2)
    one, two = (torch.load(images / f"{world}.pt", weights_only=True) for world in (1, 2))
    for scheme in (None, "tflite", "openvino"):  # plain training, QAT for TFLite, QAT for OpenVINO (NNCF)
        reference, synced = one[f"True-{scheme}"], two[f"True-{scheme}"]
        assert _largest_difference(reference["state"], synced["state"]) < 1e-10, scheme
        np.testing.assert_allclose(reference["history"], synced["history"], rtol=1e-12)
    # The control: each process normalising its own half batch is another computation, and shows.
    assert _largest_difference(one["True-None"]["state"], two["False-None"]["state"]) > 1e-4


# --------------------------------------------------------------------------- the CLI under torchrun


def _torchrun(*args, cwd: Path, timeout: int = 600, wait: bool = True):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "edgeresnet", *map(str, args)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _compress_args(root: Path, out: str, qat: bool = True) -> list:
    """compress with prune, distill and (with ``qat``) QAT for tflite-int8; without, to ONNX (quicker)."""
    recipe = root / f"recipe-{qat}.yaml"
    recipe.write_text(RECIPE.format(target="tflite-int8" if qat else "onnx") + (QAT if qat else ""))
    return ["compress", "resnet8.pt", "--data", "test", "--train-data", "train", "--recipe", recipe.name,
            "--out", out, "--json"]


def _distilled(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run / "stages" / "02-distill" / "model.safetensors")


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if "checkpoints" not in p.parts}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """The same compress run on one process and under torchrun on two."""
    root = make_tiny_compress_inputs(tmp_path_factory.mktemp("ddp-cli"))
    one = run_cli(*_compress_args(root, "one"), cwd=root)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _torchrun(*_compress_args(root, "two"), cwd=root)
    assert two.returncode == 0, two.stderr[-3000:]
    (root / "two.stdout").write_text(two.stdout)
    return root


def test_compress_under_torchrun_gives_the_one_process_result(runs):
    two = runs / "two"
    assert "training stages run on 2 processes (torchrun), device cpu" in (two / "log.txt").read_text()
    assert json.loads((two / "config.json").read_text())["execution"]["processes"] == 2
    # Rank 0 alone reports and writes: one JSON document on stdout, the same files as one process.
    json.loads((runs / "two.stdout").read_text())
    assert _files(two) == _files(runs / "one")
    assert not list(runs.glob(".*partial*"))

    assert _largest_difference(_distilled(runs / "one"), _distilled(two)) < 1e-3  # float32 rounding, grown
    stages = [json.loads((run / "stages.json").read_text()) for run in (runs / "one", two)]
    for a, b in zip(*stages):
        assert a["stage"] == b["stage"]
        for x, y in zip(a["epochs"], b["epochs"]):
            assert x["loss"] == pytest.approx(y["loss"], abs=2e-3)
            assert x["train_top1"] == pytest.approx(y["train_top1"], abs=3.2)  # one image of 32 at a rounding tie
    reports = [json.loads((run / "report.json").read_text())["results"] for run in (runs / "one", two)]
    assert [r["target"] for r in reports[0]] == [r["target"] for r in reports[1]] == ["pytorch-fp32", "tflite-int8"]


def test_a_distributed_run_stopped_mid_training_resumes_to_the_same_weights(runs):
    """SIGTERM to torchrun (as a scheduler sends) during distillation, then --resume under torchrun:
    the distilled weights are those of the uninterrupted run (bit for bit)."""
    args = _compress_args(runs, "resumed", qat=False)
    job = _torchrun(*args, cwd=runs, wait=False)
    checkpoints = runs / ".resumed.partial" / "stages" / "02-distill" / "checkpoints"
    deadline = time.monotonic() + 300
    while not (checkpoints / "epoch-001.pt").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    job.communicate(timeout=120)
    assert job.returncode != 0 and not (runs / "resumed").exists()
    assert (checkpoints / "epoch-001.pt").exists()

    resumed = _torchrun(*args, "--resume", cwd=runs)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch 1" in (runs / "resumed" / "log.txt").read_text()
    assert _largest_difference(_distilled(runs / "two"), _distilled(runs / "resumed")) == 0.0


# --------------------------------------------------------------------------- devices, precision, the loader


def test_a_batch_that_does_not_split_over_the_processes_is_an_error(images, monkeypatch):
    from edgeresnet import distributed
    from edgeresnet.data import open_dataset
    from edgeresnet.errors import EdgeResNetError
    from edgeresnet.preprocess import Preprocess
    from edgeresnet.training.config import TrainConfig
    from edgeresnet.training.data import TrainBatches

    monkeypatch.setattr(distributed, "_world", distributed.World(rank=1, size=3))
    spec = Preprocess(input_size=32, resize=None)
    with pytest.raises(EdgeResNetError, match="a batch of 16 images does not split evenly over 3 processes"):
        TrainBatches(open_dataset(images / "train"), spec, TrainConfig(batch_size=16), progress=False)
    batches = TrainBatches(open_dataset(images / "train"), spec, TrainConfig(batch_size=15), progress=False)
    whole = TrainBatches.__new__(TrainBatches)
    whole.__dict__ = dict(batches.__dict__, part=slice(0, 15), prefetch=0)
    for (mine, my_labels), (all_, labels) in zip(batches.epoch(0), whole.epoch(0)):
        torch.testing.assert_close(mine, all_[5:10])  # rank 1 of 3: the second fifth of every batch
        assert torch.equal(my_labels, labels[5:10])


# The producer thread must end cleanly for any iterator, not only generators (an error in it
# would otherwise pass unseen: threads' exceptions are only warnings).
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_prefetching_keeps_order_and_passes_errors_on():
    from edgeresnet.training.data import prefetched

    assert list(prefetched(iter(range(100)), 3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("decoding failed")

    with pytest.raises(ValueError, match="decoding failed"):
        list(prefetched(failing(), 2))

    stopped = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            stopped.append(True)

    items = prefetched(endless(), 2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()  # the consumer stops early: the producer thread ends, its source is closed
    assert stopped == [True]
