"""The MOA of each profile from an annotation table (the Drug Repurposing Hub or a dataset's own).

Real files spell the same compound differently: L1000 metadata carries names in capitals
(``AZD-8330``) where the Hub writes ``azd8330``, and the 13-character ``pert_id`` (``BRD-K12345678``)
where a table holds the full sample ID (``BRD-K12345678-001-01-1``: compound, salt, batch). One key
function makes both sides comparable: Broad IDs by their first 13 characters, everything else
without regard to case, spaces or hyphens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cpvae_assets.ingestion.landing import IngestError

MOA_COLUMN = "moa"
BROAD_ID = re.compile(r"BRD-[A-Z]\d{8}", re.IGNORECASE)  # the compound part of a Broad sample ID
SHOWN_UNMATCHED = 10


@dataclass
class MoaJoin:
    """The joined MOA per profile and how well the join went (controls not counted)."""

    moa: pd.Series  # aligned with the profiles; NA where the table gave none
    profile_column: str
    table: str
    table_column: str
    profiles: int = 0  # profiles joined (controls excluded)
    in_table: int = 0  # of those, found in the table
    matched: int = 0  # of those, with an MOA
    unmatched: list[str] = field(default_factory=list)  # up to 10 profile values left without an MOA
    conflicts: list[str] = field(default_factory=list)  # matched keys the table gives several MOAs

    def summary(self) -> str:
        shown = ", ".join(repr(v) for v in self.unmatched)
        return (f"MOA join {self.profile_column} -> {self.table}:{self.table_column}: {self.matched} of "
                f"{self.profiles} profiles have an MOA ({self.in_table} found in the table)"
                + (f"; without an MOA, e.g. {shown}" if self.unmatched else ""))


def join_key(value: object) -> str | None:
    """``'BRD-K12345678-001-01-1'`` -> ``'BRD-K12345678'``; ``'AZD-8330 '`` -> ``'azd8330'``; None for a blank."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    broad = BROAD_ID.match(text)
    if broad:
        return broad.group(0).upper()
    key = re.sub(r"[\s\-]+", "", text).lower()
    return key or None


def _files(paths: Sequence[Path | str]) -> str:
    return ", ".join(str(p) for p in paths)


def read_moa_table(path: Path, key: str, profile_files: Sequence[Path | str]) -> pd.DataFrame:
    """The table's key and MOA columns as text; errors name the table and the profile files."""
    where = f"MOA table {path} (joined to profile file(s) {_files(profile_files)})"
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise IngestError(f"{where}: cannot be read as a tab-separated table ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in (key, MOA_COLUMN) if c not in table.columns]
    if missing:
        raise IngestError(f"{where}: lacks column(s) {missing} (the join key `moa_join.table` and `moa`); "
                          f"it has {list(table.columns)[:10]}")
    return table[[key, MOA_COLUMN]]


def join_moa(values: pd.Series, table: pd.DataFrame, table_column: str, *, table_path: Path | str,
             profile_files: Sequence[Path | str], controls: pd.Series | None = None,
             profile_column: str = "") -> MoaJoin:
    """The MOA of every profile whose ``values`` key matches a row of ``table``.

    Blank MOAs in the table do not count as annotations; where several rows share a key the first
    non-blank MOA wins (recorded in ``conflicts`` when they disagree). Refuses a join in which no
    profile (controls aside) finds its key in the table: a wrong key column, not sparse annotation."""
    controls = pd.Series(False, index=values.index) if controls is None else controls.reindex(values.index).fillna(False)
    keys = table[table_column].map(join_key)
    moas = table[MOA_COLUMN].astype("string").str.strip().replace("", pd.NA)
    rows = pd.DataFrame({"key": keys, "moa": moas}).dropna(subset=["key"])
    annotated = rows.dropna(subset=["moa"])
    lookup = annotated.drop_duplicates("key").set_index("key")["moa"]
    profile_keys = values.map(join_key)
    moa = profile_keys.map(lookup).astype("string").mask(controls.astype(bool))
    treated = ~controls.astype(bool)
    found = profile_keys.isin(set(rows["key"])) & treated
    matched = moa.notna() & treated
    if treated.any() and not found.any():
        example = ", ".join(repr(v) for v in values[treated].dropna().astype(str).unique()[:3])
        raise IngestError(
            f"MOA table {table_path}: no profile of {_files(profile_files)} matches it: column "
            f"{profile_column or values.name!r} (e.g. {example}) never equals table column {table_column!r} "
            "(compared without case, spaces or hyphens; Broad IDs by their first 13 characters); check `moa_join`")
    hit = set(profile_keys[matched])
    disagree = annotated[annotated["key"].isin(hit)].groupby("key")["moa"].nunique()
    unmatched = values[treated & ~matched].astype("string").fillna("<blank>").drop_duplicates()
    return MoaJoin(moa=moa, profile_column=profile_column or str(values.name), table=Path(table_path).name,
                   table_column=table_column, profiles=int(treated.sum()), in_table=int(found.sum()),
                   matched=int(matched.sum()), unmatched=unmatched.head(SHOWN_UNMATCHED).tolist(),
                   conflicts=sorted(disagree[disagree > 1].index)[:SHOWN_UNMATCHED])
