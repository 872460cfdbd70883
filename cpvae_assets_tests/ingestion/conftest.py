"""Fixtures of the ingestion tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpvae_assets.storage.paths import landing_dir


@pytest.fixture
def landing(lake: Path) -> Path:
    path = landing_dir(lake, "synthetic_cp")
    path.mkdir(parents=True)
    return path
