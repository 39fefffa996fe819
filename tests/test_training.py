"""The training engine (batches, augmentation, losses, loop with resume) and the distill stage."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import edgeresnet
from edgeresnet.data import open_dataset
from edgeresnet.errors import DataError, EdgeResNetError
from edgeresnet.models import create
from edgeresnet.preprocess import Preprocess
from edgeresnet.stages.distill import DistillConfig, distill
from edgeresnet.loading import load_model
from edgeresnet.training.augment import crop_flip, resized_crop, resolve
from edgeresnet.training.config import TrainConfig
from edgeresnet.training.data import TrainBatches
from edgeresnet.training.losses import FeatureDistiller, kd_loss
from edgeresnet.training.loop import fit, learning_rate

from helpers import make_image_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return open_dataset(make_image_folder(tmp_path_factory.mktemp("train"), per_class=8))


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return load_model(create("resnet8", num_classes=2))


@pytest.fixture(scope="module")
def student(teacher):
    return edgeresnet.prune(teacher, edgeresnet.PruneConfig(ratio=0.5, importance="l1"))


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- losses


def test_kd_loss_is_the_hand_computed_mix():
    s = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    t = torch.tensor([[1.0, 1.5, 0.0], [-2.0, 0.0, 2.0]])
    labels = torch.tensor([0, 2])
    temperature = 2.0

    def softmax(x):
        e = np.exp(x - x.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p_t, p_s = softmax(t.numpy() / temperature), softmax(s.numpy() / temperature)
    kl = (p_t * (np.log(p_t) - np.log(p_s))).sum() / 2  # batchmean
    ce = -np.log(softmax(s.numpy())[[0, 1], [0, 2]]).mean()

    assert kd_loss(s, t, labels, 1.0, temperature).item() == pytest.approx(kl * temperature**2, rel=1e-5)
    assert kd_loss(s, t, labels, 0.0, temperature).item() == pytest.approx(ce, rel=1e-5)
    assert kd_loss(s, t, labels, 0.3, temperature).item() == pytest.approx(0.3 * kl * 4 + 0.7 * ce, rel=1e-5)
    assert kd_loss(t, t, labels, 1.0, temperature).item() == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- augmentation


def test_crop_flip_is_a_padded_crop_and_flip_drawn_from_the_generator():
    x = torch.randn(16, 3, 32, 32)
    out = crop_flip(x, generator(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, crop_flip(x, generator(1)))
    assert not torch.equal(out, crop_flip(x, generator(2)))

    # The same draws, one image at a time: the vectorised gather does exactly this.
    g, pad = generator(1), 4
    top, left = torch.randint(0, 9, (16,), generator=g), torch.randint(0, 9, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = F.pad(x, (pad,) * 4)
    for i in range(16):
        expected = padded[i, :, top[i] : top[i] + 32, left[i] : left[i] + 32]
        assert torch.equal(out[i], expected.flip(-1) if flip[i] else expected)


def test_crop_flip_pads_with_the_mean_colour(data):
    """Pixels of exactly the mean colour normalise to 0; padding must be 0 as well, so an
    image of the mean colour stays uniform however it is shifted."""
    spec = Preprocess.cifar()
    config = TrainConfig(batch_size=16, augment="crop-flip")
    batches = TrainBatches(data, spec, config, progress=False)
    mean_colour = np.round(np.array(spec.mean) * 255).astype(np.uint8)
    batches._pixels[:] = mean_colour  # every image is the (rounded) mean colour
    inputs, _ = next(batches.epoch(0))
    assert inputs.abs().max() < 0.01  # only the rounding of the mean to 8 bits is left

    ones = crop_flip(torch.ones(64, 3, 32, 32), generator())
    assert set(ones.unique().tolist()) == {0.0, 1.0}


def test_resized_crop_shapes_and_dtypes():
    x = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    out = resized_crop(x, generator(), size=32)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.uint8
    assert torch.equal(out, resized_crop(x, generator(), size=32))
    assert resized_crop(x.float(), generator()).shape == (4, 3, 40, 40)
    assert resolve("auto", 32) == "crop-flip" and resolve("auto", 224) == "resize-crop-flip"


# --------------------------------------------------------------------------- batches


def test_batches_are_seeded_per_epoch(data):
    config = TrainConfig(batch_size=6, seed=3)
    batches = TrainBatches(data, Preprocess.cifar(), config, progress=False)
    assert len(batches) == 2  # 16 images: two full batches of 6, the last 4 dropped
    first = list(batches.epoch(0))
    again = list(TrainBatches(data, Preprocess.cifar(), config, progress=False).epoch(0))
    for (x, y), (x2, y2) in zip(first, again):
        assert x.shape == (6, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(first[0][0], next(batches.epoch(1))[0])


def test_batches_of_large_images_are_decoded_per_batch(tmp_path):
    dataset = open_dataset(make_image_folder(tmp_path, per_class=2, size=150))
    config = TrainConfig(batch_size=4)
    batches = TrainBatches(dataset, Preprocess.imagenet(128), config, progress=False)
    assert batches._pixels is None and batches.mode == "resize-crop-flip"
    x, y = next(batches.epoch(0))
    assert x.shape == (4, 3, 128, 128) and y.shape == (4,)
    assert torch.equal(x, next(batches.epoch(0))[0])


def test_too_little_data_is_a_data_error(data):
    with pytest.raises(DataError, match="at least 2 images"):
        TrainBatches(data, Preprocess.cifar(), TrainConfig(limit=1), progress=False)


def test_learning_rate_warms_up_then_decays_to_zero():
    config = TrainConfig(epochs=4, lr=0.1, warmup_epochs=1)
    rates = [learning_rate(config, step, 10) for step in range(40)]
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1) and rates[10] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and rates[-1] < 0.001
    assert learning_rate(config.model_copy(update={"schedule": "constant"}), 30, 10) == 0.1


# --------------------------------------------------------------------------- distill


def _kd_on(model, teacher, data, config) -> float:
    """The KD loss of ``model`` against ``teacher`` on the data, without augmentation."""
    x, y = next(TrainBatches(data, model.preprocess, config.model_copy(update={"augment": "none"}),
                             progress=False).epoch(0))
    with torch.no_grad():
        return kd_loss(model.module.eval()(x), teacher.module.eval()(x), y, config.alpha, config.temperature).item()


def test_distill_moves_the_student_toward_the_teacher_and_leaves_inputs_alone(student, teacher, data):
    config = DistillConfig(epochs=4, batch_size=16, lr=0.05, augment="none", feature_weight=0.5)
    prints = (student.fingerprint(), teacher.fingerprint())
    before = _kd_on(student, teacher, data, config)
    trained, history = distill(student, teacher, config, data, validation=data)

    assert (student.fingerprint(), teacher.fingerprint()) == prints
    assert not teacher.module.training and trained.module is not student.module
    assert _kd_on(trained, teacher, data, config) < before
    assert [r.epoch for r in history] == [1, 2, 3, 4] and all(r.val_top1 is not None for r in history)
    assert trained.plan == student.plan and not trained.module.training
    hooked = [m for m in (*trained.module.modules(), *teacher.module.modules()) if m._forward_hooks]
    assert not hooked


def test_distill_rejects_models_that_do_not_pair(student, data):
    three = load_model(create("resnet8", num_classes=3))
    with pytest.raises(EdgeResNetError, match="2 outputs and the teacher 3"):
        distill(student, three, DistillConfig(), data)
    larger = student.replace(preprocess=Preprocess(input_size=40, resize=None))
    with pytest.raises(EdgeResNetError, match="40x40"):
        distill(larger, student, DistillConfig(), data)


def test_feature_distiller_maps_a_pruned_student_to_the_teacher(student, teacher):
    s, t = copy.deepcopy(student.module).train(), copy.deepcopy(teacher.module).eval()
    features = FeatureDistiller(s, t, 32)
    assert features.stages == ["layer1", "layer2", "layer3"]
    assert [a.out_channels for a in features.adapters] == [16, 32, 64]
    assert sum(a.in_channels for a in features.adapters) < 16 + 32 + 64  # the student is narrower
    assert s.training and not t.training  # the width probe left the modes as they were
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        t(x)
    s(x)
    loss = features.loss()
    loss.backward()
    assert math.isfinite(loss.item()) and features.adapters[0].weight.grad is not None
    assert s.conv1.weight.grad is not None
    features.remove()
    assert not s.layer1._forward_hooks and not t.layer1._forward_hooks


# --------------------------------------------------------------------------- resume


RESUME = DistillConfig(epochs=3, batch_size=4, limit=8, lr=0.05, feature_weight=0.5)


class Stop(Exception):
    pass


def _run(student, teacher, data, directory, config=RESUME, stop_at=None, log=lambda message: None):
    """fit as distill uses it, on fresh copies; ``stop_at`` kills it before that step."""
    module, frozen = copy.deepcopy(student.module), copy.deepcopy(teacher.module).eval()
    features = FeatureDistiller(module, frozen, 32, seed=config.seed)

    def loss_fn(net, x, y):
        with torch.no_grad():
            target = frozen(x)
        logits = net(x)
        return kd_loss(logits, target, y, config.alpha, config.temperature) + features.loss(), logits

    def on_step(step, total):
        assert total == 6
        if step == stop_at:
            raise Stop

    batches = TrainBatches(data, student.preprocess, config, progress=False)
    try:
        history = fit(module, batches, config, loss_fn, extra_parameters=[features], checkpoint_dir=directory,
                      on_step=on_step, log=log)
    finally:
        features.remove()
    return {**module.state_dict(), **features.state_dict()}, history


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_resumed_run_ends_bit_identical(student, teacher, data, tmp_path):
    straight, history = _run(student, teacher, data, tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["epoch-002.pt", "epoch-003.pt"]

    with pytest.raises(Stop):
        _run(student, teacher, data, tmp_path / "b", stop_at=5)  # killed in the third epoch
    messages = []
    resumed, resumed_history = _run(student, teacher, data, tmp_path / "b", log=messages.append)
    assert any("resuming after epoch 2" in m for m in messages)
    _assert_same(straight, resumed)
    assert [r.loss for r in resumed_history] == [r.loss for r in history]

    # A truncated newest checkpoint: the one before it is used, to the same end.
    newest = tmp_path / "a" / "epoch-003.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    messages = []
    again, _ = _run(student, teacher, data, tmp_path / "a", log=messages.append)
    assert any("skipping unreadable checkpoint epoch-003.pt" in m for m in messages)
    assert any("resuming after epoch 2" in m for m in messages)
    _assert_same(straight, again)

    with pytest.raises(EdgeResNetError, match="different settings"):
        _run(student, teacher, data, tmp_path / "a", config=RESUME.model_copy(update={"lr": 0.01}))


def test_bf16_training_runs_in_bfloat16_and_resumes_bit_identical(student, teacher, data, tmp_path):
    config = RESUME.model_copy(update={"precision": "bf16"})
    straight, history = _run(student, teacher, data, tmp_path / "a", config=config)
    fp32, fp32_history = _run(student, teacher, data, tmp_path / "c")
    assert [r.loss for r in history] != [r.loss for r in fp32_history]  # autocast is in effect
    with pytest.raises(Stop):
        _run(student, teacher, data, tmp_path / "b", config=config, stop_at=5)
    resumed, _ = _run(student, teacher, data, tmp_path / "b", config=config)
    _assert_same(straight, resumed)
    assert all(value.dtype != torch.bfloat16 for value in straight.values())  # weights stay float32
