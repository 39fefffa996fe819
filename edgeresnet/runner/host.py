"""What machine a number was measured on: the board, the CPU, and the instruction-set
features that decide how fast int8 runs there.

int8 speed depends on a few features more than on the clock: on x86, VNNI (avx512_vnni,
avx_vnni) or AMX adds four u8 x s8 products into int32 in one instruction, where AVX2 needs
three and saturates pairs in int16 (XNNPACK's int8 is then no faster than fp32); on ARM, the
dot-product instructions (asimddp) and i8mm do the same for NEON. Reads /proc only: no
torch, no TensorFlow (this runs on the device).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The features that decide int8 (and fp16) kernel choice, in the spelling /proc/cpuinfo uses.
X86_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
ARM_FEATURES = ("asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2")
# Whether a CPU has a fast int8 dot product: what makes int8 files faster than fp32 ones.
INT8_DOT_PRODUCT = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"}

# ARM's "CPU implementer" and "CPU part" codes (Arm's technical reference manuals; the
# boards this tool is used on: Raspberry Pi 3/4/5, Jetson Nano/Xavier/Orin, Graviton).
_ARM_PARTS = {
    (0x41, 0xD03): "Arm Cortex-A53",
    (0x41, 0xD04): "Arm Cortex-A35",
    (0x41, 0xD05): "Arm Cortex-A55",
    (0x41, 0xD07): "Arm Cortex-A57",
    (0x41, 0xD08): "Arm Cortex-A72",
    (0x41, 0xD09): "Arm Cortex-A73",
    (0x41, 0xD0A): "Arm Cortex-A75",
    (0x41, 0xD0B): "Arm Cortex-A76",
    (0x41, 0xD0C): "Arm Neoverse-N1",
    (0x41, 0xD0D): "Arm Cortex-A77",
    (0x41, 0xD40): "Arm Neoverse-V1",
    (0x41, 0xD41): "Arm Cortex-A78",
    (0x41, 0xD42): "Arm Cortex-A78AE",
    (0x41, 0xD44): "Arm Cortex-X1",
    (0x41, 0xD46): "Arm Cortex-A510",
    (0x41, 0xD47): "Arm Cortex-A710",
    (0x41, 0xD48): "Arm Cortex-X2",
    (0x41, 0xD49): "Arm Neoverse-N2",
    (0x41, 0xD4B): "Arm Cortex-A78C",
    (0x41, 0xD4F): "Arm Neoverse-V2",
    (0x41, 0xD80): "Arm Cortex-A520",
    (0x41, 0xD81): "Arm Cortex-A720",
    (0x4E, 0x004): "NVIDIA Carmel",
    (0x61, 0x022): "Apple M1 Icestorm",
    (0x61, 0x023): "Apple M1 Firestorm",
}


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _fields(cpuinfo: str) -> dict[str, str]:
    """The first processor's fields (lower-case names), and the file-wide ones ARM puts at the end."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() not in fields:
            fields[name.strip().lower()] = value.strip()
    return fields


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's name: x86's model name; on ARM the core decoded from its part number."""
    fields = _fields(_cpuinfo() if cpuinfo is None else cpuinfo)
    for name in ("model name", "cpu model"):
        if fields.get(name) and not fields[name].lower().startswith("arm"):  # ARM's is "ARMv8 Processor rev 1"
            return fields[name]
    try:
        part = (int(fields["cpu implementer"], 16), int(fields["cpu part"], 16))
    except (KeyError, ValueError):
        part = None
    if part is not None:
        return _ARM_PARTS.get(part, f"ARM implementer {part[0]:#x} part {part[1]:#05x}")
    return fields.get("hardware") or fields.get("model name") or platform.processor() or platform.machine()


def isa_features(cpuinfo: str | None = None) -> list[str]:
    """The int8-relevant features this CPU reports (x86 ``flags``, ARM ``Features``)."""
    fields = _fields(_cpuinfo() if cpuinfo is None else cpuinfo)
    present = set((fields.get("flags") or fields.get("features") or "").split())
    return [f for f in X86_FEATURES + ARM_FEATURES if f in present]


def board(model_file: Path = Path("/proc/device-tree/model")) -> str | None:
    """The board's name where the firmware gives one ("Raspberry Pi 5 Model B Rev 1.0",
    "NVIDIA Jetson Orin Nano Developer Kit"); None on PCs and servers."""
    try:
        name = model_file.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
    except OSError:
        return None
    return name or None


def host_info(threads: int | None = None) -> dict:
    cpuinfo = _cpuinfo()
    features = isa_features(cpuinfo)
    return {
        "cpu": cpu_model(cpuinfo),
        "board": board(),
        "cores": os.cpu_count(),
        "threads": threads,
        "machine": platform.machine(),
        "isa": features,
        "int8_dot_product": bool(INT8_DOT_PRODUCT & set(features)),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def int8_speed_notes(p50_ms: dict[str, float], host: dict) -> list[str]:
    """For each int8 file with an fp32 file of the same runtime (``p50_ms``: target name ->
    median latency, measured in one run on this host), which of the two is faster here and why:
    an int8 file is only faster where the CPU has an int8 dot-product instruction."""
    features = [f for f in host.get("isa") or [] if f in INT8_DOT_PRODUCT]
    notes = []
    for target, int8 in sorted(p50_ms.items()):
        runtime, _, precision = target.partition("-")
        fp32 = p50_ms.get(f"{runtime}-fp32")
        if precision != "int8" or fp32 is None:
            continue
        timing = f"({int8:.3f} ms against {fp32:.3f} ms p50)"
        if int8 < fp32:
            why = (
                f"this CPU has int8 dot-product instructions ({', '.join(features)})"
                if features
                else "though this CPU reports no int8 dot-product instruction"
            )
            notes.append(f"{target} is {fp32 / int8:.1f}x faster than {runtime}-fp32 here {timing}: {why}")
        elif features:
            notes.append(
                f"{target} is not faster than {runtime}-fp32 here {timing}, though this CPU has int8 "
                f"dot-product instructions ({', '.join(features)}): check the threads and the runtime's "
                "version"
            )
        else:
            notes.append(
                f"{target} is not faster than {runtime}-fp32 here {timing}: this CPU ({host.get('cpu')}) "
                "has no int8 dot-product instructions (x86: avx512_vnni, avx_vnni or amx_int8; ARM: asimddp "
                "or i8mm), so int8 saves memory here, not time; pick the fp32 or fp16 file for speed"
            )
    return notes
