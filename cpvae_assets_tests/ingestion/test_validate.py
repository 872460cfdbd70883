"""Bad profile files are errors naming the file and the problem (empty, truncated, missing columns, text,
NaN, inf, duplicates, malformed GCT, mismatched features, empty folders), and DMSO controls are marked
from empty or listed control cells."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.ingestion.landing import IngestError, landing_files
from cpvae_assets.ingestion.readers import ProfileFileError, read_profiles
from cpvae_assets.ingestion.registry import DatasetSpec
from cpvae_assets.ingestion.validate import ingest_dataset
from cpvae_assets.schema import CONTROL_LABEL
from cpvae_assets.storage.paths import landing_dir
from cpvae_assets_tests.support.profiles import (
    FEATURES,
    FORMATS,
    META,
    SPEC,
    cp_frame,
    gct_text,
    write_profiles,
)
from cpvae_assets_tests.support.profiles import (
    assert_names as _assert_names,
)

# --------------------------------------------------------------------------- bad inputs


def _write_empty(landing: Path, suffix: str) -> Path:
    path = landing / f"empty{suffix}"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("suffix", FORMATS)
def test_empty_file_is_an_error_naming_it(landing: Path, suffix: str) -> None:
    path = _write_empty(landing, suffix)
    with pytest.raises(ProfileFileError) as info:
        ingest_dataset(landing, SPEC)
    _assert_names(info.value, path, "empty")
    assert info.value.path == str(path)


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("suffix", "problem"),
    [
        (".csv.gz", "truncated or corrupt compressed file"),
        (".parquet", "not a readable Parquet file"),
        (".gctx", "not a readable GCTX file"),
    ],
)
def test_truncated_binary_file_is_an_error_naming_it(landing: Path, suffix: str, problem: str) -> None:
    path = _truncate(write_profiles(cp_frame(n=200), landing / f"plate{suffix}"))
    with pytest.raises(ProfileFileError) as info:
        ingest_dataset(landing, SPEC)
    _assert_names(info.value, path, re.escape(problem))


def _no_features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[META]


def _drop(column: str):
    return lambda frame: frame.drop(columns=column)


def _set_cells(column: str, rows: list[int], value):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if isinstance(value, str):  # a text column (as Parquet stores it): numbers as text plus the bad cell
            frame[column] = [repr(v) for v in frame[column]]
        frame.loc[rows, column] = value
        return frame
    return change


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".gct"])
@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        pytest.param(_no_features, [r"no feature columns"], id="no-features"),
        pytest.param(_drop("Metadata_broad_sample"),
                     [r"missing required column", r"'Metadata_broad_sample'", r"compound id", "synthetic_cp"],
                     id="missing-compound"),
        pytest.param(_drop("Metadata_moa"), [r"missing required column", r"'Metadata_moa' \(MOA\)"],
                     id="missing-moa"),
        pytest.param(_drop("Metadata_mmoles_per_liter"),
                     [r"missing required column", r"'Metadata_mmoles_per_liter' \(dose\)"], id="missing-dose"),
        pytest.param(_set_cells("Cells_AreaShape_Area", [3], "12,5 px"),
                     [r"feature column 'Cells_AreaShape_Area' has non-numeric values", r"'12,5 px'"],
                     id="text-in-feature"),
        pytest.param(_set_cells("Nuclei_Texture_Variance_RNA_3_0", [1, 4], np.nan),
                     [r"2 NaN cell\(s\)", r"'Nuclei_Texture_Variance_RNA_3_0'", r"does not impute"],
                     id="scattered-nan"),
        pytest.param(_set_cells("Cells_Intensity_MeanIntensity_DNA", [5], np.inf),
                     [r"feature column 'Cells_Intensity_MeanIntensity_DNA' contains inf"], id="inf"),
        pytest.param(_set_cells("Cells_Intensity_MeanIntensity_DNA", [0], -np.inf),
                     [r"feature column 'Cells_Intensity_MeanIntensity_DNA' contains inf"], id="minus-inf"),
    ],
)
def test_bad_profiles_are_errors_naming_file_and_problem(landing: Path, suffix: str, change, fragments) -> None:
    path = write_profiles(change(cp_frame()), landing / f"plate{suffix}")
    with pytest.raises(ProfileFileError) as info:
        ingest_dataset(landing, SPEC)
    _assert_names(info.value, path, *fragments)


def _duplicate_csv(path: Path) -> Path:
    frame = cp_frame()
    frame.insert(5, "Cells_AreaShape_Area_dup", frame["Cells_AreaShape_Area"] + 1)
    text = frame.to_csv(index=False).replace("Cells_AreaShape_Area_dup", "Cells_AreaShape_Area", 1)
    path.write_text(text)
    return path


def _duplicate_parquet(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = cp_frame()
    arrays = [pa.array(frame[c]) for c in frame.columns] + [pa.array(frame["Cells_AreaShape_Area"] + 1)]
    try:
        table = pa.Table.from_arrays(arrays, names=list(frame.columns) + ["Cells_AreaShape_Area"])
        pq.write_table(table, path)
    except (pa.ArrowException, ValueError) as exc:  # explicit, not silent: this pyarrow refuses duplicates
        pytest.skip(f"pyarrow {pa.__version__} cannot write duplicate column names, nothing to read: {exc}")
    return path


@pytest.mark.parametrize(("filename", "writer"), [("plate.csv", _duplicate_csv), ("plate.parquet", _duplicate_parquet)])
def test_duplicate_column_names_are_an_error(landing: Path, filename: str, writer) -> None:
    path = writer(landing / filename)
    with pytest.raises(ProfileFileError) as info:
        ingest_dataset(landing, SPEC)
    _assert_names(info.value, path, r"duplicate column names: Cells_AreaShape_Area\b")


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".gct"])
def test_all_nan_feature_is_dropped_with_a_warning(landing: Path, suffix: str) -> None:
    frame = cp_frame()
    frame["Cells_Granularity_16_DNA"] = np.nan
    write_profiles(frame, landing / f"plate{suffix}")
    with pytest.warns(UserWarning, match=r"plate.*entirely NaN.*Cells_Granularity_16_DNA"):
        result = ingest_dataset(landing, SPEC)
    assert result.dropped_features == ["Cells_Granularity_16_DNA"]
    assert result.features == FEATURES
    assert "Cells_Granularity_16_DNA" not in result.profiles.columns
    assert any("Cells_Granularity_16_DNA" in note for note in result.notes)
    np.testing.assert_array_equal(result.profiles[FEATURES].to_numpy(), frame[FEATURES].to_numpy())


def _gct_lines(frame: pd.DataFrame | None = None) -> list[str]:
    frame = cp_frame() if frame is None else frame
    return gct_text(frame, FEATURES).splitlines()


def _gct_first_line(first: str):
    return lambda lines: [first] + lines[1:]


def _gct_dims(dims: str):
    return lambda lines: lines[:1] + [dims] + lines[2:]


N_HEADER = 3 + len(META)  # version, dims, header, col-meta lines


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        pytest.param(_gct_first_line("#1.2x"), [r"bad GCT header", r"first line is '#1\.2x'"], id="version-1.2x"),
        pytest.param(_gct_first_line("\x00\x01garbage"), [r"bad GCT header", r"first line"], id="garbage"),
        pytest.param(_gct_first_line("id\tname"), [r"bad GCT header", r"expected '#1\.3'"], id="no-version"),
        pytest.param(_gct_dims("4\tmany\t1\t4"), [r"dimension line", r"not 4 integers"], id="dims-text"),
        pytest.param(_gct_dims("4\t8"), [r"dimension line", r"not 4 integers"], id="dims-short"),
        pytest.param(_gct_dims("4.0\t8\t1\t4"), [r"dimension line", r"not 4 integers"], id="dims-float"),
        pytest.param(_gct_dims("-4\t8\t1\t4"), [r"dimension line", r"not 4 integers"], id="dims-negative"),
        pytest.param(_gct_dims("4\t9\t1\t4"), [r"header fields", r"expected 1 \+ 1 \+ 9"], id="dims-wrong-cols"),
        pytest.param(lambda lines: lines[:-2], [r"GCT body is 2 x 10", r"header says 4 x 10", r"truncated"],
                     id="body-truncated"),
        pytest.param(lambda lines: lines[:N_HEADER], [r"GCT body is 0 x", r"header says 4 x 10", r"truncated"],
                     id="body-missing"),
        pytest.param(lambda lines: lines[:N_HEADER - 2], [r"column-metadata line"], id="col-meta-truncated"),
    ],
)
def test_malformed_gct_is_an_error_naming_file(landing: Path, edit, fragments) -> None:
    path = landing / "plate.gct"
    path.write_text("\n".join(edit(_gct_lines())) + "\n")
    with pytest.raises(ProfileFileError) as info:
        ingest_dataset(landing, SPEC)
    _assert_names(info.value, path, *fragments)


@pytest.mark.parametrize("second_suffix", [".csv", ".parquet", ".gct"])
def test_files_with_different_features_are_refused_naming_the_second(landing: Path, second_suffix: str) -> None:
    write_profiles(cp_frame(), landing / "a_first.csv")
    other = cp_frame(features=FEATURES[:3] + ["Cells_Neighbors_NumberOfNeighbors_1"])
    second = write_profiles(other, landing / f"b_second{second_suffix}")
    with pytest.raises(IngestError) as info:
        ingest_dataset(landing, SPEC)
    _assert_names(info.value, second, r"features differ from a_first\.csv",
                  r"Cells_Neighbors_NumberOfNeighbors_1", r"Cytoplasm_Correlation_Correlation_ER_Mito")


def test_empty_landing_folder_is_an_error(landing: Path) -> None:
    with pytest.raises(IngestError, match=rf"^{re.escape(str(landing))}: no profile files"):
        ingest_dataset(landing, SPEC)


def test_landing_folder_with_only_non_profile_files_is_an_error(landing: Path) -> None:
    (landing / "notes.txt").write_text("hello")
    (landing / ".plate.csv").write_text("hidden")
    (landing / "plate.csv.part").write_text("partial download")
    with pytest.raises(IngestError, match=rf"^{re.escape(str(landing))}: no profile files"):
        landing_files(landing)


def test_missing_landing_folder_is_an_error(lake: Path) -> None:
    missing = landing_dir(lake, "never_landed")
    with pytest.raises(IngestError, match=rf"^{re.escape(str(missing))}: landing folder does not exist"):
        ingest_dataset(missing, SPEC)


def test_unsupported_suffix_is_refused_by_reader(tmp_path: Path) -> None:
    path = tmp_path / "plate.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(ProfileFileError) as info:
        read_profiles(path)
    _assert_names(info.value, path, r"unsupported file type")


def test_header_only_csv_is_an_error(landing: Path) -> None:
    path = landing / "plate.csv"
    path.write_text(",".join(META + FEATURES) + "\n")
    with pytest.raises(ProfileFileError) as info:
        ingest_dataset(landing, SPEC)
    _assert_names(info.value, path, r"header but no profiles")


def test_duplicate_profile_ids_across_files_are_refused(landing: Path) -> None:
    write_profiles(cp_frame(seed=1), landing / "a.gct")
    write_profiles(cp_frame(seed=2), landing / "b.gct")  # same sample ids S000..S007
    with pytest.raises(IngestError, match=r"profile id 'S000' occurs in more than one row"):
        ingest_dataset(landing, SPEC)


# --------------------------------------------------------------------------- DMSO marking


def _dmso_frame() -> pd.DataFrame:
    frame = cp_frame(n=7)
    frame["Metadata_broad_sample"] = ["DMSO", "", None, " DMSO ", "BRD-K1", "BRD-K2", "BRD-K3"]
    frame["Metadata_moa"] = ["", None, "", "whatever", "HDAC inhibitor", "", "A|B"]
    frame["Metadata_mmoles_per_liter"] = ["-666", "-666", "5", "10", "-666", "2.5", "na"]
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".gct"])
def test_dmso_marking_with_empty_control_cells(landing: Path, suffix: str) -> None:
    write_profiles(_dmso_frame(), landing / f"plate{suffix}")
    profiles = ingest_dataset(landing, SPEC).profiles

    assert profiles["is_control"].tolist() == [True, True, True, True, False, False, False]
    controls = profiles[profiles["is_control"]]
    assert controls["moa"].tolist() == [CONTROL_LABEL] * 4
    assert controls["compound"].tolist() == ["DMSO"] * 4
    assert controls["dose"].tolist() == [0.0] * 4

    treated = profiles[~profiles["is_control"]]
    assert treated["compound"].tolist() == ["BRD-K1", "BRD-K2", "BRD-K3"]
    assert treated["moa"].iloc[0] == "HDAC inhibitor"
    assert pd.isna(treated["moa"].iloc[1])
    assert treated["moa"].iloc[2] == "A|B"
    doses = treated["dose"].tolist()
    assert math.isnan(doses[0]) and doses[1] == 2.5 and math.isnan(doses[2])
    assert profiles["dose"].dtype == np.float64


def test_numeric_dose_column_with_missing_code(landing: Path) -> None:
    frame = _dmso_frame()
    frame["Metadata_mmoles_per_liter"] = [-666.0, 0.0, 5.0, 1.0, -666.0, 2.5, 10.0]
    write_profiles(frame, landing / "plate.parquet")
    profiles = ingest_dataset(landing, SPEC).profiles
    assert profiles["dose"].iloc[:4].tolist() == [0.0] * 4
    assert math.isnan(profiles["dose"].iloc[4])
    assert profiles["dose"].iloc[5:].tolist() == [2.5, 10.0]


def test_empty_control_cells_are_not_controls_unless_listed(landing: Path) -> None:
    write_profiles(_dmso_frame(), landing / "plate.csv")
    strict = DatasetSpec(**{**SPEC.__dict__, "control_values": ("DMSO",)})
    profiles = ingest_dataset(landing, strict).profiles
    assert profiles["is_control"].tolist() == [True, False, False, True, False, False, False]
    assert pd.isna(profiles["compound"].iloc[1]) and pd.isna(profiles["compound"].iloc[2])
