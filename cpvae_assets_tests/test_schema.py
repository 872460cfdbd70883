"""The shared names: column rules and MOA keys every stage relies on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.schema import (
    CANONICAL,
    MODEL_TYPES,
    check_model_type,
    feature_columns,
    latent_columns,
    latent_columns_of,
    moa_key,
    pair_key,
    parse_moa,
)


def test_feature_columns_skip_canonical_derived_and_metadata() -> None:
    columns = [*CANONICAL, "split", "Metadata_Plate", "Cells_AreaShape_Area", "10007", "z_0"]
    assert feature_columns(columns) == ["Cells_AreaShape_Area", "10007", "z_0"]
    frame = pd.DataFrame(columns=columns)
    assert feature_columns(frame) == feature_columns(columns)


def test_latent_columns_round_trip_and_ignore_lookalikes() -> None:
    names = latent_columns(3)
    assert names == ["z_0", "z_1", "z_2"]
    frame = pd.DataFrame(np.zeros((1, 5)), columns=["profile_id", *names, "z_score"])
    assert latent_columns_of(frame) == names


@pytest.mark.parametrize("value", [None, float("nan"), pd.NA, "", " | "])
def test_missing_moa_parses_to_nothing(value) -> None:
    assert parse_moa(value) == ()


@pytest.mark.parametrize("a, b", [("HDAC inhibitor|EGFR inhibitor", " egfr inhibitor | hdac Inhibitor "),
                                  ("A|B", "b|a"), ("x", " X ")])
def test_pair_keys_ignore_order_case_and_spaces(a: str, b: str) -> None:
    assert pair_key(a) == pair_key(b)
    assert pair_key(a) == "|".join(sorted(p.strip().lower() for p in a.split("|")))
    assert moa_key(parse_moa(a)) == tuple(pair_key(a).split("|"))


def test_model_types_are_checked() -> None:
    assert [check_model_type(m) for m in MODEL_TYPES] == list(MODEL_TYPES)
    with pytest.raises(ValueError, match="unknown model type 'lstm'"):
        check_model_type("lstm")
