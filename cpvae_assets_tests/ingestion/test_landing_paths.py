"""Path safety of landing folders: dataset names are checked before they become paths, and a symlink
may not lead out of its landing folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cpvae_assets.ingestion.landing import landing_files
from cpvae_assets.ingestion.validate import ingest_dataset
from cpvae_assets.storage.paths import UnsafePathError, check_name, landing_dir
from cpvae_assets_tests.support.profiles import SPEC, cp_frame, write_profiles
from cpvae_assets_tests.support.profiles import assert_names as _assert_names

# --------------------------------------------------------------------------- path safety


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", "..", ".", ".hidden", "a\\b", "x" * 129, "a..b"])
def test_check_name_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafePathError, match=r"invalid dataset name"):
        check_name(name)


@pytest.mark.parametrize("name", ["lincs_cp_plate", "l1000_ljp005", "a", "A1.b-c_d", "x" * 128])
def test_check_name_accepts_plain_names(name: str) -> None:
    assert check_name(name) == name


def test_symlink_leaving_the_landing_folder_is_refused(tmp_path: Path, landing: Path) -> None:
    outside = write_profiles(cp_frame(), tmp_path / "secret.csv")
    link = landing / "plate.csv"
    os.symlink(outside, link)
    with pytest.raises(UnsafePathError) as info:
        landing_files(landing)
    _assert_names(info.value, link, r"outside", re.escape(str(landing.resolve())))
    with pytest.raises(UnsafePathError):
        ingest_dataset(landing, SPEC)


def test_symlink_inside_the_landing_folder_is_allowed(landing: Path) -> None:
    (landing / "raw").mkdir()
    target = write_profiles(cp_frame(), landing / "raw" / "real.csv")
    os.symlink(target, landing / "plate.csv")
    assert landing_files(landing) == [landing / "plate.csv"]
    assert len(ingest_dataset(landing, SPEC).profiles) == 8


@pytest.mark.parametrize("name", ["../escape", "/etc", "a/../../b", ".."])
def test_landing_dir_refuses_escaping_names(lake: Path, name: str) -> None:
    with pytest.raises(UnsafePathError):
        landing_dir(lake, name)


def test_landing_dir_is_under_the_lake(lake: Path) -> None:
    assert landing_dir(lake, "lincs_cp_plate") == lake / "landing" / "lincs_cp_plate"
