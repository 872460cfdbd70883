"""The dataset registry (``datasets.toml``) and a landing folder's own ``dataset.toml``: every entry
loads, ``extends`` inherits and overrides, unknown names, parents and keys are refused."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from cpvae_assets.ingestion.registry import LOCAL_SPEC, REGISTRY_FILE, RegistryError, dataset_spec, load_registry
from cpvae_assets.ingestion.validate import ingest_dataset
from cpvae_assets.storage.paths import UnsafePathError, landing_dir
from cpvae_assets_tests.support.real_data import REAL_CP

# --------------------------------------------------------------------------- registry


def _registry_names() -> list[str]:
    with open(REGISTRY_FILE, "rb") as handle:
        return list(tomllib.load(handle)["datasets"])


@pytest.mark.parametrize("name", _registry_names())
def test_every_registry_entry_loads(name: str) -> None:
    registry = load_registry()
    assert set(registry) == set(_registry_names())
    spec = dataset_spec(name)
    assert spec is registry[name] or spec == registry[name]
    assert spec.name == name
    assert spec.kind in ("cell_painting", "l1000")
    assert spec.control_values
    assert spec.moa or (spec.moa_table and spec.moa_join)
    if spec.moa_table:
        assert spec.moa_table_path().is_file()
    assert spec.required_columns[0] == spec.compound
    assert len(spec.required_columns) == len(set(spec.required_columns))


def test_extends_inherits_but_not_remote_files() -> None:
    registry = load_registry()
    parent, child = registry["lincs_cp_plate"], registry["lincs_cp_level5"]
    assert child.stratum == "Metadata_Plate_Map_Name" != parent.stratum
    assert (child.compound, child.moa, child.dose, child.control_values) == (
        parent.compound, parent.moa, parent.dose, parent.control_values)
    assert child.remote_files and not parent.remote_files
    assert registry["lincs_cp_level4"].remote_files != child.remote_files


def test_unknown_dataset_raises_registry_error_naming_the_registry() -> None:
    with pytest.raises(RegistryError) as info:
        dataset_spec("nope")
    message = str(info.value)
    assert "'nope'" in message
    assert str(REGISTRY_FILE) in message
    assert LOCAL_SPEC in message


def test_unsafe_dataset_name_is_refused_before_lookup() -> None:
    with pytest.raises(UnsafePathError):
        dataset_spec("../datasets")


def test_landing_dataset_toml_extends_and_overrides(lake: Path) -> None:
    landing = landing_dir(lake, "my_plate")
    landing.mkdir(parents=True)
    shutil.copy(REAL_CP, landing)
    (landing / LOCAL_SPEC).write_text('extends = "lincs_cp_plate"\nstratum = "Metadata_Well"\n')

    spec = dataset_spec("my_plate", landing)
    parent = dataset_spec("lincs_cp_plate")
    assert spec.name == "my_plate"
    assert spec.stratum == "Metadata_Well"
    assert (spec.kind, spec.compound, spec.moa, spec.dose, spec.control_column, spec.control_values) == (
        parent.kind, parent.compound, parent.moa, parent.dose, parent.control_column, parent.control_values)

    result = ingest_dataset(landing, spec)
    assert result.profiles["stratum"].nunique() == 384
    assert result.profiles["stratum"].tolist() == result.profiles["Metadata_Well"].tolist()


def test_landing_dataset_toml_extends_a_moa_join_dataset(lake: Path) -> None:
    landing = landing_dir(lake, "my_l1000")
    landing.mkdir(parents=True)
    (landing / LOCAL_SPEC).write_text('extends = "l1000_ljp005"\ncontrol_values = ["DMSO", "ctl_vehicle"]\n')
    spec = dataset_spec("my_l1000", landing)
    assert spec.moa_join == ("Metadata_pert_iname", "pert_iname")
    assert spec.moa_table == "repurposing_simple.tsv"
    assert spec.control_values == ("DMSO", "ctl_vehicle")


def test_landing_dataset_toml_with_unknown_parent_names_the_file(lake: Path) -> None:
    landing = landing_dir(lake, "orphan")
    landing.mkdir(parents=True)
    (landing / LOCAL_SPEC).write_text('extends = "no_such_parent"\n')
    with pytest.raises(RegistryError) as info:
        dataset_spec("orphan", landing)
    assert str(landing / LOCAL_SPEC) in str(info.value)
    assert "'no_such_parent'" in str(info.value)


def test_landing_dataset_toml_with_unknown_key_is_refused(lake: Path) -> None:
    landing = landing_dir(lake, "typo")
    landing.mkdir(parents=True)
    (landing / LOCAL_SPEC).write_text('extends = "lincs_cp_plate"\nstartum = "Metadata_Well"\n')
    with pytest.raises(RegistryError, match=r"unknown keys \['startum'\]"):
        dataset_spec("typo", landing)
