"""Detection of native bfloat16 units and the widest vector instructions from /proc/cpuinfo; the kernel record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cpvae_assets.models.precision import cpu_flags, kernel_record, native_bf16, vector_isa


@pytest.mark.parametrize(("flags", "native", "isa"), [
    ("fpu sse2 avx2 fma avx512f avx512_bf16", True, "avx512f"),  # Intel Cooper Lake, AMD Zen 4
    ("fpu avx2 avx512f amx_bf16 amx_tile", True, "avx512f"),  # Intel Sapphire Rapids
    ("fpu sse2 sse4_2 avx avx2 fma", False, "avx2"),  # AMD EPYC Zen 2/3: some of this project's machines
    ("fpu sse2 sse4_2", False, "sse4_2"),
    ("", False, None),
])
def test_native_bf16_and_vector_isa_from_cpuinfo(tmp_path: Path, flags: str, native: bool, isa: str | None) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert native_bf16(cpuinfo) is native
    assert vector_isa(cpuinfo) == isa
    assert cpu_flags(cpuinfo) == frozenset(flags.split())
    assert kernel_record(cpuinfo) | {"tensorflow_onednn": None} == {"vector_isa": isa, "native_bf16": native,
                                                                     "tensorflow_onednn": None}


def test_no_cpuinfo_means_no_native_bf16(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "absent") == frozenset() and native_bf16(tmp_path / "absent") is False


@pytest.mark.parametrize(("setting", "expected"), [("1", True), ("0", False)])
def test_tensorflow_onednn_follows_the_environment_variable(setting: str, expected: bool) -> None:
    """A fresh process (TensorFlow reads TF_ENABLE_ONEDNN_OPTS once): the record says what TensorFlow runs."""
    import subprocess
    import sys

    probe = "from cpvae_assets.models.precision import tensorflow_onednn; print(tensorflow_onednn())"
    done = subprocess.run([sys.executable, "-c", probe], env=os.environ | {"TF_ENABLE_ONEDNN_OPTS": setting},
                          capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == str(expected)
