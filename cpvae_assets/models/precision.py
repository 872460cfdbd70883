"""What this CPU and TensorFlow multiply with: native bfloat16 units (AVX512-BF16 or AMX-BF16), the widest
vector instructions, and whether TensorFlow runs its matmuls through oneDNN's own ops. Only with native
bfloat16 do bfloat16 matmul operands train faster; elsewhere TensorFlow emulates them, slower than float32.
The kernels decide the rounding, so a model trained from the same data and seeds is bit-identical only on
CPUs that run the same kernels: each trained model records them (``kernel_record``)."""

from __future__ import annotations

from pathlib import Path

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
VECTOR_ISAS = ("avx512f", "avx2", "avx", "sse4_2")  # widest first


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
    return _has_bf16(cpu_flags(cpuinfo))


def vector_isa(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The widest of ``VECTOR_ISAS`` this CPU has (None where unknown)."""
    return _widest(cpu_flags(cpuinfo))


def _has_bf16(flags: frozenset[str]) -> bool:
    return bool(flags & BF16_FLAGS)


def _widest(flags: frozenset[str]) -> str | None:
    return next((isa for isa in VECTOR_ISAS if isa in flags), None)


def tensorflow_onednn() -> bool | None:
    """Whether TensorFlow rewrites its matmuls into oneDNN's ops (``TF_ENABLE_ONEDNN_OPTS``; unset,
    TensorFlow decides by CPU). Measured: off on an AVX2-only AMD EPYC, where a matmul runs as Eigen's
    blocked contraction calling oneDNN's sgemm per block (``ONEDNN_VERBOSE=1`` shows the blocks). None
    where the TensorFlow build does not say."""
    try:
        from tensorflow.python.util import _pywrap_util_port  # no public accessor in TF 2.20
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def kernel_record(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, object]:
    flags = cpu_flags(cpuinfo)  # read once
    return {"vector_isa": _widest(flags), "native_bf16": _has_bf16(flags), "tensorflow_onednn": tensorflow_onednn()}
