"""Post-training quantization chosen in the simulators: ranges, bias correction, learned rounding,
and files checked against the simulation of their own runtime's integer arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import edgeresnet
from edgeresnet.data import normalize, open_dataset, sample_pixels
from edgeresnet.errors import EdgeResNetError
from edgeresnet.export import export, parse_targets
from edgeresnet.manifest import read_manifest
from edgeresnet.quantization import ptq as algorithms
from edgeresnet.quantization.tflite import QuantConvBn, QuantLinear
from edgeresnet.stages.ptq import PtqConfig, calibrate, ptq

from helpers import make_image_folder, varied_batch_norms


def _resnet8(classes: int = 4, seed: int = 0) -> edgeresnet.Model:
    torch.manual_seed(seed)
    return edgeresnet.load_model(varied_batch_norms(edgeresnet.models.create("resnet8", num_classes=classes), seed))


def _batches(n: int = 64, seed: int = 0) -> list[torch.Tensor]:
    return list(torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).split(32))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_the_input_network_is_not_changed():
    model = _resnet8()
    before = _state(model.module)
    algorithms.quantize_post_training(model.module, _batches(32), ranges="mse", rounding="adaround",
                                      rounding_iterations=2)
    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_mse_ranges_clip_within_the_observed_ones_and_the_outside_points_keep_min_max():
    net = _resnet8().module
    minmax = algorithms.quantize_post_training(net, _batches(), ranges="minmax", bias_correction=False)
    mse = algorithms.quantize_post_training(net, _batches(), ranges="mse", bias_correction=False)
    clipped = 0
    for (name, wide), narrow in zip(minmax.quantizers().items(), mse.quantizers().values()):
        assert float(narrow.max) <= float(wide.max) + 1e-6 and float(narrow.min) >= float(wide.min) - 1e-6, name
        clipped += float(narrow.max) < float(wide.max) - 1e-6
    assert clipped > 0  # a random network's heavy tails are worth clipping somewhere
    for point in (minmax.input, minmax.head.out):
        name = next(n for n, q in minmax.quantizers().items() if q is point)
        assert float(mse.quantizers()[name].max) == float(point.max)


def _output_shift(qat, net, batches) -> torch.Tensor:
    """Per layer, the mean absolute per-channel shift of its output against the float network's."""
    layers = algorithms._in_execution_order(qat, batches[0][:1])
    simulated = algorithms._output_means(qat, layers, batches, algorithms._simulated_output)
    reference = algorithms._output_means(net, [algorithms._float_module(net, layer) for layer in layers], batches,
                                         lambda module, args, output: output)
    return torch.stack([(s - r).abs().mean() for s, r in zip(simulated, reference)])


def test_bias_correction_removes_the_mean_shift_int8_causes():
    net = _resnet8().module
    batches = _batches()
    plain = algorithms.quantize_post_training(net, batches, bias_correction=False)
    corrected = algorithms.quantize_post_training(net, batches, bias_correction=True)
    before, after = _output_shift(plain, net, batches), _output_shift(corrected, net, batches)
    assert after.sum() < 0.2 * before.sum()
    # Only the biases moved: the weights' codes are the same.
    for a, b in zip(plain.conv_bns(), corrected.conv_bns()):
        assert torch.equal(a.folded()[0], b.folded()[0])


def test_learned_rounding_keeps_the_grid_and_reconstructs_better_than_nearest():
    net = _resnet8().module
    batches = _batches()
    nearest = algorithms.quantize_post_training(net, batches, bias_correction=False)
    learned = algorithms.quantize_post_training(net, batches, bias_correction=False, rounding="adaround",
                                                rounding_iterations=60)
    layer_n, layer_l = nearest.conv_bns()[1], learned.conv_bns()[1]
    grid, _ = layer_l.folded()
    weight, _ = layer_l.folded_float()
    scale = weight.detach().abs().flatten(1).amax(1).reshape(-1, 1, 1, 1) / 127
    codes = grid / scale
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert torch.equal(layer_n.folded()[0].abs().flatten(1).amax(1), grid.abs().flatten(1).amax(1))  # same scales
    assert not torch.equal(layer_n.folded()[0], grid)  # some weights rounded the other way

    def error(qat, layer) -> float:  # the layer's output error on its own simulated inputs
        from edgeresnet.quantization.ptq_rounding import _captured

        x = _captured(qat, layer, batches, output=False)
        float_layer = algorithms._float_module(net, layer)
        target = _captured(net, float_layer, batches, output=True)
        with torch.no_grad():
            return float(F.mse_loss(F.relu(algorithms._simulated_output(layer, (x,), None)), F.relu(target)))

    # Its own objective on its own inputs: no worse than nearest rounding (a few dozen steps on
    # random data gain little; a broken rounding, or codes written off the grid, lose far more).
    assert error(learned, layer_l) <= 1.02 * error(nearest, layer_n)


def test_openvino_first_conv_uses_seven_bit_weights():
    model = _resnet8()
    pixels = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    quantized = ptq(model, pixels, "openvino", PtqConfig(bias_correction=False))
    simulator = quantized.module.qat
    first, second = simulator.conv_bns()[:2]
    assert first.weight_max == 63 and second.weight_max == 127
    weight, _ = first.folded_float()
    codes = first.folded()[0] / (weight.detach().abs().flatten(1).amax(1).reshape(-1, 1, 1, 1) / 63)
    assert codes.abs().max() <= 63.001
    assert quantized.qat.scheme == "openvino" and model.qat is None


def test_ptq_settings_are_strict_recipe_keys():
    recipe = edgeresnet.load_recipe("ptq-int8", ["ptq.ranges=mse", "ptq.rounding=adaround"])
    config = recipe.stage("ptq").config
    assert config.ranges == "mse" and config.rounding == "adaround"
    with pytest.raises(EdgeResNetError, match="ranges"):
        edgeresnet.load_recipe("ptq-int8", ["ptq.ranges=entropy"])
    with pytest.raises(EdgeResNetError, match="bias_correction"):
        edgeresnet.load_recipe("ptq-int8", ["ptq.bias_corection=false"])


def test_int8_files_are_checked_against_their_runtime_simulation(tmp_path):
    model = _resnet8(classes=2, seed=1)
    data = open_dataset(make_image_folder(tmp_path / "images", classes=("a", "b"), per_class=24))
    calibration = calibrate(model, data, PtqConfig(size=32))
    samples = sample_pixels(data, model.preprocess, 48, seed=1)
    artifacts = export(model, parse_targets(["tflite-int8,openvino-int8,onnx"]), tmp_path / "out",
                       samples=samples, calibration=calibration.pixels)
    manifests = {a.target.name: read_manifest(a.directory) for a in artifacts}
    for target in ("tflite-int8", "openvino-int8"):
        manifest = manifests[target]
        assert manifest.fidelity.reference == f"{target} simulation"
        assert manifest.fidelity.threshold == 99.5 and manifest.fidelity.agreement >= 99.5
        assert manifest.fidelity_fp32.reference == "pytorch-fp32" and manifest.fidelity_fp32.threshold == 0
        assert manifest.quantization["method"] == "ptq" and manifest.quantization["bias_correction"] is True
    assert manifests["onnx"].fidelity.reference == "pytorch-fp32" and manifests["onnx"].fidelity_fp32 is None
    # The OpenVINO file holds the simulator's int8 codes: the CPU simulation computes what it computes.
    from edgeresnet.runner.runtimes import open_artifact

    tensors = normalize(samples, model.preprocess)
    reference = ptq(model, calibration.pixels, "openvino").predictor()(tensors)
    answer = open_artifact(next(a.path for a in artifacts if a.target.name == "openvino-int8"), 1)(tensors)
    assert (answer.argmax(1) == reference.argmax(1)).mean() >= 0.99
