#!/usr/bin/env bash
# Measures every table of benchmarks/README.md again on this machine, then renders them.
# Hours on 2 cores: the QAT recipes train (see each script's docstring for its time).
# Pass --quick to skip the training recipes (ptq-int8 only: about 30 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
recipes=ptq-int8,qat-int8,prune-distill-qat-int8
[[ "${1:-}" == "--quick" ]] && recipes=ptq-int8
$PY benchmarks/runner_vs_vendor.py
$PY benchmarks/scaling.py
$PY benchmarks/targets_vs_raw.py --models resnet56 --recipes "$recipes"
# ResNet-20 has less to spare: whole blocks first, to 1.5x fewer MACs, and 15 epochs of distillation
# (benchmarks/README.md, table 1, says why).
$PY benchmarks/targets_vs_raw.py --models resnet20 --recipes "$recipes" \
    --set prune-distill-qat-int8:prune.macs=1.5 --set prune-distill-qat-int8:prune.remove_blocks=true \
    --set prune-distill-qat-int8:distill.epochs=15
# Table 1, paired: edgeresnet's int8 files against the raw ones image by image (trains qat-int8 again).
paired=ptq-int8,qat-int8
[[ "${1:-}" == "--quick" ]] && paired=ptq-int8
$PY benchmarks/paired_accuracy.py --models resnet20,resnet56 --recipes "$paired"
$PY benchmarks/training.py
$PY benchmarks/load_time.py
# ResNets written elsewhere, trained briefly at width 8 (the settings table 5 was measured with).
$PY benchmarks/foreign_models.py --width 8 --epochs 2
# Table 7: post-training int8 against the raw pipelines, and each file against its runtime's arithmetic.
$PY benchmarks/paired_accuracy.py --models resnet20,resnet56,resnet20-12fca82f,resnet56-4bfd9763 --recipes ptq-int8 \
    --out 'benchmarks/results/paired-ptq-{model}.json'
$PY benchmarks/ptq_fidelity.py
$PY benchmarks/ptq_settings.py --adaround
$PY benchmarks/ptq_time.py
$PY benchmarks/tflite_exact_fidelity.py
$PY benchmarks/openvino_cpu_fidelity.py
$PY benchmarks/openvino_cpu_fidelity.py --max-isa AVX2
$PY benchmarks/tables.py
