"""Read profile files in the formats LINCS publishes: pycytominer CSV(.gz)/Parquet, GCT 1.3, GCTX.

Every reader returns samples as rows, ``Metadata_*`` columns first, then one column per feature, so
Cell Painting and L1000 look the same from here on. Errors name the file and the problem.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from cpvae_assets.ingestion.landing import SUFFIXES, profile_format
from cpvae_assets.schema import META_PREFIX


class ProfileFileError(ValueError):
    """A profile file that cannot be read as profiles; the message names the file."""

    def __init__(self, path: Path | str, problem: str):
        problem = " ".join(str(problem).split())  # one line: it is the first line the UI shows
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


# what a file that is not delimited text really is, by its first bytes
_MAGIC = (
    (b"\xff\xfe", "is UTF-16 text; save it as UTF-8 (e.g. 'CSV UTF-8' in Excel)"),
    (b"\xfe\xff", "is UTF-16 text; save it as UTF-8 (e.g. 'CSV UTF-8' in Excel)"),
    (b"PK\x03\x04", "is a ZIP or Excel (.xlsx) file, not text; export it as CSV"),
    (b"\xd0\xcf\x11\xe0", "is an Excel (.xls) file, not text; export it as CSV"),
    (b"PAR1", "is a Parquet file; name it .parquet"),
    (b"\x89HDF", "is an HDF5 (GCTX?) file; name it .gctx"),
    (b"\x1f\x8b", "is gzip-compressed; name it .csv.gz (or .tsv.gz, .gct.gz)"),
)
_DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _check_text(path: Path, nul: bool = True) -> None:
    """Refuse, by its first bytes, a file that is not UTF-8 text (UTF-16, Excel, binary, ...)."""
    with _open_binary(path) as handle:
        head = handle.read(4096)
    for magic, problem in _MAGIC:
        if head.startswith(magic):
            raise ProfileFileError(path, problem)
    if nul and b"\x00" in head:
        raise ProfileFileError(path, "is a binary file, not text (NUL bytes near the start)")


def _open_text(path: Path) -> io.TextIOBase:
    # utf-8-sig: a byte-order mark (Excel's 'CSV UTF-8') is accepted and stripped
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig")


def _check_duplicates(path: Path, names: list[str], what: str = "column") -> None:
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ProfileFileError(path, f"duplicate {what} names: {', '.join(dupes[:10])}")


def _read_delimited(path: Path, sep: str, metadata_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    _check_text(path)
    with _open_text(path) as handle:
        line = handle.readline()
    header = next(csv.reader([line], delimiter=sep), [])
    if not header or header == [""]:
        raise ProfileFileError(path, "no header line (empty file?)")
    if len(header) == 1:
        other = max((d for d in _DELIMITERS if d != sep), key=line.count)
        if line.count(other):
            raise ProfileFileError(path, f"the header is a single column; the file seems separated by "
                                   f"{_DELIMITERS[other]}s ({other!r}), expected {_DELIMITERS[sep]}s ({sep!r})")
    _check_duplicates(path, header)
    meta = {c: str for c in header if c.startswith(META_PREFIX) or c in metadata_columns}
    with _open_text(path) as handle:
        return pd.read_csv(handle, sep=sep, dtype=meta, keep_default_na=True, low_memory=False)


def _gct_cells(line: str) -> list[str]:
    return line.rstrip("\r\n").split("\t")


def read_gct(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GCT 1.3 (and 1.2) text: genes are rows there; returned transposed, samples as rows."""
    _check_text(path, nul=False)  # a GCT first line that is not "#1.3" is reported as such
    with _open_text(path) as handle:
        version = handle.readline().strip()
        if version not in ("#1.3", "#1.2"):
            raise ProfileFileError(path, f"bad GCT header: first line is {version[:40]!r}, expected '#1.3'")
        dims = _gct_cells(handle.readline())
        want = 4 if version == "#1.3" else 2
        try:
            numbers = [int(x) for x in dims[:want]]
        except ValueError:
            numbers = []
        if len(numbers) != want or any(n < 0 for n in numbers):
            raise ProfileFileError(path, f"bad GCT header: dimension line {dims!r} is not {want} integers")
        n_rows, n_cols = numbers[:2]
        n_rmeta, n_cmeta = numbers[2:] if version == "#1.3" else (1, 0)
        header = _gct_cells(handle.readline())
        if len(header) != 1 + n_rmeta + n_cols:
            raise ProfileFileError(
                path,
                f"bad GCT header: {len(header)} header fields, expected 1 + {n_rmeta} + {n_cols}",
            )
        cids = header[1 + n_rmeta :]
        _check_duplicates(path, cids, "sample id")
        col_meta = {}
        for _ in range(n_cmeta):
            cells = _gct_cells(handle.readline())
            if len(cells) != len(header):
                raise ProfileFileError(path, f"GCT column-metadata line {cells[0]!r} has {len(cells)} fields")
            col_meta[cells[0]] = cells[1 + n_rmeta :]
        try:
            body = pd.read_csv(handle, sep="\t", header=None, dtype=str, keep_default_na=False)
        except pd.errors.EmptyDataError:  # no data lines at all: a header-only (0-row) or cut-off file
            body = pd.DataFrame(columns=range(len(header)), dtype=str)
    if body.shape != (n_rows, len(header)):
        raise ProfileFileError(
            path, f"GCT body is {body.shape[0]} x {body.shape[1]}, header says {n_rows} x {len(header)} (truncated?)"
        )
    rids = body.iloc[:, 0].tolist()
    _check_duplicates(path, rids, "feature id")
    row_meta = body.iloc[:, : 1 + n_rmeta].copy()
    row_meta.columns = ["feature"] + header[1 : 1 + n_rmeta]
    values = body.iloc[:, 1 + n_rmeta :].T
    values.columns = rids
    values = values.replace({"": np.nan, "NaN": np.nan, "nan": np.nan, "na": np.nan})
    samples = pd.DataFrame({f"{META_PREFIX}{k}": v for k, v in col_meta.items()}, index=values.index)
    samples.insert(0, f"{META_PREFIX}sample_id", cids)
    frame = pd.concat([samples.reset_index(drop=True), values.reset_index(drop=True)], axis=1)
    return frame, row_meta


def _decode(values: np.ndarray) -> list:
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


def read_gctx(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GCTX (HDF5, cmapPy layout): ``/0/DATA/0/matrix`` is samples x genes."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            matrix = h5["0/DATA/0/matrix"][...]
            rids = _decode(h5["0/META/ROW/id"][...])
            cids = _decode(h5["0/META/COL/id"][...])
            col_meta = {k: _decode(h5[f"0/META/COL/{k}"][...]) for k in h5["0/META/COL"] if k != "id"}
            row_meta = {k: _decode(h5[f"0/META/ROW/{k}"][...]) for k in h5["0/META/ROW"] if k != "id"}
    except (OSError, KeyError) as exc:
        raise ProfileFileError(path, f"not a readable GCTX file ({exc})") from exc
    if matrix.shape != (len(cids), len(rids)):
        raise ProfileFileError(path, f"GCTX matrix is {matrix.shape}, ids say {(len(cids), len(rids))}")
    _check_duplicates(path, [str(r) for r in rids], "feature id")
    _check_duplicates(path, [str(c) for c in cids], "sample id")
    samples = pd.DataFrame({f"{META_PREFIX}{k}": v for k, v in col_meta.items()})
    samples.insert(0, f"{META_PREFIX}sample_id", [str(c) for c in cids])
    values = pd.DataFrame(np.asarray(matrix, dtype=np.float64), columns=[str(r) for r in rids])
    return pd.concat([samples, values], axis=1), pd.DataFrame({"feature": [str(r) for r in rids], **row_meta})


def _prefix_metadata(path: Path, frame: pd.DataFrame, metadata_columns: tuple[str, ...]) -> pd.DataFrame:
    """Rename the unprefixed metadata columns a dataset declares to ``Metadata_<name>``, so that every
    other column is a feature."""
    clash = [c for c in metadata_columns if c in frame.columns and f"{META_PREFIX}{c}" in frame.columns]
    if clash:
        raise ProfileFileError(path, f"has both {clash[0]!r} and {META_PREFIX}{clash[0]!r}; the dataset declares "
                               f"{clash[0]!r} a metadata column, which is renamed to the second: keep one of them")
    return frame.rename(columns={c: f"{META_PREFIX}{c}" for c in metadata_columns if c in frame.columns})


def read_profiles(path: Path, metadata_columns: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Read one profile file; returns (samples x columns, per-feature annotation or None). Columns named
    in ``metadata_columns`` are read as text and renamed ``Metadata_<name>``."""
    fmt = profile_format(path)
    if fmt is None:
        raise ProfileFileError(path, f"unsupported file type; expected one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise ProfileFileError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise ProfileFileError(path, "file is empty")
    try:
        if fmt in ("csv", "tsv"):
            frame, features = _read_delimited(path, "," if fmt == "csv" else "\t", metadata_columns), None
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _check_duplicates(path, names)
            frame, features = pq.read_table(path).to_pandas(), None
        elif fmt == "gct":
            frame, features = read_gct(path)
        else:
            frame, features = read_gctx(path)
    except ProfileFileError:
        raise
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ProfileFileError(path, f"truncated or corrupt compressed file ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise ProfileFileError(path, "file has no rows or columns") from exc
    except UnicodeDecodeError as exc:
        raise ProfileFileError(path, f"is not UTF-8 text (found byte {exc.object[exc.start:exc.start + 1]!r}); "
                               "save it as UTF-8") from exc
    except (pd.errors.ParserError, OSError) as exc:
        raise ProfileFileError(path, f"cannot be parsed ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # pyarrow raises its own hierarchy for corrupt Parquet
        if type(exc).__module__.startswith("pyarrow"):
            raise ProfileFileError(path, f"not a readable Parquet file ({exc})") from exc
        raise
    if frame.shape[0] == 0:
        raise ProfileFileError(path, "file has a header but no profiles")
    return numeric_metadata(_prefix_metadata(path, frame, metadata_columns)), features


_MISSING_TEXT = ("", "nan", "NaN", "na", "NA", "None")
_LEADING_ZERO = r"[+-]?0\d+"


def numeric_metadata(frame: pd.DataFrame) -> pd.DataFrame:
    """Metadata columns whose every value is a number become numbers (whole numbers without gaps:
    int64, else float64), whatever the format stored them as: GCT and CSV hold text, GCTX and Parquet
    numbers, and one plate must read the same from any of them. Identifiers with leading zeros
    ('007') stay text."""
    out = {}
    for column in [c for c in frame.columns if str(c).startswith(META_PREFIX)]:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values):
            continue
        if pd.api.types.is_numeric_dtype(values):
            parsed = values.astype(np.float64)
        else:
            text = values.astype("string").str.strip()
            present = text.notna() & ~text.isin(_MISSING_TEXT)
            if not present.any() or text[present].str.fullmatch(_LEADING_ZERO).any():
                continue
            parsed = pd.to_numeric(text.where(present), errors="coerce").astype(np.float64)
            if parsed[present].isna().any():
                continue
        whole = parsed.notna().all() and bool((parsed == np.round(parsed)).all()) and bool((parsed.abs() < 2**53).all())
        out[column] = parsed.astype(np.int64) if whole else parsed
    return frame.assign(**out) if out else frame
