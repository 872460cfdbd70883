"""The daemon of the refresh fault tests: a fresh instance and lake, stopped after the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpvae_assets_tests.support.daemon import Daemon


@pytest.fixture
def daemon(tmp_path: Path, request: pytest.FixtureRequest):
    """Model types of the refresh from the test's parameter (``"beta,pca"``), pca otherwise."""
    types = getattr(request, "param", "pca")
    started = Daemon.create(tmp_path / "daemon", CPVAE_REFRESH_MODEL_TYPES=types, CPVAE_REFRESH_PRESET="demo")
    try:
        yield started
    finally:
        started.close()
