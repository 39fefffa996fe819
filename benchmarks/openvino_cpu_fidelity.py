"""How exactly the CPU simulator predicts an OpenVINO int8 file made from the simulator's own parameters.

The fine-tuned ResNet-20, quantized by the ptq stage for openvino (256 train images), written into an
OpenVINO model by ``openvino_ir.to_openvino`` and compiled for the CPU (f32 hint, one thread).
On the 10,000 test images: top-1 of the file, of the TFLite-rule simulator (the QAT module)
and of the CPU simulator; each simulator's top-1 agreement with the file and its logit
differences (in output steps, the logits' quantization step); the host's CPU and flags.

    .venv/bin/python benchmarks/openvino_cpu_fidelity.py [--limit N] [--max-isa AVX2]

``--max-isa`` sets ONEDNN_MAX_CPU_ISA (e.g. AVX2, AVX512_CORE: no VNNI) to measure the kernels
a host without VNNI would run; the results file then carries the ISA in its name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from measuring import HERE, file_against_simulators, logit_differences

BATCH = 500


def cpu_info() -> dict:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("flags", "").split()
    return {"model": fields.get("model name", platform.processor()), "cores_visible": os.cpu_count(),
            "int8_relevant_flags": [f for f in flags if f in ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                                                                "amx_int8", "amx_tile", "avx512_bf16", "amx_bf16")],
            "flags": flags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--limit", type=int, default=None, help="test images (default: all 10,000)")
    parser.add_argument("--max-isa", default=None, help="ONEDNN_MAX_CPU_ISA for the compiled file")
    args = parser.parse_args()
    if args.max_isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.max_isa  # read by oneDNN when the CPU plugin loads

    import numpy as np
    import openvino as ov
    import torch

    import edgeresnet
    from edgeresnet.data import open_dataset, sample_pixels
    from edgeresnet.quantization import openvino_ir
    from edgeresnet.stages.ptq import PtqConfig, ptq

    torch.set_num_threads(1)
    start = time.perf_counter()
    data = args.shared / "datasets" / "cifar10-jpeg"
    model = edgeresnet.load_model(args.shared / "models" / "cifar" / "resnet20_cifar10jpeg.pt")
    train, test = open_dataset(data / "train.zip"), open_dataset(data / "test.zip")
    if args.limit:
        test = test.subset(args.limit, seed=0)
    # What the ptq-int8 recipe ships for openvino-int8: the ptq stage's parameters (7-bit first conv).
    quantized = ptq(model, sample_pixels(train, model.preprocess, 256, seed=0), "openvino", PtqConfig())
    simulator = quantized.module.eval()
    qat = simulator.qat

    ir = openvino_ir.to_openvino(qat, (BATCH, 3, 32, 32))
    compiled = ov.Core().compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
    runtime = [(op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str),
                op.get_rt_info()["primitiveType"].astype(str)) for op in compiled.get_runtime_model().get_ordered_ops()]
    kernels = sorted({f"{kind}: {prim} ({precision})" for kind, precision, prim in runtime
                      if kind in ("Convolution", "FullyConnected", "Reduce", "Subgraph")})
    step = float(openvino_ir.activation_range(qat.head.out)[2])
    setup_seconds = time.perf_counter() - start

    def run_file(inputs):  # the IR is compiled for batches of BATCH: the last one is padded
        padded = np.concatenate([inputs, np.zeros((BATCH - len(inputs), *inputs.shape[1:]), np.float32)])
        return compiled(padded)[0][:len(inputs)].copy()

    logits, labels, seconds = file_against_simulators(test, model.preprocess, BATCH, run_file,
                                                      {"tflite": qat, "cpu": simulator}, "fidelity")

    def top1(x):
        return round(100 * float((x.argmax(1) == labels).mean()), 2)

    comparisons = {name: logit_differences(logits["file"], logits[name], step, labels) for name in ("tflite", "cpu")}
    result = {
        "what": "resnet20 (fine-tuned), the ptq stage's openvino parameters (256 train images, minmax ranges, bias "
                "correction, first conv 7-bit); OpenVINO IR built from the "
                "simulator's parameters (openvino_ir.to_openvino) vs the TFLite-rule simulator and the "
                f"OpenVINO-CPU simulator, on {len(labels)} test images",
        "test_images": int(len(labels)),
        "top1": {"ir": top1(logits["file"]), "tflite_simulator": top1(logits["tflite"]), "cpu_simulator": top1(logits["cpu"])},
        "tflite_simulator_vs_ir": comparisons["tflite"],
        "cpu_simulator_vs_ir": comparisons["cpu"],
        "output_step": step,
        "openvino": ov.__version__,
        "compile_config": {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1,
                           "ONEDNN_MAX_CPU_ISA": args.max_isa or "native"},
        "kernels": kernels,
        "seconds": {"setup": round(setup_seconds, 1), **{("ir" if k == "file" else k): round(v, 1)
                                                          for k, v in seconds.items()},
                    "total": round(time.perf_counter() - start, 1)},
        "host": {"cpu": cpu_info(), "python": platform.python_version(), "torch": torch.__version__},
    }
    suffix = f"-{args.max_isa.lower()}" if args.max_isa else ""
    out = HERE / "results" / f"openvino-cpu-fidelity{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("top1", "tflite_simulator_vs_ir", "cpu_simulator_vs_ir", "seconds")},
                     indent=1))


def table(results: Path = Path(__file__).resolve().parent / "results") -> str:
    """The README table: the file against each simulator, per host ISA measured."""
    lines = ["| kernels | file top-1 | simulator | its top-1 | agrees with the file | logits bit-identical | "
             "max difference (output steps) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in ("openvino-cpu-fidelity.json", "openvino-cpu-fidelity-avx2.json"):
        path = results / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        isa = data.get("compile_config", {}).get("ONEDNN_MAX_CPU_ISA", "native")
        kernels = "native (AMX / AVX-512 VNNI)" if isa == "native" else isa
        for key, label in (("tflite_simulator", "TFLite rule"), ("cpu_simulator", "OpenVINO CPU")):
            row = data[f"{key}_vs_ir"]
            lines.append(f"| {kernels} | {data['top1']['ir']:.2f} | {label} | {data['top1'][key]:.2f} | "
                         f"{row['agreement_with_file']:.2f}% | {row['images_with_identical_logits']:.2f}% | "
                         f"{row['max_logit_difference_steps']:g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
