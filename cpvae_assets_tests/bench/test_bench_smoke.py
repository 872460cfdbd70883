"""The benchmark scripts still run: the quick mode of the ones that do not train (the shuffled null,
SQL over a benchmark lake), writing into a temporary results file. Timings are not checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cpvae_assets.storage.paths import project_root

BENCH = project_root() / "bench"


@pytest.mark.parametrize(("script", "table"), [("null_benchmark.py", "| permutations |"), ("sql_benchmark.py", "| query |")])
def test_benchmark_quick_mode_runs(script: str, table: str, tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    out = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--results", str(results)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    text = results.read_text()
    assert text.count("<!-- bench:") == 1 and table in text
    assert "commit:" in text and "load average" in text and "machine:" in text
