"""A corpus of broken profile files, generated from the real Cell Painting plate: each entry writes one
file into a landing folder and names the problem its error message must mention."""

from __future__ import annotations

import gzip
import io
import random
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cpvae_assets_tests.support.real_data import REAL_CP

BASE_ROWS = 40


def base_plate() -> pd.DataFrame:
    """The first rows of the real plate: 26 metadata columns, 454 features."""
    return pd.read_csv(REAL_CP, nrows=BASE_ROWS + 20).iloc[BASE_ROWS:].reset_index(drop=True)


def features(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if not c.startswith("Metadata_")]


def csv_bytes(frame: pd.DataFrame, **kwargs) -> bytes:
    return frame.to_csv(index=False, **kwargs).encode()


def _cell(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


def _gct(frame: pd.DataFrame, extra_rows: int) -> bytes:
    """GCT 1.3 of the plate (features as rows) whose dimension line claims ``extra_rows`` more."""
    feats = features(frame)
    ids = [f"s{i}" for i in range(len(frame))]
    meta = ["Metadata_broad_sample", "Metadata_moa", "Metadata_mmoles_per_liter", "Metadata_Plate"]
    lines = ["#1.3", f"{len(feats) + extra_rows}\t{len(frame)}\t0\t{len(meta)}", "\t".join(["id", *ids])]
    lines += ["\t".join([m.removeprefix("Metadata_"), *frame[m].fillna("").astype(str)]) for m in meta]
    lines += ["\t".join([f, *map(str, frame[f])]) for f in feats]
    return ("\n".join(lines) + "\n").encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _xlsx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@dataclass(frozen=True)
class Bad:
    name: str
    content: Callable[[pd.DataFrame], bytes]
    problem: str  # regex the one-line error must match (besides the file name)


CORPUS: list[Bad] = [
    Bad("empty.csv", lambda f: b"", r"file is empty"),
    Bad("header_only.csv", lambda f: csv_bytes(f.head(0)), r"header but no profiles"),
    Bad("header_only.parquet", lambda f: _parquet(f.head(0)), r"header but no profiles"),
    Bad("truncated.csv.gz", lambda f: gzip.compress(csv_bytes(f), mtime=0)[:3000], r"truncated or corrupt"),
    Bad("truncated.parquet", lambda f: _parquet(f)[:5000], r"not a readable Parquet file"),
    Bad("semicolons.csv", lambda f: csv_bytes(f, sep=";"), r"separated by semicolons"),
    Bad("utf16.csv", lambda f: f.to_csv(index=False).encode("utf-16"), r"UTF-16"),
    Bad("latin1.csv", lambda f: _cell(f, 3, "Metadata_moa", "kinase inhibitor \xe9").to_csv(index=False).encode("latin-1"),
        r"not UTF-8"),
    Bad("excel.csv", lambda f: _xlsx(), r"Excel"),
    Bad("binary.csv", lambda f: random.Random(1).randbytes(2000) + b"\x00" * 10, r"binary file"),
    Bad("gzipped.csv", lambda f: gzip.compress(csv_bytes(f), mtime=0), r"gzip-compressed.*\.csv\.gz"),
    Bad("parquet_named.csv", lambda f: _parquet(f), r"is a Parquet file"),
    Bad("duplicated_rows.csv", lambda f: csv_bytes(pd.concat([f, f.iloc[[2, 5]]], ignore_index=True)),
        r"2 duplicated profile row.*duplicated_rows\.csv:20, duplicated_rows\.csv:21"),
    Bad("long_moa.csv", lambda f: csv_bytes(_cell(f, 7, "Metadata_moa", "inhibitor " * 50)),
        r"MOA annotation longer than 300 characters"),
    Bad("bad_dims.gct", lambda f: _gct(f, extra_rows=5), r"GCT body is 454 x .*header says 459 x"),
    Bad("string_features.parquet", lambda f: _parquet(f.astype({c: str for c in features(f)})),
        r"stored as text, not numbers"),
    Bad("missing_moa_column.csv", lambda f: csv_bytes(f.drop(columns=["Metadata_moa"])),
        r"missing required column.*'Metadata_moa' \(MOA\)"),
    Bad("nan_cells.csv", lambda f: csv_bytes(_cell(_cell(f, 1, features(f)[0], np.nan), 4, features(f)[0], np.nan)),
        r"2 NaN cell"),
    Bad("text_in_feature.csv", lambda f: csv_bytes(_cell(f, 2, features(f)[0], "n/a?")),
        r"non-numeric values \(e\.g\. 'n/a\?'\)"),
    Bad("inf.csv", lambda f: csv_bytes(_cell(f, 2, features(f)[0], np.inf)), r"contains inf"),
    Bad("dose_text.csv", lambda f: csv_bytes(_cell(f, 6, "Metadata_mmoles_per_liter", "ten")),
        r"dose column .* non-numeric values \(e\.g\. 'ten'"),
    Bad("duplicate_columns.csv", lambda f: csv_bytes(f.rename(columns={features(f)[1]: features(f)[0]})),
        r"duplicate column names"),
    Bad("fewer_features.csv", lambda f: csv_bytes(f.drop(columns=features(f)[:3])), r"features differ"),
    Bad("no_features.csv", lambda f: csv_bytes(f.drop(columns=features(f))), r"no feature columns"),
    Bad("ragged.csv", lambda f: csv_bytes(f) + b"1,2,3\n" + b",".join([b"9"] * (f.shape[1] + 3)) + b"\n",
        r"cannot be parsed.*Expected \d+ fields"),
]


def write(bad: Bad, base: pd.DataFrame, folder: Path) -> Path:
    path = folder / bad.name
    path.write_bytes(bad.content(base))
    return path
