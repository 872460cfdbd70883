"""The demo generator: LINCS shapes, determinism, and a ground truth that is visible in the data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.ingestion.demo_data import (
    DIRECTION_NORM,
    GROUND_TRUTH,
    HIDDEN,
    DemoConfig,
    cellprofiler_feature_names,
    design_compounds,
    generate_demo,
    hidden_map,
)
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
    synergy = truth[~truth["additive"]]
    floor = DemoConfig().min_synergy_angle_degrees
    assert (synergy["angle_to_sum_degrees"] >= floor).all() and (synergy["min_synergy_angle_degrees"] == floor).all()
    # the recorded angle is the angle of the recorded cosine
    assert np.allclose(np.cos(np.radians(synergy["angle_to_sum_degrees"])), synergy["cosine_to_sum"], atol=1e-4)
    assert (truth[["effect_size", "nonlinearity"]] == [DemoConfig().effect_size, DemoConfig().nonlinearity]).all().all()


@pytest.mark.parametrize("floor", [0.0, 120.0])
def test_synergy_angle_floor_holds_for_every_pair(floor: float) -> None:
    cfg = DemoConfig(n_single_moas=20, n_pairs=30, n_synergistic=30, min_synergy_angle_degrees=floor)
    compounds, truth, direction = design_compounds(cfg, np.random.default_rng(3))
    angles = truth["angle_to_sum_degrees"]
    assert (angles >= floor).all() and len(angles) == 30
    if floor == 0:  # no floor: random directions, some of them closer than 90 degrees to the sum
        assert (angles < 90).any()
    for row in truth.itertuples():  # same size as the sum, as before
        summed = direction[row.moa_a] + direction[row.moa_b]
        assert np.linalg.norm(direction[row.moa_pair]) == pytest.approx(np.linalg.norm(summed))


@pytest.mark.parametrize("effect_size", [2.0, 20.0])
def test_effect_size_is_direction_norm_over_compound_noise(effect_size: float) -> None:
    cfg = DemoConfig(effect_size=effect_size)
    compounds, _, direction = design_compounds(cfg, np.random.default_rng(4))
    singles = compounds[compounds["moa"].notna() & ~compounds["moa"].fillna("").str.contains("|", regex=False)]
    norms = [np.linalg.norm(direction[m]) for m in singles["moa"].unique()]
    assert np.allclose(norms, DIRECTION_NORM)
    noise = np.stack([h - direction[m] for h, m in zip(compounds["hidden"], compounds["moa"]) if m is not None])
    assert noise.std() == pytest.approx(DIRECTION_NORM / effect_size, rel=0.1)
    assert np.mean(norms) / noise.std() == pytest.approx(effect_size, rel=0.1)


def test_nonlinearity_blends_from_the_linearisation_to_the_tanh_map() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1.5, HIDDEN), rng.normal(0, 1.5, HIDDEN)
    maps = {k: hidden_map(np.random.default_rng(0), 50, k) for k in (0.0, 0.5, 1.0)}

    def additivity_error(f) -> float:  # how far f(a + b) is from f(a) - f(0) + f(b): zero when f is affine
        zero = np.zeros(HIDDEN)
        return float(np.linalg.norm(f(a + b) - (f(a) - f(zero) + f(b))))

    errors = [additivity_error(maps[k]) for k in (0.0, 0.5, 1.0)]
    assert errors[0] < 1e-9 and errors[1] == pytest.approx(errors[2] / 2) and errors[2] > 0.1
    eps = 1e-5 * np.eye(HIDDEN)[0]  # every blend has the same value and slope at DMSO (h = 0)
    slopes = [(maps[k](eps) - maps[k](-eps)) / 2e-5 for k in (0.0, 1.0)]
    assert np.allclose(maps[0.0](np.zeros(HIDDEN)), maps[1.0](np.zeros(HIDDEN))) and np.allclose(*slopes, atol=1e-5)


@pytest.mark.parametrize("bad", [{"effect_size": 0.0}, {"nonlinearity": 1.5}, {"min_synergy_angle_degrees": 170.0}])
def test_knobs_out_of_range_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        DemoConfig(**bad)


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
