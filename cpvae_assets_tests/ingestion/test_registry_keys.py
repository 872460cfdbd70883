"""The registry keys real users' data need: unprefixed metadata columns, optional dose and stratum (MOA
group as stratum), ``control = "zero_signature"`` (accepted without controls, refused with them),
``scaling`` / ``clip_quantiles``, and MOA table paths that stay inside the package data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.ingestion.readers import ProfileFileError
from cpvae_assets.ingestion.registry import LOCAL_SPEC, DatasetSpec, RegistryError, dataset_spec
from cpvae_assets.ingestion.validate import ingest_dataset
from cpvae_assets.schema import NO_MOA, pair_key
from cpvae_assets.storage.paths import PACKAGE_DATA, UnsafePathError

GENES = ["10007", "1001", "10013", "2"]  # Entrez gene IDs: digits, and features


def signatures(n: int = 6, seed: int = 0) -> pd.DataFrame:
    """z-scored signatures as real users have them: an unprefixed ID column, genes as columns."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"perturbagen": [f"DB{i:05d}" for i in range(n)],
                          "moa": (["MEK inhibitor", "RAF inhibitor|MEK inhibitor", ""] * n)[:n]})
    for gene in GENES:
        frame[gene] = rng.normal(0, 3, n).round(3)
    return frame


def spec(**changes: object) -> DatasetSpec:
    values = dict(name="zsig", kind="l1000", metadata_columns=("perturbagen", "moa"), compound="perturbagen",
                  moa="moa", control="zero_signature")
    return DatasetSpec(**{**values, **changes})


@pytest.mark.parametrize("suffix", [".tsv", ".tsv.gz"])
def test_tsv_with_an_unprefixed_id_column(landing: Path, suffix: str) -> None:
    frame = signatures()
    frame.to_csv(landing / f"signatures{suffix}", sep="\t", index=False)
    result = ingest_dataset(landing, spec())
    profiles = result.profiles
    assert result.features == GENES  # digits are gene IDs, i.e. features
    assert {"Metadata_perturbagen", "Metadata_moa"} <= set(profiles.columns) and "perturbagen" not in profiles
    assert profiles["compound"].tolist() == frame["perturbagen"].tolist()
    np.testing.assert_array_equal(profiles[GENES].to_numpy(), frame[GENES].to_numpy())


def test_role_keys_may_name_either_spelling() -> None:
    plain, prefixed = spec(), spec(compound="Metadata_perturbagen", moa="Metadata_moa")
    assert plain.compound == prefixed.compound == "Metadata_perturbagen"
    assert plain.required_columns == prefixed.required_columns == ["Metadata_perturbagen", "Metadata_moa"]


def test_an_undeclared_id_column_is_a_feature_with_a_hint(landing: Path) -> None:
    path = landing / "signatures.tsv"
    signatures().to_csv(path, sep="\t", index=False)
    with pytest.raises(ProfileFileError, match="metadata_columns") as info:
        ingest_dataset(landing, spec(metadata_columns=("moa",), compound="moa"))
    assert str(path) in str(info.value) and "'perturbagen'" in str(info.value)


def test_both_spellings_of_a_metadata_column_in_one_file_are_refused(landing: Path) -> None:
    path = landing / "signatures.tsv"
    signatures().assign(Metadata_perturbagen="x").to_csv(path, sep="\t", index=False)
    with pytest.raises(ProfileFileError, match="keep one of them") as info:
        ingest_dataset(landing, spec())
    assert str(path) in str(info.value)


def test_without_dose_and_stratum_dose_is_nan_and_the_stratum_is_the_moa_group(landing: Path) -> None:
    signatures(9).to_csv(landing / "signatures.tsv", sep="\t", index=False)
    profiles = ingest_dataset(landing, spec()).profiles
    assert profiles["dose"].isna().all()
    assert profiles["stratum"].tolist() == [pair_key("MEK inhibitor"), pair_key("MEK inhibitor|RAF inhibitor"), NO_MOA] * 3
    assert profiles["stratum"].tolist()[1] == "mek inhibitor|raf inhibitor"  # unordered, one key per pair


def test_zero_signature_without_controls_is_accepted(landing: Path) -> None:
    signatures().to_csv(landing / "signatures.tsv", sep="\t", index=False)
    profiles = ingest_dataset(landing, spec()).profiles
    assert not profiles["is_control"].any()
    assert "DMSO" not in set(profiles["moa"].dropna())


@pytest.mark.parametrize(("column", "value"), [("perturbagen", "DMSO"), ("perturbagen", "dmso"), ("moa", "Dmso")])
def test_zero_signature_with_dmso_rows_is_refused(landing: Path, column: str, value: str) -> None:
    frame = signatures()
    frame.loc[2, column] = value
    path = landing / "signatures.tsv"
    frame.to_csv(path, sep="\t", index=False)
    with pytest.raises(ProfileFileError) as info:
        ingest_dataset(landing, spec())
    message = str(info.value)
    assert str(path) in message and 'control = "zero_signature"' in message and "control rows" in message


def test_zero_signature_with_marked_control_rows_is_refused(landing: Path) -> None:
    frame = signatures().assign(pert_type=["trt_cp"] * 5 + ["ctl_vehicle"])
    path = landing / "signatures.tsv"
    frame.to_csv(path, sep="\t", index=False)
    marked = spec(metadata_columns=("perturbagen", "moa", "pert_type"), control_column="pert_type",
                  control_values=("ctl_vehicle",))
    with pytest.raises(ProfileFileError, match="control rows") as info:
        ingest_dataset(landing, marked)
    assert str(path) in str(info.value) and "'Metadata_pert_type'" in str(info.value)
    # the same marker matching no row is fine
    frame.assign(pert_type="trt_cp").to_csv(path, sep="\t", index=False)
    assert not ingest_dataset(landing, marked).profiles["is_control"].any()


def test_without_control_option_a_control_column_is_still_required() -> None:
    with pytest.raises(RegistryError, match="zero_signature"):
        spec(control="profiles")
    assert spec(control="profiles", control_column="perturbagen").control == "profiles"


@pytest.mark.parametrize(("changes", "problem"), [
    ({"control": "none"}, "has control 'none'"),
    ({"scaling": "zscore"}, "has scaling 'zscore'"),
    ({"clip_quantiles": (0.01, 0.99)}, 'only scaling = "robust"'),
    ({"scaling": "robust", "clip_quantiles": (0.9, 0.1)}, "0 <= low < high <= 1"),
    ({"metadata_columns": ("Metadata_x",)}, "unprefixed"),
])
def test_bad_values_are_refused(changes: dict, problem: str) -> None:
    with pytest.raises(RegistryError, match=problem.replace("(", r"\(")):
        spec(**changes)


def test_scaling_defaults_and_quantiles() -> None:
    assert spec().scaling == "minmax" and spec().quantiles is None
    assert spec(scaling="robust").quantiles == (0.005, 0.995)
    assert spec(scaling="robust", clip_quantiles=[0.01, 0.99]).quantiles == (0.01, 0.99)


def test_moa_table_may_be_a_path_inside_the_package_data_folder() -> None:
    assert spec(moa_table="real/l1000_consensus_drugbank_moa.tsv", moa_join=("perturbagen", "drugbank_id"),
                moa=None).moa_table_path() == PACKAGE_DATA / "real" / "l1000_consensus_drugbank_moa.tsv"
    for bad in ("../pyproject.toml", "real/../../x.tsv", "/etc/passwd", "real//x.tsv", "real\\x.tsv"):
        with pytest.raises(UnsafePathError):
            spec(moa_table=bad, moa_join=("perturbagen", "id"), moa=None)


def test_moa_table_symlink_out_of_the_package_data_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    import cpvae_assets.ingestion.registry as registry

    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret.tsv").write_text("key\tmoa\n")
    (data / "link.tsv").symlink_to(tmp_path / "secret.tsv")
    monkeypatch.setattr(registry, "PACKAGE_DATA", data)
    with pytest.raises(UnsafePathError, match="outside"):
        spec(moa_table="link.tsv", moa_join=("perturbagen", "key"), moa=None)


def test_landing_dataset_toml_with_the_new_keys(lake: Path) -> None:
    landing = lake / "landing" / "my_signatures"
    landing.mkdir(parents=True)
    (landing / LOCAL_SPEC).write_text('kind = "l1000"\nmetadata_columns = ["perturbagen", "moa"]\n'
                                      'compound = "perturbagen"\nmoa = "moa"\ncontrol = "zero_signature"\n'
                                      'scaling = "robust"\nclip_quantiles = [0.01, 0.99]\n')
    loaded = dataset_spec("my_signatures", landing)
    assert (loaded.compound, loaded.control, loaded.quantiles, loaded.dose, loaded.stratum) == (
        "Metadata_perturbagen", "zero_signature", (0.01, 0.99), None, None)
    (landing / LOCAL_SPEC).write_text('extends = "l1000_consensus"\nscaling = "minmax"\n')
    assert dataset_spec("my_signatures", landing).quantiles is None  # the parent's quantiles go with its scaling
    (landing / LOCAL_SPEC).write_text('extends = "l1000_consensus"\nscaling = "minmax"\nclip_quantiles = [0.1, 0.9]\n')
    with pytest.raises(RegistryError, match="clip_quantiles") as info:
        dataset_spec("my_signatures", landing)
    assert str(landing / LOCAL_SPEC) in str(info.value)
    (landing / LOCAL_SPEC).write_text('extends = "l1000_consensus"\nclip_quantiles = [0.02, 0.98]\n')
    child = dataset_spec("my_signatures", landing)
    assert (child.compound, child.moa_join, child.quantiles) == (
        "Metadata_perturbagen", ("Metadata_perturbagen", "drugbank_id"), (0.02, 0.98))
