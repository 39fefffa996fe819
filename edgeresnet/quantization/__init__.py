"""Simulators of each runtime's int8 arithmetic in PyTorch, for the ptq and qat stages and for
export, which writes exactly the parameters a simulator holds and checks the file against it.

- tflite.py (with tflite_ops.py, tflite_general_ops.py, tflite_layouts.py): TFLite's int8
  kernels on every ResNet layout edgeresnet loads; tflite_exact.py: the bit-exact reference
- openvino_cpu.py, openvino_ir.py: OpenVINO CPU's int8 arithmetic and the IR that carries it;
  openvino.py: qat through it, or through NNCF for the layouts it does not know
- coreml.py: Core ML's W8A8 through coremltools.optimize.torch (qat and coreml-w8a8 export)
- ptq.py, ptq_rounding.py, simulate.py: post-training ranges, bias correction and AdaRound,
  and a Model quantized in a simulator (what the ptq stage and export call)
- fake.py: the fake-quantization formulas; schemes.py: the qat schemes and what each offers
"""

from .schemes import SCHEMES as SCHEMES
