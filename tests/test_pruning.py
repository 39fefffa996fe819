"""Structured pruning: correct on every architecture of the zoo, exact where it should be."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import edgeresnet
from edgeresnet.errors import EdgeResNetError
from edgeresnet.loading import load_model
from edgeresnet.models import create, list_models
from edgeresnet.models.spec import ArchSpec
from edgeresnet.models.summary import count_macs, meta_copy
from edgeresnet.pruning.importance import channel_scores, unit_scores
from edgeresnet.pruning.select import choose, keep_counts, removable_blocks
from edgeresnet.pruning.structure import analyse
from edgeresnet.pruning.surgery import cut
from edgeresnet.stages.prune import PruneConfig, prune

RATIOS = (0.1, 0.37, 0.6, 0.9)


def _random_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norms with spread-out statistics, so that every channel's removal shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for norm in module.modules():
            if isinstance(norm, nn.BatchNorm2d):
                for tensor, low, high in ((norm.weight, 0.2, 1.0), (norm.bias, -0.2, 0.2),
                                          (norm.running_mean, -0.1, 0.1), (norm.running_var, 0.5, 2.0)):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return module.eval()


def _masked(module, structure, keep, removed):
    """The unpruned model with every pruned channel silenced (its batch norms output 0):
    what the pruned model must compute exactly."""
    silenced = copy.deepcopy(module)
    with torch.no_grad():
        for space in structure.spaces.values():
            kept = set() if space.block in removed else set(keep[space.name])
            drop = [c for c in range(space.channels) if c not in kept]
            for name in space.norms:
                norm = silenced.get_submodule(name)
                norm.weight[drop] = 0
                norm.bias[drop] = 0
        for block in removed:  # a removed block adds nothing to the stream
            last = silenced.get_submodule(block)
            last = last.bn3 if hasattr(last, "bn3") else last.bn2
            last.weight.zero_()
            last.bias.zero_()
    return silenced


SMALL = {  # every block kind, shortcut kind and grouping, small enough to run for real
    "cifar-A": lambda: create("resnet20"),
    "cifar-B": lambda: create("resnet20", shortcut="B"),
    "basic-downsample": lambda: ArchSpec("imagenet", "basic", (2, 2, 2, 2), 16, 1, 64, "downsample", 10).build(),
    "bottleneck": lambda: ArchSpec("imagenet", "bottleneck", (2, 2, 2, 2), 16, 1, 64, "downsample", 10).build(),
    "resnext": lambda: ArchSpec("imagenet", "bottleneck", (2, 2, 2, 2), 16, 8, 16, "downsample", 10).build(),
}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_pruned_model_computes_exactly_the_masked_model(kind):
    """Property: for any ratio, scope and removed blocks, the smaller dense model equals the
    original with the pruned channels silenced: no channel mapping is off by one, at a
    zero-padding shortcut, a projection or in a grouped conv."""
    module = _random_norms(SMALL[kind]())
    structure = analyse(module)
    scores = unit_scores(structure, channel_scores(module, structure, "l2"))
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    blocks = removable_blocks(structure)
    rng = np.random.default_rng(0)
    for ratio in RATIOS:
        for scope in ("local", "global"):
            removed = tuple(rng.choice(blocks, size=len(blocks) // 3, replace=False)) if scope == "global" else ()
            counts = keep_counts(structure, scores, ratio, scope, 4, removed)
            keep, gone = choose(structure, scores, counts)
            pruned = cut(module, structure, keep, gone).eval()
            with torch.no_grad():
                expected = _masked(module, structure, keep, gone)(x)
                torch.testing.assert_close(pruned(x), expected, rtol=1e-4, atol=1e-5)
            assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("arch", list_models())
def test_every_zoo_architecture_prunes_to_a_valid_network(arch):
    """Every zoo model, at several ratios with and without block removal, keeps a forward pass
    of the right shape (on the meta device: shapes only, so resnext101 costs nothing)."""
    options = [{}, {"shortcut": "B"}] if arch.startswith("resnet") and create(arch, num_classes=3).__class__.__name__ == "CifarResNet" else [{}]
    for option in options:
        with torch.device("meta"):
            module = create(arch, **option).eval()
        structure = analyse(module)
        generator = torch.Generator().manual_seed(0)
        scores = {s.name: torch.rand(s.size, generator=generator, dtype=torch.float64) for s in structure.segments}
        size = 32 if "linear" in dict(module.named_children()) else 224
        base = count_macs(module, size)
        for ratio in RATIOS[1::2]:
            for removed in ((), tuple(removable_blocks(structure)[::2])):
                keep, gone = choose(structure, scores, keep_counts(structure, scores, ratio, "global", 8, removed))
                pruned = cut(meta_copy(module), structure, keep, gone)
                out = pruned(torch.empty(1, 3, size, size, device="meta"))
                assert tuple(out.shape) == (1, 1000 if size == 224 else 10), (arch, option, ratio)
                for space, channels in keep.items():  # widths stay multiples of 8 (or the whole, if smaller)
                    width = len(channels)
                    assert width % 8 == 0 or width == structure.spaces[space].channels or space.split(".")[0] in gone
                assert count_macs(pruned, size) < base


def test_ratio_zero_gives_identical_outputs():
    model = load_model(_random_norms(create("resnet20")))
    pruned = prune(model, PruneConfig(ratio=0.0, importance="l1"))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(pruned.module(x), model.module(x))
    assert pruned.plan.info["macs_factor"] == 1.0


def test_prune_leaves_its_input_untouched():
    model = load_model(_random_norms(create("resnet8")))
    before = model.fingerprint()
    prune(model, PruneConfig(ratio=0.5, importance="bn", remove_blocks=True))
    assert model.fingerprint() == before


@pytest.mark.parametrize("kind", ["cifar-A", "resnext"])
def test_channel_plan_round_trips(tmp_path, kind):
    """Saved as weights plus a channel plan, reloaded by edgeresnet.load: identical outputs."""
    model = load_model(_random_norms(SMALL[kind]()))
    pruned = prune(model, PruneConfig(ratio=0.5, importance="l1", remove_blocks=True, round_to=4))
    assert pruned.plan.removed_blocks
    weights = edgeresnet.save(pruned, tmp_path / "pruned")
    assert (tmp_path / "pruned" / "channel-plan.json").is_file()
    x = torch.randn(2, 3, 32, 32)
    for loaded in (edgeresnet.load(weights),
                   # weights in another format, the plan named as the architecture
                   edgeresnet.load(_as_pt(pruned, tmp_path), arch=str(tmp_path / "pruned" / "channel-plan.json"))):
        with torch.no_grad():
            assert torch.equal(loaded(x), pruned.module(x))
    again = load_model(weights)
    assert again.plan == pruned.plan and again.describe()["channel_plan"]["widths"] == pruned.plan.widths


def _as_pt(model, tmp_path):
    path = tmp_path / "elsewhere" / "weights.pt"
    path.parent.mkdir()
    torch.save(model.module.state_dict(), path)
    return path


def test_macs_target_lands_close_above_the_factor():
    model = load_model(_random_norms(create("resnet20")))
    for factor in (1.5, 3.0):
        pruned = prune(model, PruneConfig(macs=factor, importance="l1"))
        reached = count_macs(model.module, 32) / count_macs(pruned.module, 32)
        assert factor <= reached < factor * 1.15, (factor, reached)


@pytest.mark.parametrize("config, message", [
    (dict(ratio=1.0), r"ratio 1\.0 cannot be reached: the most pruning can give is ratio 0\.\d+"),
    (dict(macs=50.0), r"50\.0x fewer MACs cannot be reached: the most pruning can give is \d+\.\d\dx"),
])
def test_impossible_targets_name_the_best_reachable_value(config, message):
    model = load_model(create("resnet8"))
    with pytest.raises(EdgeResNetError, match=message):
        prune(model, PruneConfig(importance="l1", **config))


def test_unreachable_latency_names_the_fastest_measured(tmp_path):
    from tests.helpers import make_image_folder

    data = edgeresnet.open_dataset(make_image_folder(tmp_path / "data", classes=[str(i) for i in range(10)], per_class=2))
    model = load_model(create("resnet8"), labels=data.classes)
    config = PruneConfig(latency_ms=1e-6, importance="l1", latency={"target": "onnx", "runs": 10, "warmup": 1})
    with pytest.raises(EdgeResNetError, match=r"1e-06 ms on onnx cannot be reached: the most pruning can give is "
                                              r"\d+\.\d+ ms"):
        prune(model, config, data=data)


def test_taylor_needs_labelled_data():
    with pytest.raises(EdgeResNetError, match="taylor criterion needs labelled images"):
        prune(load_model(create("resnet8")), PruneConfig(ratio=0.5))


def test_one_target_exactly():
    with pytest.raises(ValueError, match="exactly one target"):
        PruneConfig(ratio=0.5, macs=2.0)
    with pytest.raises(ValueError, match="exactly one target"):
        PruneConfig()
