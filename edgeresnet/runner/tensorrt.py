"""Runs a TensorRT target's ONNX on an NVIDIA GPU (a Jetson): the engine is built here, on the device.

An engine is specific to the GPU, the TensorRT version and the build flags, so export writes
the ONNX it is built from (export/tensorrt/) and this module builds the engine with
TensorRT's Python API the first time a file is benchmarked on a device, then caches it in
`engines/` beside the file, under a name that holds everything that makes it specific (the
file's sha256, TensorRT's version, the GPU's compute capability). A Jetson takes minutes to
build a ResNet-50: the cache makes the second bench start in a second. The build counts in
the row's load time when it happens.

Device memory and copies go through CUDA's runtime library with ctypes: no torch, no
pycuda, no cuda-python to install on the Jetson (JetPack has libcudart; a pip TensorRT
brings it as nvidia-cuda-runtime). Where TensorRT's Python package is missing,
onnxruntime's TensorRT execution provider (onnxruntime-gpu) runs the file, or failing that
its CUDA one; the row's note says which ran it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import EdgeResNetError
from .base import Runtime, tensor_spec

# Device nodes of an NVIDIA GPU: a discrete one (the driver's), a Jetson's integrated one.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu")
SETUP_HINT = "bench this run on the Jetson (see examples/jetson), e.g. edgeresnet bench RUN --ssh user@jetson"
WORKSPACE_BYTES = 1 << 30  # the builder's scratch memory: enough for ResNet-50 tactics, within a Jetson's RAM
_HOST_TO_DEVICE, _DEVICE_TO_HOST = 1, 2  # cudaMemcpyKind
_COMPUTE_MAJOR, _COMPUTE_MINOR = 75, 76  # cudaDeviceAttr


def unavailable_reason() -> str | None:
    """Why no TensorRT file can run here, or None when one can."""
    if not any(os.path.exists(node) for node in GPU_DEVICE_NODES):
        return "TensorRT needs an NVIDIA GPU; this host has none"
    if _tensorrt() is not None and _cuda() is not None:
        return None
    if _onnxruntime_gpu_providers():
        return None
    return (
        "no TensorRT here: install TensorRT's Python package in the runner's environment (JetPack's "
        "python3-libnvinfer, or pip tensorrt) or onnxruntime-gpu"
    )


def open_tensorrt(path: Path, precision: str, threads: int | None = None, batch: int = 1) -> Runtime:
    """The file as an engine of ``precision`` ("fp16" or "int8"), built or read from the cache."""
    reason = unavailable_reason()
    if reason is not None:
        raise EdgeResNetError(reason, SETUP_HINT)
    if batch != 1:
        raise EdgeResNetError("TensorRT files are built for a batch of 1, as an app runs them", "bench with --batch 1")
    trt, cuda = _tensorrt(), _cuda()
    if trt is not None and cuda is not None:
        return TensorRTEngine(Path(path), precision, trt, cuda)
    from .onnx import ONNXModel

    return ONNXModel(path, threads, batch, providers=_onnxruntime_providers(Path(path), precision))


class TensorRTEngine(Runtime):
    def __init__(self, path: Path, precision: str, trt, cuda: _Cuda):
        self.cuda = cuda
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine_path = engine_path(path, trt.__version__, cuda.compute_capability())
        self.runtime = trt.Runtime(self.logger)  # kept: the engine must not outlive the runtime that made it
        engine = None
        if self.engine_path.is_file():  # a cache from another TensorRT build does not deserialize: rebuilt
            engine = self.runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            plan = build_engine(path, precision, trt, self.logger)
            self.engine_path.parent.mkdir(exist_ok=True)
            self.engine_path.write_bytes(plan)
            engine = self.runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EdgeResNetError(f"TensorRT could not load the engine it built from {path.name}")
        self.engine, self.context = engine, engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EdgeResNetError(f"{path.name} has {len(inputs)} inputs and {len(outputs)} outputs, not one of each")
        self.input, self.output = inputs[0], outputs[0]
        # One host and one device buffer per tensor, bound once: each invoke only copies and runs.
        self.host = {
            n: np.empty(tuple(engine.get_tensor_shape(n)), trt.nptype(engine.get_tensor_dtype(n)))
            for n in (self.input, self.output)
        }
        self.device = {n: cuda.malloc(array.nbytes) for n, array in self.host.items()}
        for name, pointer in self.device.items():
            self.context.set_tensor_address(name, pointer)
        self.stream = cuda.stream()

    def invoke(self, raw_input: np.ndarray) -> np.ndarray:
        host_in, host_out = self.host[self.input], self.host[self.output]
        host_in[...] = raw_input
        self.cuda.copy(self.device[self.input], host_in.ctypes.data, host_in.nbytes, _HOST_TO_DEVICE, self.stream)
        if not self.context.execute_async_v3(self.stream):
            raise EdgeResNetError(f"TensorRT failed to run {self.engine_path.name}")
        self.cuda.copy(host_out.ctypes.data, self.device[self.output], host_out.nbytes, _DEVICE_TO_HOST, self.stream)
        self.cuda.synchronize(self.stream)
        return host_out

    def io_specs(self) -> tuple[dict, dict]:
        return (
            tensor_spec(self.input, self.host[self.input].shape, self.host[self.input].dtype.name, "NCHW"),
            tensor_spec(self.output, self.host[self.output].shape, self.host[self.output].dtype.name),
        )

    def __del__(self):
        for pointer in getattr(self, "device", {}).values():
            self.cuda.free(pointer)


def engine_path(path: Path, tensorrt_version: str, compute_capability: tuple[int, int]) -> Path:
    """Where the engine of ``path`` built by this TensorRT for this GPU is cached."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    major, minor = compute_capability
    return Path(path).parent / "engines" / f"{Path(path).stem}-{digest}-trt{tensorrt_version}-sm{major}{minor}.engine"


def build_engine(path: Path, precision: str, trt, logger) -> bytes:
    """A serialized engine of the ONNX file: float16 kernels for fp16, and for int8 the file's
    own Q/DQ scales (explicit quantization), float16 where the file has none."""
    builder = trt.Builder(logger)
    # TensorRT 8.x needs the explicit-batch flag; from 10 it is the only mode and the flag is gone.
    explicit_batch = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    network = builder.create_network(
        0 if explicit_batch is None or int(trt.__version__.split(".")[0]) >= 10 else 1 << int(explicit_batch)
    )
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EdgeResNetError(
            f"TensorRT's ONNX parser refused {path.name}: {errors}", "please report it with the model"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    flags = {"fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]
    for flag in flags:
        if not hasattr(trt.BuilderFlag, flag):
            raise EdgeResNetError(
                f"this TensorRT ({trt.__version__}) has no {flag} builder flag", "use TensorRT 8.6 to 10 (JetPack 6)"
            )
        config.set_flag(getattr(trt.BuilderFlag, flag))
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EdgeResNetError(f"TensorRT could not build an engine of {path.name} (its log above says why)")
    return bytes(plan)


def _tensorrt():
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt


class _Cuda:
    """The few calls of CUDA's runtime library the engine needs."""

    def __init__(self, library: ctypes.CDLL):
        self.lib = library
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p

    def _check(self, error: int, call: str) -> None:
        if error:
            raise EdgeResNetError(f"CUDA {call} failed: {self.lib.cudaGetErrorString(error).decode()}")

    def device_count(self) -> int:
        count = ctypes.c_int(0)
        return count.value if self.lib.cudaGetDeviceCount(ctypes.byref(count)) == 0 else 0

    def compute_capability(self) -> tuple[int, int]:
        values = []
        for attribute in (_COMPUTE_MAJOR, _COMPUTE_MINOR):
            value = ctypes.c_int(0)
            self._check(self.lib.cudaDeviceGetAttribute(ctypes.byref(value), attribute, 0), "cudaDeviceGetAttribute")
            values.append(value.value)
        return values[0], values[1]

    def malloc(self, size: int) -> int:
        pointer = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(pointer), ctypes.c_size_t(size)), "cudaMalloc")
        if pointer.value is None:  # success with no memory: a size of 0
            raise EdgeResNetError(f"CUDA cudaMalloc of {size} bytes returned no memory")
        return int(pointer.value)

    def free(self, pointer: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(pointer))

    def stream(self) -> int:
        stream = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(stream)), "cudaStreamCreate")
        return int(stream.value or 0)

    def copy(self, destination: int, source: int, size: int, kind: int, stream: int) -> None:
        self._check(
            self.lib.cudaMemcpyAsync(
                ctypes.c_void_p(destination),
                ctypes.c_void_p(source),
                ctypes.c_size_t(size),
                kind,
                ctypes.c_void_p(stream),
            ),
            "cudaMemcpyAsync",
        )

    def synchronize(self, stream: int) -> None:
        self._check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(stream)), "cudaStreamSynchronize")


def _cuda() -> _Cuda | None:
    """CUDA's runtime library, where it is installed and sees a GPU."""
    for candidate in _cudart_candidates():
        try:
            cuda = _Cuda(ctypes.CDLL(candidate))
        except OSError:
            continue
        if cuda.device_count() > 0:
            return cuda
    return None


def _cudart_candidates() -> list[str]:
    found = ctypes.util.find_library("cudart")
    names = [found] if found else []
    names += ["libcudart.so", "libcudart.so.12", "libcudart.so.11.0"]
    names += sorted(glob.glob("/usr/local/cuda*/lib64/libcudart.so*"))
    try:  # pip's TensorRT brings CUDA's runtime as the nvidia-cuda-runtime package
        import nvidia.cuda_runtime as runtime_package

        names += sorted(glob.glob(os.path.join(list(runtime_package.__path__)[0], "lib", "libcudart.so*")))
    except ImportError:
        pass
    return names


def _onnxruntime_gpu_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError:
        return []
    return [
        p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in onnxruntime.get_available_providers()
    ]


def _onnxruntime_providers(path: Path, precision: str) -> list:
    """onnxruntime's GPU providers in order of preference; its TensorRT one caches engines as we do."""
    available = _onnxruntime_gpu_providers()
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        cache = path.parent / "engines"
        cache.mkdir(exist_ok=True)
        providers.append(
            (
                "TensorrtExecutionProvider",
                {
                    "trt_fp16_enable": True,
                    "trt_int8_enable": precision == "int8",
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                },
            )
        )
    if "CUDAExecutionProvider" in available:
        providers.append("CUDAExecutionProvider")
    return [*providers, "CPUExecutionProvider"]
