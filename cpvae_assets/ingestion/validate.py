"""Turn the files of one landing folder into one validated profile table.

Output columns: the canonical metadata every later stage relies on (``profile_id``, ``compound``,
``moa``, ``dose``, ``stratum``, ``is_control``, ``source_file``), the file's own ``Metadata_*``
columns unchanged (and the unprefixed ones the dataset declares metadata, renamed ``Metadata_<name>``),
then the numeric features. Without a dose column the dose is NaN; without a plate or cell line the
stratum is the MOA group, so splits keep MOA groups balanced. Anything that would silently corrupt a model (text in
a feature, scattered NaN, inf, features that differ between files) is an error naming the file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cpvae_assets.ingestion.landing import IngestError, landing_files, profile_format
from cpvae_assets.ingestion.moa_join import MoaJoin, join_moa, read_moa_table
from cpvae_assets.ingestion.readers import ProfileFileError, read_profiles
from cpvae_assets.ingestion.registry import DatasetSpec
from cpvae_assets.schema import CANONICAL, CONTROL_LABEL, META_PREFIX, NO_MOA, feature_columns, pair_key

MISSING_CODES = ("-666", "-666.0", "na", "NA", "nan", "")
# the longest MOA annotation of the Repurposing Hub has 170 characters; far longer is a pasted note
MAX_MOA_CHARS = 300


@dataclass
class Ingested:
    profiles: pd.DataFrame
    features: list[str]
    feature_info: pd.DataFrame | None
    files: list[str]
    dropped_features: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    moa_join: MoaJoin | None = None  # how the MOA table join went, when the dataset has one


def _numeric_features(path: Path, frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    values = frame[features]
    text = [c for c in features if not pd.api.types.is_numeric_dtype(values[c])]
    if text:
        converted = values[text].apply(pd.to_numeric, errors="coerce")
        original = values[text].replace(list(MISSING_CODES[2:]), np.nan)
        bad = converted.isna() & original.notna()
        if bad.any().any():
            column = bad.any().idxmax()
            example = values.loc[bad[column], column].iloc[0]
            raise ProfileFileError(
                path, f"feature column {column!r} has non-numeric values (e.g. {example!r}); "
                f"{int(bad.any().sum())} column(s) affected (an ID or annotation column without the "
                f"{META_PREFIX} prefix? list it in the dataset's metadata_columns)"
            )
        if profile_format(path) == "parquet":  # a typed format: numbers stored as text mean a broken export
            raise ProfileFileError(path, f"{len(text)} feature column(s) are stored as text, not numbers "
                                   f"(e.g. {text[0]!r}); write the features as numbers")
        values = values.assign(**{c: converted[c] for c in text})
    return values.astype(np.float64)


def _standardise(
    path: Path, frame: pd.DataFrame, spec: DatasetSpec, notes: list[str], dropped: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    missing = [c for c in spec.required_columns if c not in frame.columns]
    if missing:
        roles: dict[str, list[str]] = {}  # one column may play several roles (compound + control marker)
        for column, role in ((spec.compound, "compound id"), (spec.moa, "MOA"), (spec.dose, "dose"),
                             (spec.stratum, "plate / cell line"), (spec.control_column, "control marker"),
                             (spec.moa_join[0] if spec.moa_join else None, "MOA join key")):
            roles.setdefault(column, []).append(role)
        described = ", ".join(f"{c!r} ({' / '.join(roles.get(c, ['required']))})" for c in missing)
        raise ProfileFileError(path, f"missing required column(s) {described} for dataset {spec.name!r}")
    features = feature_columns(frame)
    if not features:
        raise ProfileFileError(path, "no feature columns (every column is metadata)")
    repeated = frame.duplicated(keep="first")
    if repeated.any():
        ids = frame["Metadata_sample_id"] if "Metadata_sample_id" in frame.columns else pd.Series(
            [f"{path.name}:{i}" for i in range(len(frame))], index=frame.index)
        shown = ", ".join(ids[repeated].astype(str).head(5))
        raise ProfileFileError(path, f"{int(repeated.sum())} duplicated profile row(s), identical to an earlier "
                               f"row in metadata and features: {shown}; remove the repeats")
    values = _numeric_features(path, frame, features)
    if np.isinf(values.to_numpy()).any():
        column = values.columns[np.isinf(values.to_numpy()).any(axis=0)][0]
        raise ProfileFileError(path, f"feature column {column!r} contains inf")
    empty = [c for c in features if values[c].isna().all()]
    if empty:
        message = f"{path.name}: dropped {len(empty)} feature column(s) that are entirely NaN: {', '.join(empty[:20])}"
        warnings.warn(message, stacklevel=2)
        notes.append(message)
        dropped.extend(empty)
        values = values.drop(columns=empty)
    holes = values.isna().sum()
    holes = holes[holes > 0]
    if len(holes):
        raise ProfileFileError(
            path,
            f"{int(holes.sum())} NaN cell(s) in {len(holes)} feature column(s) (e.g. {holes.index[0]!r}: "
            f"{int(holes.iloc[0])} rows); cpvae does not impute — fix the file or drop those columns",
        )
    meta = frame[[c for c in frame.columns if str(c).startswith(META_PREFIX)]]
    return pd.concat([meta.reset_index(drop=True), values.reset_index(drop=True)], axis=1), list(values.columns)


def _is_control(column: pd.Series, spec: DatasetSpec) -> pd.Series:
    text = column.astype("string").str.strip()
    marks = set(spec.control_values)
    flag = text.isin(marks - {""}).fillna(False)
    if "" in marks:
        flag |= text.isna() | (text == "")
    return flag.astype(bool)


def _moa_from_table(frame: pd.DataFrame, spec: DatasetSpec, files: list[Path], controls: pd.Series) -> MoaJoin:
    table_path = spec.moa_table_path()
    profile_key, table_key = spec.moa_join
    table = read_moa_table(table_path, table_key, files)
    return join_moa(frame[profile_key], table, table_key, table_path=table_path, profile_files=files,
                    controls=controls, profile_column=profile_key)


def _controls(frame: pd.DataFrame, spec: DatasetSpec, source: pd.Series, compound: pd.Series,
              moa: pd.Series, files: list[Path] | None) -> pd.Series:
    """Which rows are DMSO; with ``control = "zero_signature"`` none may be (the vehicle is the zero vector)."""
    marked = (_is_control(frame[spec.control_column], spec) if spec.control_column
              else pd.Series(False, index=frame.index))
    if spec.control == "profiles":
        return marked
    dmso = CONTROL_LABEL.lower()
    named = compound.str.lower().eq(dmso).fillna(False) | moa.str.lower().eq(dmso).fillna(False)
    _refuse(marked.to_numpy() | named.to_numpy(), source, compound.fillna("<blank>"),
            f'dataset {spec.name!r} declares control = "zero_signature" (z-scored signatures without control rows; '
            f"the vehicle is the zero vector), but the file has control rows (compound or MOA {CONTROL_LABEL!r}"
            + (f", or {spec.control_column!r} in {list(spec.control_values)}" if spec.control_column else "")
            + '); remove them, or declare control = "profiles"', "e.g. compound", files)
    return pd.Series(False, index=frame.index)


def canonical_metadata(frame: pd.DataFrame, spec: DatasetSpec, source: pd.Series,
                       files: list[Path] | None = None) -> tuple[pd.DataFrame, MoaJoin | None]:
    """The canonical columns of every row, and the MOA join's report (None when the MOA is a column)."""
    compound = frame[spec.compound].astype("string").str.strip().replace("", pd.NA)
    own_moa = frame[spec.moa].astype("string").str.strip().replace("", pd.NA) if spec.moa else None
    is_control = _controls(frame, spec, source, compound, own_moa if own_moa is not None
                           else pd.Series(pd.NA, index=frame.index, dtype="string"), files)
    joined = None
    if own_moa is None:
        joined = _moa_from_table(frame, spec, files or sorted(set(source)), is_control)
    moa = (own_moa if own_moa is not None else joined.moa).astype("string").str.strip().replace("", pd.NA)
    moa = moa.mask(is_control, CONTROL_LABEL)
    compound = compound.mask(is_control & compound.isna(), CONTROL_LABEL)
    _refuse(moa.str.len().fillna(0) > MAX_MOA_CHARS, source, compound,
            f"MOA annotation longer than {MAX_MOA_CHARS} characters (a pasted note?)", "for compound", files)
    if spec.dose:
        dose_text = frame[spec.dose].astype("string").str.strip().replace(list(MISSING_CODES), pd.NA)
        dose = pd.to_numeric(dose_text, errors="coerce")
        _refuse(dose.isna() & dose_text.notna(), source, frame[spec.dose],
                f"dose column {spec.dose!r} has non-numeric values", paths=files)
        dose = dose.mask(is_control, 0.0).astype("float64")
    else:
        dose = pd.Series(np.nan, index=frame.index, dtype="float64")
    if spec.stratum:
        stratum = frame[spec.stratum].astype("string").fillna("unknown")
    else:  # no plate, no cell line: the MOA group keeps the splits balanced
        stratum = moa.map(pair_key, na_action="ignore").replace("", pd.NA).fillna(NO_MOA).astype("string")
    if "Metadata_sample_id" in frame.columns:
        profile_id = frame["Metadata_sample_id"].astype(str)
    else:
        profile_id = source.str.cat(frame.groupby(source.values).cumcount().astype(str), sep=":")
    return pd.DataFrame({
        "profile_id": profile_id.values,
        "compound": compound.values,
        "moa": moa.values,
        "dose": dose.values,
        "stratum": stratum.values,
        "is_control": is_control.values,
        "source_file": source.values,
    }), joined


def _refuse(bad: pd.Series, source: pd.Series, shown: pd.Series, problem: str, label: str = "e.g.",
            paths: list[Path] | None = None) -> None:
    """Raise naming the file (its path when ``paths`` holds it) of the first row flagged in ``bad``, and its value."""
    bad = np.asarray(pd.Series(bad).fillna(False), dtype=bool)
    if bad.any():
        first = int(bad.argmax())
        name = source.iloc[first]
        path = next((p for p in paths or [] if p.name == name), name)
        raise ProfileFileError(path, f"{problem} ({label} {str(shown.iloc[first])[:60]!r}; {int(bad.sum())} row(s))")


def ingest_dataset(landing: Path, spec: DatasetSpec) -> Ingested:
    """Load, validate and stack every profile file in ``landing`` for ``spec``."""
    notes: list[str] = []
    dropped: list[str] = []
    frames, feature_info, features, names, paths = [], None, None, [], []
    for path in landing_files(landing):
        raw, info = read_profiles(path, spec.metadata_columns)
        frame, file_features = _standardise(path, raw, spec, notes, dropped)
        if features is None:
            features, feature_info = file_features, info
        elif set(file_features) != set(features):
            extra = sorted(set(file_features) - set(features))[:5]
            lacking = sorted(set(features) - set(file_features))[:5]
            raise IngestError(
                f"{path}: features differ from {names[0]} (extra {extra}, missing {lacking}); "
                "files of one dataset must share their features"
            )
        frames.append(frame)
        names.append(path.name)
        paths.append(path)
    stacked = pd.concat(frames, ignore_index=True)
    source = pd.Series(np.repeat(names, [len(f) for f in frames]), dtype="string")
    meta, joined = canonical_metadata(stacked, spec, source, paths)
    if meta["profile_id"].duplicated().any():
        dup = meta.loc[meta["profile_id"].duplicated(), "profile_id"].iloc[0]
        raise IngestError(f"{landing}: profile id {dup!r} occurs in more than one row")
    metadata_cols = [c for c in stacked.columns if str(c).startswith(META_PREFIX)]
    profiles = pd.concat([meta[list(CANONICAL)], stacked[metadata_cols + features]], axis=1)
    if feature_info is not None:
        feature_info = feature_info[feature_info["feature"].isin(features)].reset_index(drop=True)
    if joined is not None and joined.conflicts:
        notes.append(f"{spec.moa_table}: several different MOAs for {', '.join(map(repr, joined.conflicts))}; "
                     "the first row's is used")
    return Ingested(profiles, features, feature_info, names, sorted(set(dropped)), notes, joined)
