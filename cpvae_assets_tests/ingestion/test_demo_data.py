"""The demo generator: LINCS shapes, determinism, and a ground truth that is visible in the data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.ingestion.demo_data import GROUND_TRUTH, DemoConfig, cellprofiler_feature_names, generate_demo
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.ingestion.validate import ingest_dataset


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return generate_demo(tmp_path_factory.mktemp("landing"))


@pytest.fixture(scope="module")
def ingested(demo: dict[str, Path]):
    return {name: ingest_dataset(folder, dataset_spec(name)) for name, folder in demo.items()}


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_shapes_match_the_lincs_layout(ingested) -> None:
    cp5, cp4, l1000 = (ingested[n] for n in ("demo_cp_level5", "demo_cp_level4", "demo_l1000"))
    assert len(cp5.features) == 588 and 1400 <= len(cp5.profiles) <= 1600
    assert cp5.profiles["is_control"].sum() == 180
    assert sorted(cp5.profiles.loc[~cp5.profiles["is_control"], "dose"].unique()) == [0.04, 0.12, 0.37, 1.11, 3.33, 10.0]
    assert cp5.profiles["stratum"].nunique() == 6
    assert len(cp4.profiles) == 4 * len(cp5.profiles) and cp4.profiles["stratum"].nunique() == 24
    assert len(l1000.features) == 978 and set(l1000.profiles["stratum"]) == {"A549", "MCF7"}
    moas = cp5.profiles["moa"].dropna()
    singles = {m for m in moas if "|" not in m} - {"DMSO"}
    pairs = {m for m in moas if m.count("|") == 1}
    assert len(singles) == 40 and len(pairs) == 15


def test_feature_names_look_like_cellprofiler() -> None:
    names = cellprofiler_feature_names(588)
    assert len(set(names)) == 588
    compartments = pd.Series([n.split("_")[0] for n in names]).value_counts()
    assert compartments.to_dict() == {"Cells": 196, "Cytoplasm": 196, "Nuclei": 196}
    assert all(n.split("_")[1] in {"AreaShape", "Intensity", "Texture", "Granularity", "RadialDistribution", "Correlation"}
               for n in names)


def test_same_seed_same_bytes_other_seed_other_data(demo: dict[str, Path], tmp_path: Path) -> None:
    again = generate_demo(tmp_path / "again")
    for name, folder in demo.items():
        assert _digest(folder) == _digest(again[name]), name
    other = generate_demo(tmp_path / "other", DemoConfig(seed=1))
    assert _digest(other["demo_cp_level5"]) != _digest(demo["demo_cp_level5"])


def test_ground_truth_marks_synergy(demo: dict[str, Path]) -> None:
    truth = pd.read_csv(demo["demo_cp_level5"] / GROUND_TRUTH)
    assert len(truth) == 15 and (~truth["additive"]).sum() == 3
    assert np.allclose(truth.loc[truth["additive"], "cosine_to_sum"], 1.0)
    assert (truth.loc[~truth["additive"], "cosine_to_sum"] < 0.95).all()


def test_additive_pairs_are_closer_to_feature_arithmetic_than_synergistic(ingested, demo) -> None:
    """At the top dose, mean(A) - mean(DMSO) + mean(B) predicts an additive A|B better than a synergistic one."""
    profiles, features = ingested["demo_cp_level5"].profiles, ingested["demo_cp_level5"].features
    top = profiles[(profiles["dose"] == 10.0) | profiles["is_control"]]
    means = top.groupby("moa")[features].mean()
    truth = pd.read_csv(demo["demo_cp_level5"] / GROUND_TRUTH)
    error = {
        row.moa_pair: float(np.linalg.norm(means.loc[row.moa_a] - means.loc["DMSO"] + means.loc[row.moa_b] - means.loc[row.moa_pair]))
        for row in truth.itertuples()
    }
    additive = [error[p] for p in truth.loc[truth["additive"], "moa_pair"]]
    synergy = [error[p] for p in truth.loc[~truth["additive"], "moa_pair"]]
    assert np.median(additive) < np.median(synergy)
