"""Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16): only there do bfloat16
matmul operands train faster; elsewhere TensorFlow emulates them, slower than float32."""

from __future__ import annotations

from pathlib import Path

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The feature flags of the first CPU listed (empty where there is no /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    return bool(cpu_flags(cpuinfo) & BF16_FLAGS)
