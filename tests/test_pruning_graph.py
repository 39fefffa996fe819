"""The channel structure read from the traced graph: the same as the name-based analysis on
every zoo model, and right (or frozen, and named) on ResNets the zoo does not have."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeresnet.models import create, list_models
from edgeresnet.models.cifar import CifarResNet, PadShortcut
from edgeresnet.models.spec import ArchSpec
from edgeresnet.pruning.select import choose, keep_counts, removable_blocks
from edgeresnet.pruning.structure import Segment, Space, Structure, analyse, first_channels
from edgeresnet.pruning.surgery import cut

# -- the reference: the name-based analysis this replaced, kept whole here --------------------
# (a copy of edgeresnet/pruning/structure.py's analyse and the models/summary.py helpers it
# used, as of the commit before the graph analysis, so that edits there do not move it)


def _ref_stages(module):
    return [(n, c) for n, c in module.named_children() if re.fullmatch(r"layer\d+", n)]


def _ref_last_conv(block):
    return ("conv3", "bn3") if hasattr(block, "conv3") else ("conv2", "bn2")


def _ref_shortcut(block):
    for attr in ("downsample", "shortcut"):
        path = getattr(block, attr, None)
        if path is not None and not isinstance(path, nn.Identity):
            return attr, path
    return None


def _ref_residual_groups(module):
    groups = []  # (stage, channels, producers, norms, consumers)
    stream = {"stage": None, "producers": [("conv1", "bn1")], "consumers": []}

    def finish(stream):
        if stream["stage"] is not None:
            convs, norms = zip(*stream["producers"])
            channels = module.get_submodule(convs[-1]).out_channels
            groups.append((stream["stage"], channels, convs, norms, tuple(stream["consumers"])))

    for stage, blocks in _ref_stages(module):
        for index, block in enumerate(blocks):
            if isinstance(block, nn.Identity):
                continue
            name = f"{stage}.{index}"
            stream["consumers"].append(f"{name}.conv1")
            shortcut = _ref_shortcut(block)
            if shortcut is None:
                stream["stage"] = stream["stage"] or stage
            else:
                attr, path = shortcut
                if isinstance(path, PadShortcut):
                    stream["consumers"].append(f"{name}.{attr}")
                    finish(stream)
                    stream = {"stage": stage, "producers": [], "consumers": []}
                else:
                    stream["consumers"].append(f"{name}.{attr}.0")
                    finish(stream)
                    stream = {"stage": stage, "producers": [(f"{name}.{attr}.0", f"{name}.{attr}.1")],
                              "consumers": []}
            conv, norm = _ref_last_conv(block)
            stream["producers"].append((f"{name}.{conv}", f"{name}.{norm}"))
    stream["consumers"].append("fc" if isinstance(getattr(module, "fc", None), nn.Linear) else "linear")
    finish(stream)
    return groups


def reference_analyse(module) -> Structure:
    spaces, pads = {}, {}
    for stage, channels, producers, norms, consumers in _ref_residual_groups(module):
        spaces[stage] = Space(stage, channels, producers, norms, consumers, residual=True)
    if not any("conv1" in space.producers for space in spaces.values()):
        readers = ("layer1.0.conv1", f"layer1.0.{_ref_shortcut(module.layer1[0])[0]}.0")
        spaces["conv1"] = Space("conv1", module.conv1.out_channels, ("conv1",), ("bn1",), readers)
    for stage, blocks in _ref_stages(module):
        for index, block in enumerate(blocks):
            if isinstance(block, nn.Identity):
                continue
            name = f"{stage}.{index}"
            last_conv, _ = _ref_last_conv(block)
            convs = ["conv1", "conv2"] if last_conv == "conv3" else ["conv1"]
            for conv, reader in zip(convs, convs[1:] + [last_conv]):
                spaces[f"{name}.{conv}"] = Space(
                    f"{name}.{conv}", getattr(block, conv).out_channels, (f"{name}.{conv}",),
                    (f"{name}.bn{conv[-1]}",), (f"{name}.{reader}",),
                    groups=block.conv2.groups if "conv2" in (conv, reader) else 1, block=name)
            shortcut = _ref_shortcut(block)
            if shortcut is not None and isinstance(shortcut[1], PadShortcut):
                consumer = f"{name}.{shortcut[0]}"
                source = next(s.name for s in spaces.values() if consumer in s.consumers)
                pads[consumer] = (source, stage, shortcut[1].before)
    return Structure(spaces, _ref_segments(module, spaces, pads), pads)


def _ref_segments(module, spaces, pads):
    parent = {}

    def find(item):
        while parent.get(item, item) != item:
            item = parent[item]
        return item

    for source, target, offset in pads.values():
        for c in range(spaces[source].channels):
            parent[find((target, offset + c))] = find((source, c))
    units = {}
    for space in spaces.values():
        for c in range(space.channels):
            units.setdefault(find((space.name, c)), []).append((space.name, c))
    by_spaces = {}
    for members in units.values():
        key = tuple(sorted({s for s, _ in members}, key=list(spaces).index))
        by_spaces.setdefault(key, []).append(tuple(sorted(members, key=lambda m: list(spaces).index(m[0]))))
    segments = []
    for key, unit_list in by_spaces.items():
        unit_list.sort(key=lambda unit: unit[0][1])
        first = spaces[key[0]]
        block = first.block if len(key) == 1 else None
        removable = block is not None and _ref_shortcut(module.get_submodule(block)) is None
        name = "+".join(key) if len(key) > 1 or not first.residual else key[0]
        if first.residual and len(key) > 1:
            name = f"{key[0]} (tied to {', '.join(key[1:])})"
        segments.append(Segment(name, tuple(unit_list), first.groups if len(key) == 1 else 1, removable))
    return tuple(segments)


def _assert_same(graph: Structure, reference: Structure, label: str) -> None:
    assert list(graph.spaces) == list(reference.spaces), label
    for name, space in reference.spaces.items():
        assert graph.spaces[name] == space, (label, name)
    assert graph.segments == reference.segments, label
    assert graph.pads == reference.pads, label
    assert graph.frozen == {} and graph.links == (), label


def _zoo_variants():
    for name in list_models():
        with torch.device("meta"):
            cifar = isinstance(create(name), CifarResNet)
        for option in ([{"shortcut": "A"}, {"shortcut": "B"}] if cifar else [{}]):
            yield pytest.param(name, option, id=f"{name}-{option.get('shortcut', 'tv')}")


@pytest.mark.parametrize("name, option", list(_zoo_variants()))
def test_zoo_structure_equals_the_name_based_one(name, option):
    with torch.device("meta"):
        module = create(name, **option)
    _assert_same(analyse(module), reference_analyse(module), name)


@pytest.mark.parametrize("kind", ["cifar-A", "resnext"])
def test_pruned_zoo_structure_equals_the_name_based_one(kind):
    """A pruned model (narrower spaces, new pad offsets, blocks replaced by identities) too: a
    model pruned twice is analysed again."""
    module = (create("resnet20", width=16) if kind == "cifar-A"
              else ArchSpec("imagenet", "bottleneck", (2, 2, 2, 2), 16, 8, 16, "downsample", 10).build())
    structure = analyse(module)
    scores = {s.name: torch.rand(s.size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
              for s in structure.segments}
    gone = tuple(removable_blocks(structure)[::2])
    keep, removed = choose(structure, scores, keep_counts(structure, scores, 0.4, "global", 4, gone))
    pruned = cut(module, structure, keep, removed)
    assert any(isinstance(m, nn.Identity) and n.count(".") == 1 for n, m in pruned.named_modules())
    _assert_same(analyse(pruned), reference_analyse(pruned), kind)


# -- ResNets the zoo does not have, written here in plain PyTorch -----------------------------


def conv3x3(inp, out, stride=1, groups=1):
    return nn.Conv2d(inp, out, 3, stride, 1, groups=groups, bias=False)


class SqueezeExcite(nn.Module):
    """timm's SEModule: mean, 1x1 conv down (with bias), ReLU, 1x1 conv up, sigmoid gate."""

    def __init__(self, channels, reduced):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x):
        return x * self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))).sigmoid()


class EcaGate(nn.Module):
    """ECA (Wang et al. 2020): a 1-D conv across the pooled channels."""

    def __init__(self, kernel=3):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x):
        y = self.conv(x.mean((2, 3), keepdim=True).squeeze(-1).transpose(-1, -2))
        return x * y.transpose(-1, -2).unsqueeze(-1).sigmoid()


class Basic(nn.Module):
    """timm's BasicBlock, with an optional attention gate after bn2 and a ResNet-D shortcut."""

    branch_end = "bn2"

    def __init__(self, inp, out, stride=1, attention=None, avg_down=False):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(inp, out, stride), nn.BatchNorm2d(out)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv3x3(out, out), nn.BatchNorm2d(out)
        self.se = attention(out) if attention else None
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inp != out:
            pool = [nn.AvgPool2d(2, stride, ceil_mode=True, count_include_pad=False)] if avg_down else []
            self.downsample = nn.Sequential(*pool, nn.Conv2d(inp, out, 1, 1 if avg_down else stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        shortcut = x
        x = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.se is not None:
            x = self.se(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut
        return self.act2(x)


class GroupedBottleneck(nn.Module):
    """A ResNeXt bottleneck: 1x1, grouped 3x3, 1x1."""

    branch_end = "bn3"

    def __init__(self, inp, width, out, stride=1, groups=4):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inp, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride, groups), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inp != out:
            self.downsample = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Net(nn.Module):
    """Stem, stages of blocks, global pool, linear head."""

    def __init__(self, stem, stages, width, classes=5):
        super().__init__()
        self.stem = stem
        for index, blocks in enumerate(stages, start=1):
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.stages = len(stages)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = self.stem(x)
        for index in range(1, self.stages + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def stem(out, deep=False):
    if not deep:
        return nn.Sequential(conv3x3(3, out), nn.BatchNorm2d(out), nn.ReLU(inplace=True))
    return nn.Sequential(conv3x3(3, 8, 2), nn.BatchNorm2d(8), nn.ReLU(), conv3x3(8, 8), nn.BatchNorm2d(8), nn.ReLU(),
                         conv3x3(8, out), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(3, 2, 1))


def se_resnet():
    se = {"attention": lambda c: SqueezeExcite(c, c // 4)}
    return Net(stem(16), [[Basic(16, 16, **se), Basic(16, 16, **se)], [Basic(16, 32, 2, **se), Basic(32, 32, **se)]],
               32)


def resnet_d():
    return Net(stem(16, deep=True), [[Basic(16, 16), Basic(16, 16)], [Basic(16, 32, 2, avg_down=True), Basic(32, 32)]],
               32)


def eca_resnet():
    eca = {"attention": lambda c: EcaGate()}
    return Net(stem(16), [[Basic(16, 16, **eca), Basic(16, 16, **eca)], [Basic(16, 32, 2), Basic(32, 32)]], 32)


def resnext():
    return Net(stem(16), [[GroupedBottleneck(16, 16, 32), GroupedBottleneck(32, 16, 32)],
                          [GroupedBottleneck(32, 32, 64, 2), GroupedBottleneck(64, 32, 64)]], 64)


class PreActBlock(nn.Module):
    """He et al. 2016b: bn and ReLU before each conv; the shortcut is a conv alone."""

    branch_end = "conv2"

    def __init__(self, inp, out, stride=1):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(inp), conv3x3(inp, out, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(out), conv3x3(out, out)
        self.shortcut = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False)) if stride != 1 or inp != out else None

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = conv3x3(3, 16)
        self.layer1 = nn.Sequential(PreActBlock(16, 16), PreActBlock(16, 16))
        self.layer2 = nn.Sequential(PreActBlock(16, 32, 2), PreActBlock(32, 32))
        self.bn = nn.BatchNorm2d(32)
        self.linear = nn.Linear(32, classes)

    def forward(self, x):
        out = self.layer2(self.layer1(self.conv1(x)))
        out = F.relu(self.bn(out))
        return self.linear(F.avg_pool2d(out, out.size(3)).view(out.size(0), -1))


class CatBlock(nn.Module):
    """Two branches concatenated, normalised, projected back and added to the input."""

    branch_end = "bn"

    def __init__(self, channels, a, b):
        super().__init__()
        self.branch1 = nn.Sequential(nn.Conv2d(channels, a, 1, bias=False), nn.BatchNorm2d(a), nn.ReLU())
        self.branch2 = nn.Sequential(conv3x3(channels, b), nn.BatchNorm2d(b), nn.ReLU())
        self.mix = nn.BatchNorm2d(a + b)
        self.project = nn.Conv2d(a + b, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = self.mix(torch.cat([self.branch1(x), self.branch2(x)], dim=1))
        return F.relu(x + self.bn(self.project(F.relu(y))))


def cat_net():
    return Net(stem(16), [[CatBlock(16, 8, 16), CatBlock(16, 16, 8)]], 16)


class ChannelShuffle(nn.Module):
    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class OddBlock(nn.Module):
    """Ops the analysis cannot follow through the channels: a GroupNorm and a channel shuffle."""

    branch_end = "conv2"

    def __init__(self, channels):
        super().__init__()
        self.conv1, self.norm = conv3x3(channels, channels), nn.GroupNorm(4, channels)
        self.inner = conv3x3(channels, 16)
        self.shuffle = ChannelShuffle()
        self.conv2 = conv3x3(16, channels)

    def forward(self, x):
        y = self.shuffle(F.relu(self.inner(F.relu(self.norm(self.conv1(x))))))
        return F.relu(x + self.conv2(y))


def odd_net():
    return Net(stem(16), [[OddBlock(16)], [Basic(16, 32, 2), Basic(32, 32)]], 32)


NETS = {"se": se_resnet, "resnet-d": resnet_d, "preact": PreActResNet, "eca": eca_resnet, "cat": cat_net,
        "resnext": resnext, "odd": odd_net}


def _randomised(module: nn.Module, seed: int = 0) -> nn.Module:
    """Spread-out batch norm statistics and biases, so that every channel's removal shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.BatchNorm2d):
                for tensor, low, high in ((layer.weight, 0.2, 1.0), (layer.bias, -0.2, 0.2),
                                          (layer.running_mean, -0.1, 0.1), (layer.running_var, 0.5, 2.0)):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
            elif isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.bias is not None:
                layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) - 0.5)
    return module.eval()


def _masked(module, structure, keep, removed):
    """The unpruned model with every pruned channel silenced (the filters and norms that write
    it output 0) and every removed block's branch zeroed: what the pruned model must compute."""
    silenced = copy.deepcopy(module)
    with torch.no_grad():
        for space in structure.spaces.values():
            if space.block in removed:
                continue
            drop = [c for c in range(space.channels) if c not in set(keep[space.name])]
            for name in (*space.producers, *space.norms):
                layer = silenced.get_submodule(name)
                for tensor in (layer.weight, layer.bias):
                    if tensor is not None:
                        tensor[drop] = 0
        for block in removed:
            last = silenced.get_submodule(block)
            for tensor in (getattr(last, last.branch_end).weight, getattr(last, last.branch_end).bias):
                if tensor is not None:
                    tensor.zero_()
    return silenced


def _half(structure, round_to=2):
    """About half the units of every segment, chosen by random scores (group by group)."""
    generator = torch.Generator().manual_seed(3)
    scores = {s.name: torch.rand(s.size, generator=generator, dtype=torch.float64) for s in structure.segments}
    return scores, keep_counts(structure, scores, 0.5, "local", round_to)


EXPECTED = {  # spaces the analysis must find, and those it must freeze
    "se": (["layer1", "layer2", "layer1.0.conv1", "layer1.0.se.fc1"], {}),
    "resnet-d": (["layer1", "layer2", "stem.0", "stem.3", "layer2.0.conv1"], {}),
    "preact": (["layer1", "layer2", "layer1.0.conv1", "layer2.1.conv1"], {}),
    "eca": (["layer2", "layer1.0.conv1", "layer1.1.conv1"], {"layer1": "in layer1.0.se"}),
    "cat": (["layer1", "layer1.0.branch1.0", "layer1.0.branch2.0", "layer1.0.cat"], {}),
    "resnext": (["layer1", "layer2", "layer1.0.conv1", "layer1.0.conv2"], {}),
    "odd": (["layer1", "layer2"],
            {"layer1.0.conv1": "layer1.0.norm (GroupNorm)", "layer1.0.inner": "layer1.0.shuffle"}),
}


@pytest.mark.parametrize("kind", sorted(NETS))
def test_other_resnets_prune_exactly(kind):
    """Half the channels of every segment that is not frozen: the pruned model runs, keeps its
    output shape and computes exactly the masked original; keeping everything changes nothing;
    a frozen space keeps its width."""
    module = _randomised(NETS[kind]())
    structure = analyse(module, (1, 3, 16, 16))
    present, frozen = EXPECTED[kind]
    assert set(present) <= set(structure.spaces), list(structure.spaces)
    assert set(frozen) == set(structure.frozen), structure.frozen
    for name, words in frozen.items():
        assert words in structure.frozen[name], structure.frozen
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = module(x)
        whole = cut(module, structure, {n: list(range(s.channels)) for n, s in structure.spaces.items()})
        assert torch.equal(whole(x), expected)
        scores, counts = _half(structure)
        blocks = removable_blocks(structure)
        for removed in ((), tuple(blocks[:1])):
            keep, gone = choose(structure, scores, keep_counts(structure, scores, 0.5, "local", 2, removed))
            pruned = cut(module, structure, keep, gone).eval()
            out = pruned(x)
            assert out.shape == expected.shape
            torch.testing.assert_close(out, _masked(module, structure, keep, gone)(x), rtol=1e-4, atol=1e-5)
            assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in module.parameters())
    # Whatever no space names (a frozen space's writers, readers and norms) keeps its shape.
    written = {n for s in structure.spaces.values() for n in (*s.producers, *s.norms)}
    read = {n for s in structure.spaces.values() for n in s.consumers}
    for name, layer in module.named_modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.GroupNorm)) and not any(
                name.startswith(b + ".") for b in gone):
            after = pruned.get_submodule(name)
            if name not in written and name not in read:
                assert all(a.shape == b.shape for a, b in zip(after.parameters(), layer.parameters())), name
            elif name not in written and isinstance(layer, nn.Conv2d):
                assert after.out_channels == layer.out_channels, name


def test_squeeze_excite_spaces():
    structure = analyse(se_resnet(), (1, 3, 16, 16))
    layer1, inner = structure.spaces["layer1"], structure.spaces["layer1.0.se.fc1"]
    assert {"layer1.0.se.fc2", "layer1.1.se.fc2", "stem.0"} <= set(layer1.producers)
    assert {"layer1.0.se.fc1", "layer2.0.downsample.0"} <= set(layer1.consumers)
    assert "fc" in structure.spaces["layer2"].consumers
    assert (inner.producers, inner.consumers, inner.block) == (("layer1.0.se.fc1",), ("layer1.0.se.fc2",), "layer1.0")
    assert removable_blocks(structure) == ["layer1.0", "layer1.1", "layer2.1"]


def test_preact_norms_read_the_stream():
    structure = analyse(PreActResNet(), (1, 3, 16, 16))
    assert structure.spaces["layer1"].norms == ("layer1.0.bn1", "layer1.1.bn1", "layer2.0.bn1")
    assert structure.spaces["layer2"].norms == ("layer2.1.bn1", "bn")
    # No activation after the addition: every identity-shortcut block can go exactly.
    assert removable_blocks(structure) == ["layer1.0", "layer1.1", "layer2.1"]


def test_grouped_spaces_keep_whole_groups():
    structure = analyse(resnext(), (1, 3, 16, 16))
    assert structure.spaces["layer1.0.conv1"].groups == 4 and structure.spaces["layer1.0.conv2"].groups == 4
    scores, counts = _half(structure)
    keep, _ = choose(structure, scores, counts)
    pruned = cut(resnext(), structure, keep)
    assert pruned.layer1[0].conv2.groups == 4 and pruned.layer1[0].conv2.out_channels == 8


def test_cat_links_inputs_at_their_offsets():
    structure = analyse(cat_net(), (1, 3, 16, 16))
    assert set(structure.links) >= {("layer1.0.branch1.0", "layer1.0.cat", 0),
                                    ("layer1.0.branch2.0", "layer1.0.cat", 8)}
    cat = structure.spaces["layer1.0.cat"]
    assert cat.norms == ("layer1.0.mix",) and not cat.producers
    # each cat channel is pruned with the branch channel it comes from
    names = {s.name for s in structure.segments}
    assert {"layer1.0.branch1.0+layer1.0.cat", "layer1.0.branch2.0+layer1.0.cat"} <= names


def test_unknown_ops_freeze_and_are_named():
    """An op the analysis cannot follow leaves the spaces it touches whole, and says which op."""
    structure = analyse(odd_net(), (1, 3, 16, 16))
    assert structure.frozen["layer1.0.conv1"] == "layer1.0.norm (GroupNorm)"
    assert "layer1.0.shuffle" in structure.frozen["layer1.0.inner"]  # the view that splits the channels
    assert "layer1.0.conv1" not in structure.spaces and "layer1.0.inner" not in structure.spaces
    keep = {name: first_channels(space, space.channels // 2) for name, space in structure.spaces.items()}
    pruned = cut(odd_net(), structure, keep)
    assert pruned.layer1[0].norm.num_channels == 16 and pruned.layer1[0].inner.out_channels == 16
    assert pruned(torch.randn(1, 3, 16, 16)).shape == (1, 5)


def test_lambda_shortcut_is_frozen_and_prune_rebuilds_it():
    """Idelbayev's ResNet-20 writes option A as a lambda: its pad widths are constants, so its
    graph freezes the residual streams; prune rebuilds it as the zoo class (same outputs)."""
    from edgeresnet.models.model import Model
    from edgeresnet.preprocess import Preprocess
    from edgeresnet.stages.prune import PruneConfig, prune

    class LambdaLayer(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    class IdelbayevResNet(CifarResNet):  # the user's own class
        pass

    user = IdelbayevResNet([3, 3, 3])
    user.load_state_dict(_randomised(create("resnet20")).state_dict())
    for stage in (user.layer2, user.layer3):
        planes = stage[0].conv1.out_channels
        stage[0].shortcut = LambdaLayer(lambda x, p=planes: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p // 4, p // 4)))
    structure = analyse(user)
    assert set(structure.frozen) == {"layer1", "layer2", "layer3"}
    assert "pads the channels" in structure.frozen["layer1"]
    model = Model(module=user, arch="resnet20", family="cifar", preprocess=Preprocess.for_family("cifar"),
                  num_classes=10)
    pruned = prune(model, PruneConfig(ratio=0.5, importance="l1", round_to=4))
    assert {"layer1", "layer2", "layer3"} <= set(pruned.plan.widths) and "frozen" not in pruned.plan.info
    assert type(pruned.module) is CifarResNet


def test_prune_stage_takes_a_module_the_zoo_does_not_describe():
    """The prune stage cuts the module itself: an SE-ResNet (whose SE width has no batch norm to
    score under bn or taylor) and an ECA-ResNet (whose first stream it keeps whole, and says why)."""
    from edgeresnet.models.model import Model
    from edgeresnet.preprocess import Preprocess
    from edgeresnet.stages.prune import PruneConfig, prune

    for net, frozen in ((se_resnet, {}), (eca_resnet, {"layer1": "transpose in layer1.0.se"})):
        model = Model(module=_randomised(net()), arch="module", family="cifar",
                      preprocess=Preprocess.for_family("cifar"), num_classes=5)
        for importance in ("bn", "l1"):
            config = PruneConfig(ratio=0.4, importance=importance, scope="local", round_to=4, remove_blocks=True)
            pruned = prune(model, config)
            assert pruned.plan.info.get("frozen", {}) == frozen
            assert pruned.plan.widths["layer2"] < 32 and ("layer1" in pruned.plan.widths) == (not frozen)
            assert pruned.plan.base == {"module": f"{__name__}.Net"}
            assert pruned.module(torch.randn(1, 3, 32, 32)).shape == (1, 5)


def test_block_removal_needs_a_proof():
    """relu(x + 0) == x only for x >= 0: a block whose input may be negative cannot go."""
    def net(stem_relu):
        layers = [conv3x3(3, 16), nn.BatchNorm2d(16)] + ([nn.ReLU()] if stem_relu else [])
        return Net(nn.Sequential(*layers), [[Basic(16, 16), Basic(16, 16)]], 16)

    assert removable_blocks(analyse(net(True), (1, 3, 16, 16))) == ["layer1.0", "layer1.1"]
    assert removable_blocks(analyse(net(False), (1, 3, 16, 16))) == ["layer1.1"]
