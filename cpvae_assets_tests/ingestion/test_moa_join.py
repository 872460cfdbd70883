"""The MOA table join: names match without regard to case, spaces or hyphens, Broad IDs by their first
13 characters; counts and the unmatched sample are reported; a table without its key column, or whose
key matches no profile, is an error naming the profile files and the table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cpvae_assets.ingestion.landing import IngestError
from cpvae_assets.ingestion.moa_join import join_key, join_moa, read_moa_table
from cpvae_assets.ingestion.registry import DatasetSpec
from cpvae_assets.ingestion.validate import ingest_dataset
from cpvae_assets_tests.support.profiles import FEATURES


def _table(tmp_path: Path, rows: list[tuple[str, str]], key: str = "pert_iname") -> Path:
    path = tmp_path / "moa.tsv"
    pd.DataFrame(rows, columns=[key, "moa"]).to_csv(path, sep="\t", index=False)
    return path


def _join(values: list[str], table: Path, key: str = "pert_iname", controls: list[bool] | None = None):
    frame = read_moa_table(table, key, ["plate.csv"])
    return join_moa(pd.Series(values, name="Metadata_x"), frame, key, table_path=table, profile_files=["plate.csv"],
                    controls=pd.Series(controls) if controls else None)


@pytest.mark.parametrize(("value", "key"), [
    ("AZD-8330", "azd8330"), (" Withaferin A ", "withaferina"), ("PD-0325901", "pd0325901"),
    ("BRD-K12345678", "BRD-K12345678"), ("BRD-K12345678-001-01-1", "BRD-K12345678"),
    ("brd-k12345678-003-05-9", "BRD-K12345678"), ("DB00014", "db00014"), ("", None), (None, None),
    (float("nan"), None), ("BRD-K1234", "brdk1234"),  # too short for a Broad ID: compared as a name
])
def test_join_key(value: object, key: str | None) -> None:
    assert join_key(value) == key


def test_names_match_without_case_spaces_or_hyphens(tmp_path: Path) -> None:
    table = _table(tmp_path, [("azd8330", "MEK inhibitor"), ("withaferin a", "NFkB pathway inhibitor"),
                              ("cyt387", "JAK inhibitor"), ("unused", "x")])
    joined = _join(["AZD-8330", "Withaferin-A", "CYT387", "CYT 387", "mystery-1", "DMSO"], table,
                   controls=[False] * 5 + [True])
    assert joined.moa.tolist()[:4] == ["MEK inhibitor", "NFkB pathway inhibitor", "JAK inhibitor", "JAK inhibitor"]
    assert joined.moa.isna().tolist()[4:] == [True, True]  # unknown, and the control (not joined)
    assert (joined.profiles, joined.in_table, joined.matched) == (5, 4, 4)
    assert joined.unmatched == ["mystery-1"]
    assert "4 of 5 profiles have an MOA" in joined.summary() and "'mystery-1'" in joined.summary()


def test_broad_ids_match_on_their_first_13_characters(tmp_path: Path) -> None:
    table = _table(tmp_path, [("BRD-K12345678-001-01-1", "HDAC inhibitor"),
                              ("BRD-K12345678-003-02-7", "HDAC inhibitor"),  # another salt / batch
                              ("BRD-A87654321-001-01-1", "EGFR inhibitor|HDAC inhibitor")], key="broad_id")
    joined = _join(["BRD-K12345678", "BRD-A87654321", "BRD-K00000000"], table, key="broad_id")
    assert joined.moa.tolist()[:2] == ["HDAC inhibitor", "EGFR inhibitor|HDAC inhibitor"]
    assert (joined.in_table, joined.matched, joined.unmatched) == (2, 2, ["BRD-K00000000"])
    assert joined.conflicts == []


def test_blank_moas_do_not_count_and_conflicts_are_reported(tmp_path: Path) -> None:
    table = _table(tmp_path, [("Drug-A", ""), ("druga", "MEK inhibitor"), ("drug a", "RAF inhibitor"),
                              ("drug-b", "")])
    joined = _join(["DRUG-A", "DRUG-B"], table)
    assert joined.moa.tolist()[0] == "MEK inhibitor"  # the first non-blank annotation
    assert pd.isna(joined.moa.iloc[1])
    assert (joined.in_table, joined.matched) == (2, 1)  # drug-b is in the table, without an MOA
    assert joined.conflicts == ["druga"]


def test_unmatched_sample_holds_at_most_ten_distinct_values(tmp_path: Path) -> None:
    table = _table(tmp_path, [("known", "x")])
    joined = _join(["known"] + [f"unknown-{i % 15}" for i in range(40)], table)
    assert (joined.profiles, joined.matched) == (41, 1)
    assert joined.unmatched == [f"unknown-{i}" for i in range(10)]


# --------------------------------------------------------------------------- bad input, through ingestion


def _spec(table: str, key: str) -> DatasetSpec:
    return DatasetSpec(name="joined", kind="l1000", compound="Metadata_name", moa_table=table,
                       moa_join=("Metadata_name", key), control="zero_signature")


@pytest.fixture
def profiles_file(landing: Path) -> Path:
    frame = pd.DataFrame({"Metadata_name": ["AZD-8330", "CYT387", "other"],
                          **{f: [0.5, 1.5, 2.5] for f in FEATURES}})
    path = landing / "signatures.tsv"
    frame.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def package_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A package data folder of the test's own, so MOA tables can be written under it."""
    import cpvae_assets.ingestion.registry as registry

    data = tmp_path / "package_data"
    (data / "real").mkdir(parents=True)
    monkeypatch.setattr(registry, "PACKAGE_DATA", data)

    def write(rows: list[tuple[str, str]], columns: tuple[str, str] = ("pert_iname", "moa")) -> Path:
        path = data / "real" / "moa.tsv"
        pd.DataFrame(rows, columns=list(columns)).to_csv(path, sep="\t", index=False)
        return path

    return write


def test_ingested_join_counts(landing: Path, profiles_file: Path, package_table) -> None:
    package_table([("azd8330", "MEK inhibitor"), ("cyt387", "JAK inhibitor")])
    result = ingest_dataset(landing, _spec("real/moa.tsv", "pert_iname"))
    assert result.profiles["moa"].tolist()[:2] == ["MEK inhibitor", "JAK inhibitor"]
    assert (result.moa_join.profiles, result.moa_join.matched, result.moa_join.unmatched) == (3, 2, ["other"])


def test_table_without_its_key_column_names_both_files(landing: Path, profiles_file: Path, package_table) -> None:
    table = package_table([("azd8330", "MEK inhibitor")], columns=("name", "moa"))
    with pytest.raises(IngestError) as info:
        ingest_dataset(landing, _spec("real/moa.tsv", "pert_iname"))
    message = str(info.value)
    assert str(table) in message and str(profiles_file) in message
    assert "'pert_iname'" in message and "lacks column" in message


def test_key_matching_no_profile_names_both_files(landing: Path, profiles_file: Path, package_table) -> None:
    table = package_table([("BRD-K00000001-001-01-1", "MEK inhibitor")])
    with pytest.raises(IngestError) as info:
        ingest_dataset(landing, _spec("real/moa.tsv", "pert_iname"))
    message = str(info.value)
    assert str(table) in message and str(profiles_file) in message
    assert "no profile" in message and "'AZD-8330'" in message and "moa_join" in message
