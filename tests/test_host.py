"""The host block: the board, the CPU and the int8-relevant instruction-set features."""

from __future__ import annotations

import platform
from pathlib import Path

from edgeresnet.runner import host

# /proc/cpuinfo of a Raspberry Pi 5 (arm64 kernel): no model name, the core in "CPU part".
PI5 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

processor\t: 1
Features\t: fp asimd
CPU implementer\t: 0x41
CPU part\t: 0xd0b

Revision\t: d04170
Serial\t\t: 0000000000000000
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""

# An AMD EPYC host of this project's CI: AVX2, no VNNI.
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""


def test_arm_core_is_decoded_from_its_part_number():
    assert host.cpu_model(PI5) == "Arm Cortex-A76"
    assert host.isa_features(PI5) == ["asimd", "asimdhp", "asimddp"]
    unknown = PI5.replace("0xd0b", "0xfff")
    assert host.cpu_model(unknown) == "ARM implementer 0x41 part 0xfff"


def test_x86_features_without_vnni():
    assert host.cpu_model(EPYC) == "AMD EPYC 7B13"
    features = host.isa_features(EPYC)
    assert features == ["avx2"]
    assert not host.INT8_DOT_PRODUCT & set(features)


def test_board_from_the_device_tree(tmp_path):
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    assert host.board(model) == "Raspberry Pi 5 Model B Rev 1.0"
    assert host.board(tmp_path / "absent") is None


def test_this_machine_lists_what_its_cpuinfo_says():
    info = host.host_info(2)
    assert info["machine"] == platform.machine() and info["threads"] == 2
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set(host._fields(cpuinfo).get("flags", host._fields(cpuinfo).get("features", "")).split())
    assert info["isa"] == [f for f in host.X86_FEATURES + host.ARM_FEATURES if f in flags]
    assert info["int8_dot_product"] == bool(host.INT8_DOT_PRODUCT & flags)
    if platform.machine() == "x86_64":
        assert "avx2" in info["isa"]  # every host this project runs on has it


def test_which_of_int8_and_fp32_is_faster_and_why():
    p50 = {"tflite-fp32": 2.30, "tflite-int8": 2.83, "openvino-fp32": 1.0, "openvino-int8": 0.4, "onnx": 1.1}
    epyc = {"cpu": "AMD EPYC 7B13", "isa": host.isa_features(EPYC)}
    openvino, tflite = host.int8_speed_notes(p50, epyc)
    assert tflite.startswith("tflite-int8 is not faster than tflite-fp32 here (2.830 ms against 2.300 ms p50)")
    assert "AMD EPYC 7B13" in tflite and "no int8 dot-product instructions" in tflite
    assert openvino.startswith("openvino-int8 is 2.5x faster than openvino-fp32 here")
    vnni = {"cpu": "Xeon", "isa": ["avx2", "avx512_vnni"]}
    assert host.int8_speed_notes({"tflite-int8": 0.6, "tflite-fp32": 2.1}, vnni) == [
        "tflite-int8 is 3.5x faster than tflite-fp32 here (0.600 ms against 2.100 ms p50): this CPU has int8 "
        "dot-product instructions (avx512_vnni)"]
    assert "check the threads" in host.int8_speed_notes({"tflite-int8": 3.0, "tflite-fp32": 2.0}, vnni)[0]
    assert host.int8_speed_notes({"tflite-int8": 3.0, "onnx": 1.0}, epyc) == []  # no fp32 file of its runtime
