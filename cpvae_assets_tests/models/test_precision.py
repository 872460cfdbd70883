"""Detection of native bfloat16 units from /proc/cpuinfo."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpvae_assets.models.precision import cpu_flags, native_bf16


@pytest.mark.parametrize(("flags", "native"), [
    ("fpu sse2 avx2 fma avx512f avx512_bf16", True),  # Intel Cooper Lake, AMD Zen 4
    ("fpu avx2 avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
    ("fpu sse2 avx2 fma", False),  # AMD EPYC Zen 2/3: this project's machines
    ("", False),
])
def test_native_bf16_from_cpuinfo(tmp_path: Path, flags: str, native: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert native_bf16(cpuinfo) is native
    assert cpu_flags(cpuinfo) == frozenset(flags.split())


def test_no_cpuinfo_means_no_native_bf16(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "absent") == frozenset() and native_bf16(tmp_path / "absent") is False
