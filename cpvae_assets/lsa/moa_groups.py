"""The paper's filtering of MOA groups, with MOA spellings normalised.

Kept: DMSO; compounds with two MOAs (an unordered pair ``A|B``); compounds with one MOA ``A`` when
some kept pair contains ``A``. MOAs are compared trimmed and case-insensitively; the displayed
spelling is the most frequent original one, and a pair is displayed in sorted order.

The control group is the dataset's DMSO profiles, or, for z-scored signatures without control rows
(``control="zero_signature"``), a DMSO group with no profiles of its own, flagged ``zero_signature``:
the arithmetic then adds the zero signature as the one control row (``lsa.arithmetic.lsa_inputs``).
A pair one of whose singles has a single compound is kept and flagged ``single_has_one_compound``:
its "MOA" arithmetic is then the arithmetic of one compound.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from cpvae_assets.schema import CONTROL_LABEL, CONTROLS, MOA_SEPARATOR, Control, moa_key, parse_moa


class NoControlError(ValueError):
    """LSA needs DMSO: the dataset has no control profiles."""


@dataclass
class MoaGroups:
    # group, kind (control / single / pair), moa_a, moa_b, compounds, profiles, single_profile,
    # single_has_one_compound (pairs), zero_signature (the control group of a dataset without controls)
    groups: pd.DataFrame
    membership: pd.Series  # group per profile (index of the profiles), NaN where excluded
    excluded: dict[str, int] = field(default_factory=dict)


def moa_groups(profiles: pd.DataFrame, control: Control = "profiles") -> MoaGroups:
    """Group profiles (canonical columns ``moa``, ``compound``, ``is_control``) as the paper did.

    ``control``: "profiles" needs control profiles (``NoControlError`` without them); "zero_signature"
    keeps an empty, flagged DMSO group and leaves any control rows out (counted)."""
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}; expected one of {', '.join(CONTROLS)}")
    zero_signature = control == "zero_signature"
    if not zero_signature and not profiles["is_control"].any():
        raise NoControlError("no DMSO (control) profiles: latent space arithmetic subtracts mean(DMSO); "
                             "for z-scored signatures without controls set control = \"zero_signature\"")
    parsed = profiles["moa"].map(parse_moa)
    spelling: dict[str, Counter] = {}
    for parts in parsed[~profiles["is_control"]]:
        for part in parts:
            spelling.setdefault(part.lower(), Counter())[part] += 1
    display = {key: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for key, c in spelling.items()}
    keys = parsed.map(moa_key)
    pairs = {k for k, c in zip(keys, profiles["is_control"]) if len(k) == 2 and not c}
    in_pairs = {m for pair in pairs for m in pair}

    def group_of(key: tuple[str, ...], is_control: bool) -> str | None:
        if is_control:
            return None if zero_signature else CONTROL_LABEL
        if len(key) == 2:
            return MOA_SEPARATOR.join(display[m] for m in key)
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
    if zero_signature:
        excluded["control_profiles_ignored"] = int(profiles["is_control"].sum())
    kept = profiles.assign(group=membership).dropna(subset=["group"])
    table = kept.groupby("group").agg(compounds=("compound", "nunique"), profiles=("profile_id", "size")).reset_index()
    if zero_signature:
        table = pd.concat([table, pd.DataFrame({"group": [CONTROL_LABEL], "compounds": [0], "profiles": [0]})],
                          ignore_index=True)
    table["kind"] = ["control" if g == CONTROL_LABEL else "pair" if "|" in g else "single" for g in table["group"]]
    split = table["group"].str.split("|", n=1, expand=True).reindex(columns=[0, 1])
    table["moa_a"] = split[0].where(table["kind"] == "pair")
    table["moa_b"] = split[1].where(table["kind"] == "pair")
    singles = set(table.loc[table["kind"] == "single", "group"])
    table["singles_present"] = [bool(a in singles and b in singles) if k == "pair" else pd.NA
                                for k, a, b in zip(table["kind"], table["moa_a"], table["moa_b"])]
    table["single_profile"] = table["profiles"] == 1
    compounds = dict(zip(table["group"], table["compounds"]))
    table["single_has_one_compound"] = [k == "pair" and (compounds.get(a) == 1 or compounds.get(b) == 1)
                                        for k, a, b in zip(table["kind"], table["moa_a"], table["moa_b"])]
    table["zero_signature"] = (table["kind"] == "control") & zero_signature
    excluded["pairs_missing_a_single"] = int(((table["kind"] == "pair") & (table["singles_present"] == False)).sum())  # noqa: E712
    order = {"control": 0, "single": 1, "pair": 2}
    table = table.sort_values(["kind", "group"], key=lambda s: s.map(order) if s.name == "kind" else s)
    return MoaGroups(table.reset_index(drop=True), membership, excluded)


def stored_membership(splits: pd.DataFrame, membership: pd.DataFrame) -> pd.Series:
    """The group of each profile of ``splits`` from the stored ``moa_groups_membership`` table (NaN:
    excluded), aligned with ``splits``."""
    return splits["profile_id"].map(dict(zip(membership["profile_id"], membership["group"])))
