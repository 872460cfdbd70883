"""Interpretation science without Dagster or TensorFlow: feature-name parsing, traversal, feature
groups, correlation, distinctness and the plots, on small synthetic frames and the real plate's names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.interpretation.correlation import disentanglement, latent_correlation
from cpvae_assets.interpretation.feature_groups import (
    cluster_order,
    clustered,
    contribution_matrix,
    group_contributions,
    parse_feature_names,
    unparsed,
)
from cpvae_assets.interpretation.traversal import TraversalError, active_features, latent_traversal, top_features
from cpvae_assets.models.latent import PcaModel
from cpvae_assets_tests.support.real_data import REAL_CP

PNG = b"\x89PNG\r\n\x1a\n"


def real_feature_names() -> list[str]:
    header = pd.read_csv(REAL_CP, nrows=0).columns
    return [c for c in header if not c.startswith("Metadata_")]


def test_every_real_cellprofiler_name_parses() -> None:
    names = real_feature_names()
    parsed = parse_feature_names(names)
    assert len(names) == 454
    assert set(parsed["feature"]) == set(names) and unparsed(parsed) == []
    assert set(parsed["compartment"]) == {"Cells", "Cytoplasm", "Nuclei"}
    assert set(parsed["channel"]) == {"DNA", "RNA", "ER", "AGP", "Mito", "none"}
    shape = parsed[parsed["feature_group"] == "AreaShape"]
    assert (shape["channel"] == "none").all() and len(shape) == 72
    # a correlation between two channels belongs to both
    both = parsed[parsed["feature"] == "Cells_Correlation_Correlation_DNA_AGP"]
    assert sorted(both["group"]) == ["Cells_AGP", "Cells_DNA"]
    assert parsed.loc[parsed["feature"] == "Cells_Granularity_2_AGP", "group"].tolist() == ["Cells_AGP"]


@pytest.mark.parametrize("name", ["Image_Count_Cells", "Cells", "PC1", "Cells_Unknown_Thing_DNA", "gene_1234", ""])
def test_names_off_the_pattern_are_listed_as_other(name: str) -> None:
    parsed = parse_feature_names(["Cells_AreaShape_Area", name])
    assert unparsed(parsed) == [name]
    assert parsed.loc[parsed["feature"] == name, "group"].tolist() == ["other"]


def test_orig_channel_prefix() -> None:
    parsed = parse_feature_names(["Nuclei_Intensity_MeanIntensity_OrigMito"])
    assert parsed["group"].tolist() == ["Nuclei_Mito"]


def _pca(n_features: int = 12, k: int = 3, seed: int = 0) -> tuple[PcaModel, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, k)) @ rng.normal(size=(k, n_features)) + 0.05 * rng.normal(size=(200, n_features))
    return PcaModel.fit(x.astype(np.float32), k, seed), x


@pytest.mark.parametrize("magnitude", [1.0, 3.0])
def test_pca_traversal_is_twice_the_scaled_component(magnitude: float) -> None:
    model, _ = _pca()
    features = [f"f{i}" for i in range(12)]
    table = latent_traversal(model, features, magnitude)
    assert len(table) == 3 * 12 and list(table["latent_feature"].unique()) == ["z_0", "z_1", "z_2"]
    sd = np.sqrt(model.pca.explained_variance_)
    for i in range(3):
        got = table.loc[table["latent_feature"] == f"z_{i}", "difference"].to_numpy()
        np.testing.assert_allclose(got, 2 * magnitude * sd[i] * model.pca.components_[i], rtol=1e-4, atol=1e-5)
    ranks = table[table["latent_feature"] == "z_0"].sort_values("rank")
    assert ranks["abs_difference"].is_monotonic_decreasing and ranks["rank"].tolist() == list(range(1, 13))
    assert (top_features(table, 2).groupby("latent_feature").size() == 2).all()


class _Decoder:
    """A linear decoder; NaN at one latent feature's traversal points when asked."""

    def __init__(self, weights: np.ndarray, nan_at: int | None = None):
        self.weights, self.nan_at, self.latent_dim = weights, nan_at, weights.shape[0]

    def decode(self, z: np.ndarray) -> np.ndarray:
        out = z @ self.weights
        if self.nan_at is not None:
            out[z[:, self.nan_at] != 0] = np.nan
        return out


def test_nan_decoder_names_the_latent_feature() -> None:
    with pytest.raises(TraversalError, match=r"z_1: the decoder returns NaN"):
        latent_traversal(_Decoder(np.ones((3, 4)), nan_at=1), ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="magnitude must be positive"):
        latent_traversal(_Decoder(np.ones((3, 4))), ["a", "b", "c", "d"], 0)
    with pytest.raises(ValueError, match="returns 4 features, expected 3"):
        latent_traversal(_Decoder(np.ones((3, 4))), ["a", "b", "c"])


def test_a_latent_feature_the_decoder_ignores_is_inactive() -> None:
    weights = np.array([[0.1, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.001, 0.0]])
    active = active_features(latent_traversal(_Decoder(weights), ["a", "b", "c"]), threshold=0.05)
    assert active["active"].tolist() == [True, False, False]
    assert active.loc[0, "top_feature"] == "a" and active["threshold"].eq(0.05).all()
    np.testing.assert_allclose(active["max_abs"], [0.6, 0.0, 0.006])
    with pytest.raises(ValueError, match="threshold"):
        active_features(latent_traversal(_Decoder(weights), ["a", "b", "c"]), -1)


def test_group_shares_sum_to_one_and_follow_the_decoder() -> None:
    names = ["Cells_AreaShape_Area", "Nuclei_Intensity_MeanIntensity_DNA", "Nuclei_Texture_Contrast_DNA_3_0",
             "Cytoplasm_Correlation_Correlation_ER_Mito"]
    # z_0 moves only the nuclear DNA features, z_1 only the correlation feature
    weights = np.array([[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    traversal = latent_traversal(_Decoder(weights), names)
    shares = group_contributions(traversal, parse_feature_names(names))
    assert np.allclose(shares.groupby("latent_feature")["share"].sum(), 1.0)
    z0 = shares[shares["latent_feature"] == "z_0"].set_index("group")["share"]
    assert z0["Nuclei_DNA"] == pytest.approx(1.0) and z0.drop("Nuclei_DNA").eq(0).all()
    z1 = shares[shares["latent_feature"] == "z_1"].set_index("group")["share"]
    assert z1["Cytoplasm_ER"] == pytest.approx(0.5) and z1["Cytoplasm_Mito"] == pytest.approx(0.5)
    by_group = group_contributions(traversal, parse_feature_names(names), "feature_group")
    assert set(by_group["group"]) == {"AreaShape", "Intensity", "Texture", "Correlation"}
    with pytest.raises(ValueError, match="by must be"):
        group_contributions(traversal, parse_feature_names(names), "plate")  # type: ignore[arg-type]
    matrix = contribution_matrix(shares)
    assert list(matrix.columns) == ["z_0", "z_1"]
    rows, cols = cluster_order(matrix)
    assert rows is not None and cols is not None
    ordered = clustered(matrix)
    assert sorted(ordered.index) == sorted(matrix.index) and sorted(ordered.columns) == sorted(matrix.columns)


def test_latent_correlation() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=5000)
    z = pd.DataFrame({"profile_id": range(5000), "z_0": a, "z_1": rng.normal(size=5000), "z_2": -a, "z_3": 1.0})
    table = latent_correlation(z)
    r = table.set_index(["latent_i", "latent_j"])["r"]
    assert r[("z_0", "z_2")] == pytest.approx(-1.0) and abs(r[("z_0", "z_1")]) < 0.05
    summary = disentanglement(table)
    assert summary["collapsed_latent_features"] == 1 and summary["latent_features"] == 4
    # off-diagonal pairs with a defined r: (0,1), (0,2), (1,2) each twice
    assert summary["mean_abs_correlation"] == pytest.approx((1 + abs(r[("z_0", "z_1")]) + abs(r[("z_1", "z_2")])) / 3)
    assert summary["max_abs_correlation"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no latent columns"):
        latent_correlation(pd.DataFrame({"a": [1, 2, 3]}))
    with pytest.raises(ValueError, match="too few"):
        latent_correlation(z.head(2))


def test_distinctness_and_its_spearman() -> None:
    from cpvae_assets.lsa.summary import distinctness, predictability_vs_distinctness

    means = pd.DataFrame({"group": ["A|B", "C|D", "DMSO"], "f0": [3.0, 0.0, 0.0], "f1": [4.0, 1.0, 0.0]})
    d = distinctness(means, pd.Series({"f0": 0.0, "f1": 0.0}))
    assert d.to_dict() == {"A|B": 5.0, "C|D": 1.0, "DMSO": 0.0}
    pairs = [f"p{i}" for i in range(6)]
    zs = pd.DataFrame({"dataset": "d", "model_type": "beta", "pair": pairs * 2, "method": ["lsa"] * 6 + ["best_single"] * 6,
                       "distinctness": list(range(6)) * 2, "z": [5, 4, 3, 2, 1, 0] + [0] * 6})
    rows, stats = predictability_vs_distinctness(zs)
    assert len(rows) == 6 and stats.loc[0, "spearman_rho"] == pytest.approx(-1.0) and stats.loc[0, "pairs"] == 6
    empty_rows, empty_stats = predictability_vs_distinctness(zs.drop(columns="distinctness"))
    assert empty_rows.empty and empty_stats.empty


def test_every_plot_is_a_png() -> None:
    from cpvae_assets import plots

    model, _ = _pca(n_features=6)
    names = ["Cells_AreaShape_Area", "Cells_Intensity_MeanIntensity_DNA", "Nuclei_Intensity_MeanIntensity_RNA",
             "Nuclei_Texture_Contrast_ER_3_0", "Cytoplasm_Granularity_2_Mito", "Cytoplasm_Correlation_K_AGP_DNA"]
    traversal = latent_traversal(model, names)
    active = active_features(traversal, 0.05)
    matrix = contribution_matrix(group_contributions(traversal, parse_feature_names(names)))
    rows, cols = cluster_order(matrix)
    from cpvae_assets.interpretation.correlation import correlation_matrix

    rng = np.random.default_rng(1)
    corr = correlation_matrix(latent_correlation(pd.DataFrame(rng.normal(size=(50, 3)), columns=["z_0", "z_1", "z_2"])))
    pngs = [plots.feature_group_heatmap(matrix, rows, cols, "t"), plots.active_features_plot(active, 0.05, "pca", "t"),
            plots.correlation_heatmap(corr, "t"), plots.traversal_plot(top_features(traversal, 3), "t")]
    z = pd.DataFrame({"pair": ["A|B", "C|D"], "method": "lsa", "l2": [1.0, 2.0], "null_mean": [2.0, 2.1],
                      "null_sd": [0.2, 0.3], "z": [-5.0, -0.3]})
    ranks = pd.DataFrame({"pair": ["A|B", "C|D", "E|F"], "rank_before": [1, 2, 3], "rank_after": [2, 1, 3],
                          "held_out": [True, False, False]})
    pngs += [plots.pair_distances_plot(z, "mmd", "t"), plots.leave_out_plot(ranks, "t")]
    assert all(p.startswith(PNG) and len(p) > 2000 for p in pngs)
    assert plots.colour("beta_lsa") == plots.colour("beta") == plots.MODEL_COLOURS["beta"]
