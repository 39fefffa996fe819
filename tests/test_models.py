"""The zoo: torchvision compatibility, the CIFAR ResNets, the registry, detection, summary."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from edgeresnet.errors import ArchitectureError
from edgeresnet.models import create, family_of, list_models
from edgeresnet.models.cifar import PadShortcut
from edgeresnet.models.detect import detect, spec_of
from edgeresnet.models.registry import parse
from edgeresnet.models.spec import ArchSpec
from edgeresnet.models.summary import count_macs, count_params, stage_widths
from edgeresnet.models.weights import apply_state_dict
from edgeresnet.pruning.groups import ChannelGroup, PadLink, residual_groups

IMAGENET = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2", "wide_resnet101_2",
]  # fmt: skip
CIFAR = ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]


def meta(name: str, **options) -> nn.Module:
    """A shape-only model: building resnext101 for real would take seconds."""
    with torch.device("meta"):
        return create(name, **options)


@pytest.fixture(scope="module")
def architectures(shared) -> dict:
    path = shared / "models" / "torchvision" / "architectures.json"
    return json.loads(path.read_text())["architectures"]


# --- torchvision compatibility ---------------------------------------------------------


def test_resnet18_reproduces_torchvision_logits(shared):
    folder = shared / "models" / "torchvision"
    state_dict = torch.load(folder / "resnet18_seed0_fp16.pt", map_location="cpu", weights_only=True)
    x = torch.load(folder / "resnet18_input.pt", weights_only=True)
    expected = torch.load(folder / "resnet18_logits.pt", weights_only=True)

    model = create("resnet18")
    assert list(model.state_dict()) == list(state_dict)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()})
    with torch.no_grad():
        logits = model.eval()(x)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_keys_shapes_params_macs_match_torchvision(name, architectures):
    reference = architectures[name]
    model = meta(name)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == [(k, shape) for k, shape in reference["state_dict"]]
    assert count_params(model) == reference["params"]
    assert count_macs(model, 224) == reference["macs_224"]


def test_imagenet_list_is_complete(architectures):
    assert sorted(architectures) == sorted(IMAGENET) == list_models("imagenet")


def test_torchvision_init():
    model = create("resnet18")
    conv = model.layer1[0].conv1  # kaiming normal, fan_out: std = sqrt(2 / (64 * 3 * 3))
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)
    assert conv.weight.mean().abs().item() < 0.01
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_basic_block_refuses_groups():
    with pytest.raises(ArchitectureError, match="bottleneck"):
        ArchSpec("imagenet", "basic", (2, 2, 2, 2), 64, 32, 4, "downsample", 1000).build()


# --- CIFAR ResNets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params",  # Idelbayev's published counts for option A, 10 classes
    [
        ("resnet20", 269_722),
        ("resnet32", 464_154),
        ("resnet44", 658_586),
        ("resnet56", 853_018),
        ("resnet110", 1_727_962),
    ],
)
def test_cifar_parameter_counts(name, params):
    model = create(name)
    assert count_params(model) == params
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_cifar_keys_follow_idelbayev():
    keys = list(create("resnet8").state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert "layer1.0.conv1.weight" in keys and "layer3.0.bn2.running_var" in keys
    assert keys[-2:] == ["linear.weight", "linear.bias"]
    assert not any("shortcut" in k for k in keys)


def test_pad_shortcut_places_channels_at_an_offset():
    pad = PadShortcut(16, 32, stride=2)
    assert list(pad.parameters()) == [] and list(pad.buffers()) == []
    x = torch.randn(1, 16, 8, 8)
    y = pad(x)
    assert y.shape == (1, 32, 4, 4)
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


def test_option_b_uses_projection_shortcuts():
    model = create("resnet20", shortcut="B")
    keys = model.state_dict()
    assert keys["layer2.0.shortcut.0.weight"].shape == (32, 16, 1, 1)
    assert "layer2.0.shortcut.1.running_mean" in keys
    assert "layer1.0.shortcut.0.weight" not in keys


def test_width_and_num_classes_options():
    model = create("resnet20", width=8, num_classes=100)
    assert stage_widths(model) == (8, 16, 32)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    assert meta("resnet50", num_classes=7).fc.out_features == 7


def _export_and_compare(model: nn.Module, path, dynamo: bool) -> None:
    import onnxruntime

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(model, (x,), path, dynamo=True, dynamic_shapes=({0: batch},), verbose=False)
        else:
            axes = {"x": {0: "batch"}}
            torch.onnx.export(model, (x,), path, dynamo=False, input_names=["x"], dynamic_axes=axes)
    session = onnxruntime.InferenceSession(str(path))
    x = torch.randn(3, 3, 32, 32)  # another batch size: no shape was baked in
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    # Untrained deep ResNets give logits in the hundreds: compare relative to their scale.
    np.testing.assert_allclose(onnx_out, expected, atol=1e-5 * np.abs(expected).max(), rtol=0)


@pytest.mark.parametrize("name, options", [(n, {}) for n in CIFAR] + [("resnet8", {"shortcut": "B"})])
def test_cifar_exports_to_onnx(name, options, tmp_path):
    _export_and_compare(create(name, **options).eval(), tmp_path / "model.onnx", dynamo=False)


def test_cifar_exports_with_the_dynamo_exporter(tmp_path):
    _export_and_compare(create("resnet8").eval(), tmp_path / "model.onnx", dynamo=True)


# --- registry ----------------------------------------------------------------------------


def test_registry_lists_families():
    assert list_models("cifar") == sorted(CIFAR + ["resnet8"])
    assert sorted(list_models()) == sorted(list_models("cifar") + list_models("imagenet"))
    assert family_of("resnet56") == "cifar" and family_of("wide_resnet50_2") == "imagenet"


def test_unknown_model_suggests_the_closest():
    with pytest.raises(ArchitectureError, match="did you mean 'resnet56'"):
        create("resnt56")
    with pytest.raises(ArchitectureError, match="did you mean"):
        family_of("resnet5O")


def test_unknown_or_mistyped_option_names_valid_ones():
    with pytest.raises(ArchitectureError, match="valid options: num_classes, shortcut, width"):
        create("resnet20", depth=20)
    with pytest.raises(ArchitectureError, match="valid options: num_classes"):
        create("resnet18", shortcut="B")
    with pytest.raises(ArchitectureError, match="takes int values"):
        create("resnet20", num_classes="ten")
    with pytest.raises(ArchitectureError, match="'A'.*'B'"):
        create("resnet20", shortcut="C")
    with pytest.raises(ArchitectureError, match="at least 1"):
        create("resnet18", num_classes=0)


def test_parse_arch_text():
    assert parse("resnet56") == ("resnet56", {})
    assert parse("resnet56:num_classes=100,shortcut=B") == ("resnet56", {"num_classes": 100, "shortcut": "B"})
    with pytest.raises(ArchitectureError, match="key=value"):
        parse("resnet56:num_classes")


# --- detection -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGENET + CIFAR + ["resnet8"])
def test_every_zoo_entry_round_trips_through_detect(name):
    spec = detect(meta(name).state_dict())  # detect also checks that spec.build() fits
    assert spec.name == name and spec.options == {} and str(spec) == name
    assert spec == spec_of(name)


@pytest.mark.parametrize("name", ["resnet8", "resnet56"])
def test_options_round_trip_through_detect(name):
    spec = detect(meta(name, shortcut="B", num_classes=100, width=24).state_dict())
    assert (spec.name, spec.shortcut, spec.num_classes, spec.width) == (name, "B", 100, 24)
    assert spec.options == {"num_classes": 100, "shortcut": "B", "width": 24}
    assert spec == spec_of(str(spec)) == spec_of(f"{name}:shortcut=B,width=24,num_classes=100")


def test_known_structures_are_detected_field_by_field():
    assert detect(meta("resnext50_32x4d").state_dict()) == ArchSpec(
        "imagenet", "bottleneck", (3, 4, 6, 3), 64, 32, 4, "downsample", 1000, "resnext50_32x4d"
    )
    assert detect(meta("wide_resnet50_2").state_dict()).width_per_group == 128
    assert detect(meta("resnet56").state_dict()) == ArchSpec(
        "cifar", "basic", (9, 9, 9), 16, 1, 64, "A", 10, "resnet56"
    )


@settings(max_examples=25, deadline=None)
@given(
    family=st.sampled_from(["imagenet", "cifar"]),
    bottleneck=st.booleans(),
    layers=st.lists(st.integers(1, 4), min_size=4, max_size=4),
    width=st.sampled_from([8, 16, 32, 64]),
    grouping=st.sampled_from([(1, 64), (2, 16), (4, 8), (1, 128)]),
    shortcut=st.sampled_from(["A", "B"]),
    num_classes=st.integers(1, 50),
)
def test_any_structure_round_trips(family, bottleneck, layers, width, grouping, shortcut, num_classes):
    if family == "cifar":
        spec = ArchSpec("cifar", "basic", tuple(layers[:3]), width, 1, 64, shortcut, num_classes)
    elif bottleneck:
        spec = ArchSpec("imagenet", "bottleneck", tuple(layers), 64, *grouping, "downsample", num_classes)
    else:
        spec = ArchSpec("imagenet", "basic", tuple(layers), width, 1, 64, "downsample", num_classes)
    with torch.device("meta"):
        detected = detect(spec.build().state_dict())
    assert replace(detected, name=None) == spec


def test_non_zoo_structure_has_no_name():
    spec = ArchSpec("cifar", "basic", (1, 2, 3), 16, 1, 64, "A", 10)
    detected = detect(spec.build().state_dict())
    assert detected == spec and detected.name is None
    assert str(detected).startswith("custom ResNet (family=cifar, block=basic, layers=(1, 2, 3)")


def test_not_a_resnet():
    mlp = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).state_dict()
    vgg = {
        "features.0.weight": torch.zeros(64, 3, 3, 3),
        "features.2.weight": torch.zeros(64, 64, 3, 3),
        "classifier.0.weight": torch.zeros(10, 64),
    }
    for state_dict in (mlp, vgg, {}):
        with pytest.raises(ArchitectureError, match="not a ResNet this tool knows.*torch.export"):
            detect(state_dict)


def test_resnet_lookalikes_are_refused():
    mixed = create("resnet8").state_dict()
    mixed["fc.weight"] = mixed.pop("linear.weight")  # a CIFAR body with a torchvision head
    mixed["fc.bias"] = mixed.pop("linear.bias")
    # The closest layout is named with what differs: zero-padding shortcuts leave no weights.
    with pytest.raises(ArchitectureError, match="close to a ResNet .*3x3 stem.* missing keys .*downsample"):
        detect(mixed)
    extra = create("resnet8").state_dict()
    extra["layer1.0.conv3.weight"] = torch.zeros(16, 16, 1, 1)
    with pytest.raises(ArchitectureError, match="not a ResNet"):
        detect(extra)
    gap = {k: v for k, v in create("resnet20").state_dict().items() if not k.startswith("layer2.1.")}
    with pytest.raises(ArchitectureError, match="missing keys.*layer2.1.conv1.weight"):
        detect(gap)


def test_apply_state_dict_names_what_does_not_fit():
    weights = create("resnet20", num_classes=100).state_dict()
    weights["extra.weight"] = torch.zeros(1)
    del weights["layer1.0.conv1.weight"]
    with pytest.raises(ArchitectureError) as error:
        apply_state_dict(create("resnet20"), weights, "resnet20")
    message = str(error.value)
    assert "do not fit resnet20" in message
    assert "1 missing key (layer1.0.conv1.weight)" in message
    assert "1 unexpected key (extra.weight)" in message
    assert "2 mis-shaped keys (linear.weight is (100, 64) in the weights, (10, 64) in the model" in message
    assert "\n" not in message


def test_apply_state_dict_tolerates_missing_num_batches_tracked():
    source = create("resnet8")
    weights = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    target = create("resnet8")
    apply_state_dict(target, weights)
    torch.testing.assert_close(target.state_dict(), source.state_dict())


# --- summary -------------------------------------------------------------------------------


def test_count_macs_leaves_the_module_alone():
    model = create("resnet8")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    macs = count_macs(model, (32, 32))
    assert macs == count_macs(model, 32) > 0
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules())
    torch.testing.assert_close(model.state_dict(), before)


def test_cifar_macs_match_the_paper_scale():
    # ResNet-20 is ~41 MMACs; the head adds 640.
    assert 40_000_000 < count_macs(create("resnet20"), 32) < 42_000_000


def test_residual_groups_option_a():
    groups = residual_groups(create("resnet20"))
    assert [(g.stage, g.channels) for g in groups] == [("layer1", 16), ("layer2", 32), ("layer3", 64)]
    first, second, third = groups
    assert first.producers == ("conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2")
    assert first.norms == ("bn1", "layer1.0.bn2", "layer1.1.bn2", "layer1.2.bn2")
    assert first.consumers[-2:] == ("layer2.0.conv1", "layer2.0.shortcut")
    assert first.padded_from is None
    assert second.producers == ("layer2.0.conv2", "layer2.1.conv2", "layer2.2.conv2")
    assert second.padded_from == PadLink(source="layer1", channels=16, offset=8)
    assert second.padded_from.range == range(8, 24)
    assert third.padded_from.range == range(16, 48)
    assert third.consumers[-1] == "linear"


def test_residual_groups_option_b_and_torchvision():
    second = residual_groups(create("resnet20", shortcut="B"))[1]
    assert second.producers[0] == "layer2.0.shortcut.0" and second.norms[0] == "layer2.0.shortcut.1"
    assert second.padded_from is None

    basic = residual_groups(meta("resnet18"))
    assert basic[0].producers[0] == "conv1"  # layer1.0 is an identity block: the stem is tied
    assert basic[-1] == ChannelGroup(
        stage="layer4",
        channels=512,
        producers=("layer4.0.downsample.0", "layer4.0.conv2", "layer4.1.conv2"),
        norms=("layer4.0.downsample.1", "layer4.0.bn2", "layer4.1.bn2"),
        consumers=("layer4.1.conv1", "fc"),
    )
    bottleneck = residual_groups(meta("resnet50"))
    assert [g.channels for g in bottleneck] == [256, 512, 1024, 2048]
    assert bottleneck[0].producers[:2] == ("layer1.0.downsample.0", "layer1.0.conv3")  # stem is free
    assert "conv1" not in bottleneck[0].producers


def test_residual_groups_name_real_modules():
    model = meta("resnext50_32x4d")
    for group in residual_groups(model):
        for name in group.producers + group.consumers:
            model.get_submodule(name)
        assert all(model.get_submodule(p).out_channels == group.channels for p in group.producers)
        assert all(model.get_submodule(n).num_features == group.channels for n in group.norms)


def test_a_module_without_residual_additions_has_no_groups():
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    plain(torch.zeros(1, 3, 8, 8))
    assert residual_groups(plain, (1, 3, 8, 8)) == [] and stage_widths(plain) == ()


def test_catalogue_lists_every_registered_builder_and_a_name_registers_once():
    import edgeresnet.models.cifar  # noqa: F401  (every builder registered)
    import edgeresnet.models.resnet  # noqa: F401
    from edgeresnet.models.registry import _MODELS, CATALOG, register

    assert {name: entry.family for name, entry in _MODELS.items()} == {name: kind for name, (kind, _) in CATALOG.items()}
    with pytest.raises(ValueError, match="registered already"):
        register("cifar")(edgeresnet.models.cifar.resnet20)
    with pytest.raises(ArchitectureError, match="unknown model 'resnet21'.*resnet20"):
        family_of("resnet21")
