"""Ingest of landing folders: real LINCS plates, every file format, bad inputs, path safety, registry.

pycytominer-style: tiny synthetic profile frames built in the test, written in each format, read
back through ``ingest_dataset``; the real shipped plates are checked against an independent parse.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.ingestion.demo_data import write_gctx
from cpvae_assets.ingestion.landing import IngestError, landing_files
from cpvae_assets.ingestion.readers import ProfileFileError, read_profiles
from cpvae_assets.ingestion.registry import (
    LOCAL_SPEC,
    REGISTRY_FILE,
    DatasetSpec,
    RegistryError,
    dataset_spec,
    load_registry,
)
from cpvae_assets.ingestion.validate import Ingested, ingest_dataset
from cpvae_assets.schema import CONTROL_LABEL, feature_columns
from cpvae_assets.storage.paths import UnsafePathError, check_name, landing_dir
from cpvae_assets_tests.conftest import REAL_CP, REAL_L1000

FEATURES = [
    "Cells_AreaShape_Area",
    "Cells_Intensity_MeanIntensity_DNA",
    "Nuclei_Texture_Variance_RNA_3_0",
    "Cytoplasm_Correlation_Correlation_ER_Mito",
]
META = ["Metadata_broad_sample", "Metadata_moa", "Metadata_mmoles_per_liter", "Metadata_Plate"]
FORMATS = [".csv", ".csv.gz", ".parquet", ".gct", ".gctx"]

SPEC = DatasetSpec(
    name="synthetic_cp",
    kind="cell_painting",
    compound="Metadata_broad_sample",
    moa="Metadata_moa",
    dose="Metadata_mmoles_per_liter",
    stratum="Metadata_Plate",
    control_column="Metadata_broad_sample",
    control_values=("DMSO", ""),
)


# --------------------------------------------------------------------------- synthetic profiles


def cp_frame(n: int = 8, features: list[str] = FEATURES, seed: int = 0) -> pd.DataFrame:
    """A tiny pycytominer level-5 frame: 2 DMSO wells, then compounds; feature values are exact
    multiples of 1/4 so they survive text, float32 (GCTX) and Parquet round trips bit for bit."""
    rng = np.random.default_rng(seed)
    compounds = ["DMSO", "DMSO"] + [f"BRD-K{1000000 + i:07d}-001-01-1" for i in range(n - 2)]
    moas = ["", ""] + [["proteasome inhibitor", "NFkB pathway inhibitor|proteasome inhibitor",
                        "tubulin inhibitor"][i % 3] for i in range(n - 2)]
    doses = ["0", "0"] + [["10", "3.33", "1.11"][i % 3] for i in range(n - 2)]
    frame = pd.DataFrame({
        "Metadata_broad_sample": compounds,
        "Metadata_moa": moas,
        "Metadata_mmoles_per_liter": doses,
        "Metadata_Plate": ["SQ00000001"] * n,
    })
    for name in features:
        frame[name] = rng.integers(-400, 400, size=n) / 4.0
    return frame


def _gct_text(frame: pd.DataFrame, features: list[str]) -> str:
    """A hand-written GCT 1.3: features are rows (with one row-metadata field), samples are columns."""
    meta = [c for c in frame.columns if c.startswith("Metadata_")]
    ids = [f"S{i:03d}" for i in range(len(frame))]
    lines = ["#1.3", f"{len(features)}\t{len(frame)}\t1\t{len(meta)}",
             "\t".join(["id", "feature_group"] + ids)]
    for col in meta:
        cells = ["" if pd.isna(v) else str(v) for v in frame[col]]
        lines.append("\t".join([col.removeprefix("Metadata_"), "na"] + cells))
    for feat in features:
        cells = [v if isinstance(v, str) else "" if pd.isna(v) else repr(float(v)) for v in frame[feat]]
        lines.append("\t".join([feat, feat.split("_")[0]] + cells))
    return "\n".join(lines) + "\n"


def write_profiles(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` (Metadata_* + features) in the format named by ``path``'s suffix."""
    features = feature_columns(frame)
    name = path.name
    if name.endswith(".csv.gz"):
        frame.to_csv(path, index=False, compression="gzip")
    elif name.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    elif name.endswith(".gct"):
        path.write_text(_gct_text(frame, features))
    elif name.endswith(".gctx"):
        samples = pd.DataFrame({"sample_id": [f"S{i:03d}" for i in range(len(frame))]})
        for col in frame.columns:
            if col.startswith("Metadata_"):
                samples[col.removeprefix("Metadata_")] = frame[col].astype(str).to_numpy(dtype=object)
        samples["values"] = list(frame[features].to_numpy(dtype=np.float32))
        genes = pd.DataFrame({"feature": features, "pr_gene_symbol": [f"G{i}" for i in range(len(features))]})
        write_gctx(path, samples, genes)
    else:  # pragma: no cover - test helper misuse
        raise AssertionError(f"no writer for {path}")
    return path


@pytest.fixture
def landing(lake: Path) -> Path:
    path = landing_dir(lake, "synthetic_cp")
    path.mkdir(parents=True)
    return path


def _assert_names(exc: BaseException, path: Path, *fragments: str) -> None:
    """The error message names the file and every fragment of the problem."""
    message = str(exc)
    assert str(path) in message, f"{message!r} does not name {path}"
    for fragment in fragments:
        assert re.search(fragment, message), f"{message!r} lacks {fragment!r}"


# --------------------------------------------------------------------------- 1. real files


def test_real_cell_painting_plate_ingested_unchanged(landing: Path) -> None:
    shutil.copy(REAL_CP, landing)
    result = ingest_dataset(landing, dataset_spec("lincs_cp_plate"))
    profiles = result.profiles

    assert isinstance(result, Ingested)
    assert profiles.shape[0] == 384
    assert len(result.features) == 454
    assert int(profiles["is_control"].sum()) == 24
    assert set(profiles["stratum"]) == {"SQ00015054"}
    assert result.files == [REAL_CP.name]
    assert result.dropped_features == []
    assert result.feature_info is None

    # feature values and metadata are exactly what the file holds
    raw = pd.read_csv(REAL_CP, low_memory=False)
    raw_features = [c for c in raw.columns if not c.startswith("Metadata_")]
    assert result.features == raw_features
    np.testing.assert_array_equal(profiles[raw_features].to_numpy(), raw[raw_features].to_numpy(dtype=float))
    assert profiles["Metadata_broad_sample"].fillna("").tolist() == raw["Metadata_broad_sample"].fillna("").tolist()

    controls = profiles[profiles["is_control"]]
    assert set(controls["moa"]) == {CONTROL_LABEL}
    assert (controls["dose"] == 0.0).all()
    treated = profiles[~profiles["is_control"]]
    assert treated["moa"].notna().any()
    assert treated["moa"].str.contains("|", regex=False).any()


def _independent_gct_parse(path: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Genes x samples values and column metadata read with plain pandas, not cpvae's reader."""
    table = pd.read_csv(path, sep="\t", skiprows=2, header=0, dtype=str, keep_default_na=False)
    with gzip.open(path, "rt") as handle:
        handle.readline()
        n_rows, n_cols, n_rmeta, n_cmeta = map(int, handle.readline().split("\t"))
    samples = table.columns[1 + n_rmeta:]
    assert len(samples) == n_cols
    col_meta = {row["id"]: row[samples].tolist() for _, row in table.iloc[:n_cmeta].iterrows()}
    body = table.iloc[n_cmeta:]
    assert len(body) == n_rows
    values = body.set_index("id")[samples].astype(float).T
    return values, col_meta


def test_real_l1000_plate_ingested_with_moa_join(landing: Path) -> None:
    shutil.copy(REAL_L1000, landing)
    spec = dataset_spec("l1000_ljp005")
    result = ingest_dataset(landing, spec)
    profiles = result.profiles

    assert profiles.shape[0] == 377
    assert len(result.features) == 978
    assert int(profiles["is_control"].sum()) == 26
    assert set(profiles.loc[profiles["is_control"], "moa"]) == {CONTROL_LABEL}
    assert set(profiles["stratum"]) == {"A375"}

    values, col_meta = _independent_gct_parse(REAL_L1000)
    assert profiles["profile_id"].tolist() == list(values.index)
    np.testing.assert_array_equal(profiles[list(values.columns)].to_numpy(), values.to_numpy())
    assert profiles["Metadata_pert_iname"].tolist() == col_meta["pert_iname"]

    # MOA comes from the Repurposing Hub table, joined by pert_iname
    hub = pd.read_csv(spec.moa_table_path(), sep="\t", dtype=str).dropna(subset=["pert_iname"])
    hub = hub.drop_duplicates(subset=["pert_iname"]).set_index("pert_iname")["moa"]
    treated = profiles[~profiles["is_control"]]
    known = treated[treated["Metadata_pert_iname"].isin(hub.index)]
    assert len(known) > 0
    for iname, moa in known[["Metadata_pert_iname", "moa"]].drop_duplicates().itertuples(index=False):
        assert moa == hub[iname], iname
    assert treated.loc[treated["Metadata_pert_iname"] == "trametinib", "moa"].eq("MEK inhibitor").all()
    assert treated["moa"].dropna().str.contains("|", regex=False).any()
    # names the hub does not know stay unlabelled, they are not invented
    unknown = treated[~treated["Metadata_pert_iname"].isin(hub.index)]
    assert len(unknown) > 0 and unknown["moa"].isna().all()
    # -666 (cmap's "not applicable") is the DMSO dose; controls get 0, treated keep their real dose
    assert (profiles.loc[profiles["is_control"], "dose"] == 0.0).all()
    assert treated["dose"].notna().all() and (treated["dose"] > 0).all()

    info = result.feature_info
    assert info is not None and len(info) == 978
    assert "pr_gene_symbol" in info.columns
    assert info["feature"].tolist() == result.features


# --------------------------------------------------------------------------- 2. formats


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_format_reads_back_the_same_profiles(landing: Path, suffix: str) -> None:
    frame = cp_frame()
    write_profiles(frame, landing / f"plate{suffix}")
    result = ingest_dataset(landing, SPEC)
    profiles = result.profiles

    assert result.features == FEATURES
    assert profiles[FEATURES].dtypes.eq(np.float64).all()
    np.testing.assert_array_equal(profiles[FEATURES].to_numpy(), frame[FEATURES].to_numpy())
    assert profiles["compound"].tolist() == frame["Metadata_broad_sample"].tolist()
    assert profiles["is_control"].tolist() == [True, True] + [False] * 6
    assert profiles["moa"].tolist() == [CONTROL_LABEL] * 2 + frame["Metadata_moa"].tolist()[2:]
    assert profiles["dose"].tolist() == [0.0, 0.0] + [float(d) for d in frame["Metadata_mmoles_per_liter"][2:]]
    assert set(profiles["stratum"]) == {"SQ00000001"}
    assert profiles["source_file"].eq(f"plate{suffix}").all()
    assert profiles["profile_id"].is_unique
    if suffix in (".gct", ".gctx"):
        assert result.feature_info is not None
        assert result.feature_info["feature"].tolist() == FEATURES
        assert profiles["profile_id"].tolist() == [f"S{i:03d}" for i in range(len(frame))]
    else:
        assert result.feature_info is None


def test_files_of_one_dataset_are_stacked_across_formats(landing: Path) -> None:
    first, second = cp_frame(seed=1), cp_frame(seed=2)
    write_profiles(first, landing / "a.csv")
    write_profiles(second[["Metadata_Plate"] + META[:3] + FEATURES[::-1]], landing / "b.parquet")
    (landing / "README.txt").write_text("not a profile file")
    (landing / ".hidden.csv").write_text("ignored")
    (landing / "c.csv.part").write_text("download in progress")

    result = ingest_dataset(landing, SPEC)
    assert result.files == ["a.csv", "b.parquet"]
    assert len(result.profiles) == 16
    expected = np.vstack([first[FEATURES].to_numpy(), second[FEATURES].to_numpy()])
    np.testing.assert_array_equal(result.profiles[result.features].to_numpy(), expected)
    assert result.profiles["source_file"].tolist() == ["a.csv"] * 8 + ["b.parquet"] * 8


# --------------------------------------------------------------------------- 3. bad inputs


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
    return _gct_text(frame, FEATURES).splitlines()


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


# --------------------------------------------------------------------------- 4. path safety


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


# --------------------------------------------------------------------------- 5. registry


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


# --------------------------------------------------------------------------- 6. DMSO marking


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
