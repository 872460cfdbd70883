"""Latent space arithmetic: the paper's filtering, group means, predictions, null, z-scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.lsa.arithmetic import METHODS, Design, group_means, score, shuffled_null, zscores
from cpvae_assets.lsa.moa_groups import NoControlError, moa_groups
from cpvae_assets.lsa.summary import figure6, figure7, ground_truth_scores
from cpvae_assets.schema import pair_key, parse_moa
from cpvae_assets.storage.paths import PACKAGE_DATA


def profiles(moas: list[str | None], per_compound: int = 3) -> pd.DataFrame:
    rows = []
    for i, moa in enumerate(moas):
        for dose in range(per_compound):
            rows.append({"profile_id": f"c{i}:{dose}", "compound": "DMSO" if moa == "DMSO" else f"c{i}",
                         "moa": moa, "is_control": moa == "DMSO", "stratum": "p"})
    return pd.DataFrame(rows)


def test_real_annotation_counts_match_the_lincs_readme() -> None:
    table = pd.read_csv(PACKAGE_DATA / "repurposing_info_external_moa_map_resolved.tsv", sep="\t")
    # one profile per compound, plus one control: the platform's own grouping of the annotation
    frame = pd.DataFrame({"profile_id": table["broad_id"], "compound": table["broad_id"], "moa": table["moa"],
                          "is_control": False})
    frame = pd.concat([frame, pd.DataFrame([{"profile_id": "dmso", "compound": "DMSO", "moa": None,
                                             "is_control": True}])], ignore_index=True)
    result = moa_groups(frame)
    pairs = result.groups[result.groups["kind"] == "pair"]
    assert (len(pairs), int(pairs["profiles"].sum()), int((pairs["singles_present"] == True).sum())) == (133, 170, 86)  # noqa: E712
    assert result.excluded["compounds_with_3plus_moas"] == 44 and result.excluded["profiles_without_moa"] == 52
    assert int((frame["moa"].map(parse_moa).map(len) == 1).sum()) == 1304


@pytest.mark.parametrize("spelling", ["HDAC inhibitor|EGFR inhibitor", " egfr inhibitor | HDAC Inhibitor ",
                                      "EGFR inhibitor|HDAC inhibitor"])
def test_pair_spellings_are_one_group(spelling: str) -> None:
    frame = profiles(["DMSO", "HDAC inhibitor", "EGFR inhibitor", "HDAC inhibitor|EGFR inhibitor", spelling])
    result = moa_groups(frame)
    pairs = result.groups[result.groups["kind"] == "pair"]
    assert len(pairs) == 1 and pairs["profiles"].iloc[0] == 6
    assert pairs["group"].iloc[0] == "EGFR inhibitor|HDAC inhibitor"  # sorted, most frequent spelling
    assert bool(pairs["singles_present"].iloc[0])


def test_filtering_rules_and_counts() -> None:
    frame = profiles(["DMSO", "A", "B", "A|B", "C", "A|B|C", None, "A|D"])
    frame = pd.concat([frame, profiles(["E|A"], per_compound=1).assign(profile_id="solo", compound="solo")])
    result = moa_groups(frame)
    kinds = dict(zip(result.groups["group"], result.groups["kind"]))
    assert kinds == {"DMSO": "control", "A": "single", "B": "single", "A|B": "pair", "A|D": "pair", "A|E": "pair"}
    assert "C" not in kinds  # single MOA not part of any pair
    assert result.excluded["profiles_with_3plus_moas"] == 3 and result.excluded["compounds_with_3plus_moas"] == 1
    assert result.excluded["profiles_without_moa"] == 3
    assert result.excluded["pairs_missing_a_single"] == 2  # A|D and A|E lack D and E
    assert result.groups.set_index("group").loc["A|E", "single_profile"]
    assert result.membership.isna().sum() == 9  # C, A|B|C and the unannotated compound


def test_no_dmso_is_a_clear_error() -> None:
    with pytest.raises(NoControlError, match="DMSO"):
        moa_groups(profiles(["A", "B", "A|B"]))


def test_parse_moa() -> None:
    assert parse_moa(" a |b|") == ("a", "b")
    assert parse_moa(None) == () and parse_moa(float("nan")) == () and parse_moa("") == ()


def test_group_means_match_pandas_and_permutations_keep_sizes() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 200)
    values = rng.normal(size=(200, 3))
    means = group_means(labels, values, 5)[0]
    expected = pd.DataFrame(values).groupby(labels).mean().to_numpy()
    assert np.allclose(means, expected)
    perms = np.stack([rng.permutation(labels) for _ in range(4)])
    many = group_means(perms, values, 5)
    for p in range(4):
        assert np.allclose(many[p], pd.DataFrame(values).groupby(perms[p]).mean().to_numpy())


def planted(n_per_group: int = 20, seed: int = 0, synergy: bool = False):
    """Profiles where A|B = A + B - DMSO exactly (additive) or a random shift (synergy)."""
    rng = np.random.default_rng(seed)
    d = 30
    centre = {"DMSO": rng.normal(0, 1, d)}
    for name in ("A", "B", "C", "D"):
        centre[name] = centre["DMSO"] + rng.normal(0, 2, d)
    centre["A|B"] = centre["A"] + centre["B"] - centre["DMSO"]
    centre["C|D"] = rng.normal(0, 6, d) if synergy else centre["C"] + centre["D"] - centre["DMSO"]
    labels, rows = [], []
    for group, mean in centre.items():
        for _ in range(n_per_group):
            labels.append(group)
            rows.append(mean + rng.normal(0, 0.3, d))
    frame = pd.DataFrame({"profile_id": [f"p{i}" for i in range(len(labels))], "compound": labels, "moa": labels,
                          "is_control": [g == "DMSO" for g in labels], "stratum": "p"})
    return frame, np.array(rows)


def test_additive_pairs_are_predicted_and_synergy_is_not() -> None:
    frame, x = planted(synergy=True)
    result = moa_groups(frame)
    design = Design.build(result.membership, result.groups)
    identity = lambda z: z  # noqa: E731  (latent space = feature space)
    _, distances, _ = score(design, x, x, identity, [f"f{i}" for i in range(x.shape[1])])
    null = shuffled_null(design, x, x, identity, permutations=200, seed=1)
    table = zscores(distances, null).set_index(["method", "pair"])
    assert set(table.index.get_level_values("method")) == set(METHODS)
    assert table.loc[("lsa", "A|B"), "l2"] < 1.0 and table.loc[("lsa", "A|B"), "q"] < 0.05
    assert table.loc[("control", "A|B"), "l2"] > 10 * table.loc[("lsa", "A|B"), "l2"]  # A|B has an effect
    assert table.loc[("lsa", "C|D"), "q"] > 0.05 and table.loc[("lsa", "C|D"), "z"] > table.loc[("lsa", "A|B"), "z"]
    # with an identity decoder, LSA is exactly the feature-space arithmetic
    assert np.isclose(table.loc[("lsa", "A|B"), "l2"], table.loc[("feature_arithmetic", "A|B"), "l2"])


def test_null_is_seeded_and_p_values_follow_the_formula() -> None:
    frame, x = planted()
    result = moa_groups(frame)
    design = Design.build(result.membership, result.groups)
    a = shuffled_null(design, x, x, lambda z: z, permutations=10, seed=3)
    b = shuffled_null(design, x, x, lambda z: z, permutations=10, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert a["permutation"].nunique() == 10
    distances = pd.DataFrame({"method": ["lsa"], "pair": ["A|B"], "l2": [2.5]})
    null = pd.DataFrame({"method": "lsa", "pair": "A|B", "permutation": range(4), "l2": [1.0, 2.0, 3.0, 4.0]})
    z = zscores(distances, null).iloc[0]
    assert z["p"] == pytest.approx((2 + 1) / (4 + 1))
    assert z["z"] == pytest.approx((2.5 - 2.5) / np.std([1, 2, 3, 4], ddof=1))


def test_pairs_without_singles_give_empty_tables_not_errors() -> None:
    frame, x = planted()
    frame = frame[~frame["moa"].isin(["A", "C"])]
    result = moa_groups(frame)
    design = Design.build(result.membership, result.groups)
    assert design.pairs.empty
    _, distances, _ = score(design, x[: len(frame)], x[: len(frame)], lambda z: z, [f"f{i}" for i in range(30)])
    assert distances.empty and shuffled_null(design, x, x, lambda z: z, 5, 0).empty


def test_summary_tables() -> None:
    rows = []
    for dataset in ("cp", "l1000"):
        for model_type in ("beta", "pca"):
            for method, l2 in (("lsa", 1.0 if model_type == "beta" else 2.0), ("feature_arithmetic", 3.0)):
                for pair, z in (("A|B", -3.0), ("c|d", 1.0)):
                    rows.append({"dataset": dataset, "model_type": model_type, "method": method, "pair": pair if dataset == "cp" else pair.upper(),
                                 "l2": l2, "null_mean": 4.0, "q": 0.01 if z < 0 else 0.5, "z": z})
    frame = pd.DataFrame(rows)
    fig6 = figure6(frame)
    assert set(fig6["method_label"]) == {"beta_lsa", "pca_lsa", "feature_arithmetic"}
    assert fig6[["real_01", "shuffled_01"]].min().min() == 0 and fig6[["real_01", "shuffled_01"]].max().max() == 1
    fig7 = figure7(frame, "cp", "l1000")
    assert len(fig7) == 2 and pair_key("C|D") == pair_key(" d| c")  # matched across spellings
    truth = pd.DataFrame({"moa_pair": ["B|A", "C|D"], "additive": [True, False]})
    scores = ground_truth_scores(frame[frame["dataset"] == "cp"], truth).set_index("method")
    assert scores.loc["lsa", "additive_called"] == 1.0 and scores.loc["lsa", "non_additive_called"] == 0.0


def test_summary_tables_of_datasets_without_pairs_keep_their_columns(tmp_path) -> None:
    """A plate without A|B pairs (the first refresh of lincs_cp_plate): every summary table is empty but
    keeps its columns, so it is stored and its SQL view reads; a frame without columns is refused."""
    from cpvae_assets.lsa.summary import predictability_vs_distinctness
    from cpvae_assets.storage.tables import write_table

    empty = pd.DataFrame(columns=["dataset", "model_type", "method", "pair", "l2", "null_mean", "q", "z", "distinctness"])
    tables = [figure6(empty), figure7(empty, "cp", "l1000"), *predictability_vs_distinctness(empty),
              *predictability_vs_distinctness(empty.drop(columns="distinctness"))]
    for i, table in enumerate(tables):
        assert table.empty and len(table.columns) > 0, i
        write_table(table, tmp_path / f"t{i}.parquet")
    with pytest.raises(ValueError, match="at least one column"):
        write_table(pd.DataFrame(), tmp_path / "none.parquet")
    assert not (tmp_path / "none.parquet").exists()


def test_ground_truth_counts_unscored_planted_pairs_as_not_called() -> None:
    truth = pd.DataFrame({"moa_pair": ["A|B", "C|D", "E|F", "G|H", "I|J"],
                          "additive": [True, True, True, False, False]})
    # lsa scored A|B (called) and C|D (not called); E|F lost a single; G|H wrongly called; I|J unscored
    zs = pd.DataFrame({"method": ["lsa"] * 4 + ["mean_of_singles"] * 2,
                       "pair": ["b|a", "C|D", "G|H", "K|L", "A|B", "E|F"],
                       "q": [0.01, 0.2, 0.03, 0.001, 0.01, np.nan]})
    scores = ground_truth_scores(zs, truth).set_index("method")
    lsa, mos = scores.loc["lsa"], scores.loc["mean_of_singles"]
    assert (lsa["additive_pairs"], lsa["additive_scored"], lsa["additive_called"]) == (3, 2, pytest.approx(1 / 3))
    assert (lsa["non_additive_pairs"], lsa["non_additive_scored"], lsa["non_additive_called"]) == (2, 1, pytest.approx(1 / 2))
    # a NaN q is scored by no one and called by no one
    assert (mos["additive_scored"], mos["additive_called"]) == (1, pytest.approx(1 / 3))
    assert mos["non_additive_called"] == 0.0


def planted_splits(synergy: bool = True) -> tuple[pd.DataFrame, list[str]]:
    frame, x = planted(n_per_group=30, synergy=synergy)
    features = [f"f{i}" for i in range(x.shape[1])]
    rng = np.random.default_rng(5)
    split = rng.choice(["train", "validation", "test"], len(frame), p=[0.8, 0.1, 0.1])
    return pd.concat([frame.assign(split=split), pd.DataFrame(x, columns=features)], axis=1), features


def test_predict_any_two_singles_including_unseen_combinations() -> None:
    from cpvae_assets.lsa.predict import UnknownMoaError, predict_combination
    from cpvae_assets.models.latent import PcaModel

    splits, features = planted_splits()
    model = PcaModel.fit(splits[features].to_numpy(), 10, seed=0)
    embeddings = splits[["profile_id"]].assign(**{f"z_{i}": v for i, v in enumerate(model.encode(splits[features].to_numpy()).T)})
    seen = predict_combination(model, splits, embeddings, " a", "B")
    assert seen.observed and seen.nearest_groups["moa_group"].iloc[0] == "a|b"  # additive: the real A|B is nearest
    unseen = predict_combination(model, splits, embeddings, "A", "C")
    assert not unseen.observed and len(unseen.nearest_compounds) == 5
    with pytest.raises(UnknownMoaError, match="Z"):
        predict_combination(model, splits, embeddings, "A", "Z")


def test_predict_leaves_profiles_without_an_moa_out_of_the_groups() -> None:
    from cpvae_assets.lsa.predict import predict_combination
    from cpvae_assets.models.latent import PcaModel

    splits, features = planted_splits()
    splits.loc[splits.index[:7], ["moa", "is_control"]] = [None, False]
    model = PcaModel.fit(splits[features].to_numpy(), 10, seed=0)
    embeddings = splits[["profile_id"]].assign(**{f"z_{i}": v for i, v in enumerate(model.encode(splits[features].to_numpy()).T)})
    result = predict_combination(model, splits, embeddings, "A", "B", top=50)
    assert result.unannotated_profiles == 7
    assert "" not in set(result.nearest_groups["moa_group"]) and result.nearest_groups["moa_group"].notna().all()


def test_leave_moa_out_retrains_without_the_held_out_pairs() -> None:
    from cpvae_assets.lsa.leave_out import leave_moa_out
    from cpvae_assets.models.hyperparameters import paper_defaults

    splits, features = planted_splits(synergy=False)
    result = moa_groups(splits)
    design = Design.build(result.membership, result.groups)
    x = splits[features].to_numpy()
    _, distances, _ = score(design, x, x, lambda z: z, features)
    before = zscores(distances, shuffled_null(design, x, x, lambda z: z, 50, 0))
    hp = paper_defaults("cp5", len(features), latent_dim=8)
    table = leave_moa_out(splits, result.membership, result.groups, before, "pca", hp, top=1, permutations=50)
    assert table["held_out"].sum() == 1
    removed = int(((splits["split"] == "train") & result.membership.isin(table.loc[table["held_out"], "pair"])).sum())
    assert table["training_profiles_removed"].iloc[0] == removed > 0
    assert {"rank_before", "rank_after", "z_before", "z_after", "still_top"} <= set(table.columns)
