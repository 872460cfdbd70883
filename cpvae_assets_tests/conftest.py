"""Shared fixtures: every test gets its own lake, never the repository's data_lake/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cpvae_assets.registry import DATA_DIR

REAL_CP = DATA_DIR / "real" / "lincs_cellpainting_plate_SQ00015054.csv.gz"
REAL_L1000 = DATA_DIR / "real" / "l1000_LJP005_A375_24H.gct.gz"


@pytest.fixture(autouse=True)
def _isolated_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPVAE_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    os.makedirs(tmp_path / "dagster_home", exist_ok=True)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    path = tmp_path / "lake"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _fast_download_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retried downloads wait milliseconds, not seconds, between attempts in tests."""
    import cpvae_assets.fetch

    monkeypatch.setattr(cpvae_assets.fetch, "BACKOFF_SECONDS", 0.01)
