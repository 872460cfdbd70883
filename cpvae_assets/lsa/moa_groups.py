"""The paper's filtering of MOA groups, with MOA spellings normalised.

Kept: DMSO; compounds with two MOAs (an unordered pair ``A|B``); compounds with one MOA ``A`` when
some kept pair contains ``A``. MOAs are compared trimmed and case-insensitively; the displayed
spelling is the most frequent original one, and a pair is displayed in sorted order.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

CONTROL = "DMSO"


class NoControlError(ValueError):
    """LSA needs DMSO: the dataset has no control profiles."""


def parse_moa(value: object) -> tuple[str, ...]:
    """``' HDAC inhibitor |EGFR inhibitor'`` -> ``('HDAC inhibitor', 'EGFR inhibitor')``."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ()
    return tuple(part.strip() for part in str(value).split("|") if part.strip())


@dataclass
class MoaGroups:
    groups: pd.DataFrame  # group, kind (control / single / pair), moa_a, moa_b, compounds, profiles, single_profile
    membership: pd.Series  # group per profile (index of the profiles), NaN where excluded
    excluded: dict[str, int] = field(default_factory=dict)


def moa_groups(profiles: pd.DataFrame) -> MoaGroups:
    """Group profiles (canonical columns ``moa``, ``compound``, ``is_control``) as the paper did."""
    if not profiles["is_control"].any():
        raise NoControlError("no DMSO (control) profiles: latent space arithmetic subtracts mean(DMSO)")
    parsed = profiles["moa"].map(parse_moa)
    spelling: dict[str, Counter] = {}
    for parts in parsed[~profiles["is_control"]]:
        for part in parts:
            spelling.setdefault(part.lower(), Counter())[part] += 1
    display = {key: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for key, c in spelling.items()}
    keys = parsed.map(lambda parts: tuple(sorted({p.lower() for p in parts})))
    pairs = {k for k, c in zip(keys, profiles["is_control"]) if len(k) == 2 and not c}
    in_pairs = {m for pair in pairs for m in pair}

    def group_of(key: tuple[str, ...], control: bool) -> str | None:
        if control:
            return CONTROL
        if len(key) == 2:
            return "|".join(display[m] for m in key)
        if len(key) == 1 and key[0] in in_pairs:
            return display[key[0]]
        return None

    membership = pd.Series([group_of(k, c) for k, c in zip(keys, profiles["is_control"])],
                           index=profiles.index, dtype="object", name="group")
    treated = ~profiles["is_control"]
    n_moas = keys.map(len)
    excluded = {
        "profiles_without_moa": int((treated & (n_moas == 0)).sum()),
        "profiles_with_3plus_moas": int((treated & (n_moas >= 3)).sum()),
        "compounds_with_3plus_moas": int(profiles.loc[treated & (n_moas >= 3), "compound"].nunique()),
        "profiles_single_moa_not_in_any_pair": int((treated & (n_moas == 1) & membership.isna()).sum()),
    }
    kept = profiles.assign(group=membership).dropna(subset=["group"])
    table = kept.groupby("group").agg(compounds=("compound", "nunique"), profiles=("profile_id", "size")).reset_index()
    table["kind"] = ["control" if g == CONTROL else "pair" if "|" in g else "single" for g in table["group"]]
    split = table["group"].str.split("|", n=1, expand=True).reindex(columns=[0, 1])
    table["moa_a"] = split[0].where(table["kind"] == "pair")
    table["moa_b"] = split[1].where(table["kind"] == "pair")
    singles = set(table.loc[table["kind"] == "single", "group"])
    table["singles_present"] = [bool(a in singles and b in singles) if k == "pair" else pd.NA
                                for k, a, b in zip(table["kind"], table["moa_a"], table["moa_b"])]
    table["single_profile"] = table["profiles"] == 1
    excluded["pairs_missing_a_single"] = int(((table["kind"] == "pair") & (table["singles_present"] == False)).sum())  # noqa: E712
    order = {"control": 0, "single": 1, "pair": 2}
    table = table.sort_values(["kind", "group"], key=lambda s: s.map(order) if s.name == "kind" else s)
    return MoaGroups(table.reset_index(drop=True), membership, excluded)


def annotation_pairs(table: pd.DataFrame, moa_column: str = "moa") -> dict[str, int]:
    """Counts on a compound annotation table (e.g. the Repurposing Hub): two-MOA combinations and how
    many have both singles among the compounds."""
    keys = table[moa_column].map(parse_moa).map(lambda parts: tuple(sorted({p.lower() for p in parts})))
    pairs = {k for k in keys if len(k) == 2}
    singles = {k[0] for k in keys if len(k) == 1}
    return {"compounds_one_moa": int((keys.map(len) == 1).sum()), "compounds_two_moas": int((keys.map(len) == 2).sum()),
            "compounds_3plus_moas": int((keys.map(len) >= 3).sum()), "compounds_no_moa": int((keys.map(len) == 0).sum()),
            "distinct_pairs": len(pairs), "pairs_with_both_singles": sum(a in singles and b in singles for a, b in pairs)}
