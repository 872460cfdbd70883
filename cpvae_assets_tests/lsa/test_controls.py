"""The control baseline, datasets without controls (the zero signature), and pairs whose single has
one compound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.lsa.arithmetic import Design, lsa_inputs, score, shuffled_null, zscores
from cpvae_assets.lsa.moa_groups import NoControlError, moa_groups
from cpvae_assets.schema import CONTROL_LABEL
from cpvae_assets_tests.lsa.test_lsa import planted, profiles

IDENTITY = lambda z: z  # noqa: E731  (latent space = feature space)


def test_control_baseline_predicts_the_control_mean_through_the_same_path() -> None:
    frame, x = planted()
    result = moa_groups(frame)
    design = Design.build(result.membership, result.groups)
    names = [f"f{i}" for i in range(x.shape[1])]
    predictions, distances, _ = score(design, x, x, IDENTITY, names)
    dmso = x[frame["moa"].eq("DMSO").to_numpy()].mean(axis=0)
    control = predictions[predictions["method"] == "control"].set_index("pair")[names]
    assert np.allclose(control.to_numpy(), dmso)  # the same profile for every pair: "no effect"
    real = {p: x[frame["moa"].eq(p).to_numpy()].mean(axis=0) for p in ("A|B", "C|D")}
    rows = distances[distances["method"] == "control"].set_index("pair")
    for pair, mean in real.items():
        assert rows.loc[pair, "l2"] == pytest.approx(np.linalg.norm(dmso - mean))
        assert rows.loc[pair, "expression"] == "mean_x(DMSO)"
    assert rows["shift_pearson"].isna().all()  # no shift from the control: r is undefined
    null = shuffled_null(design, x, x, IDENTITY, permutations=30, seed=0)
    table = zscores(distances, null)
    lsa, ctrl = (table[(table["method"] == m)].set_index("pair") for m in ("lsa", "control"))
    assert (lsa["l2"] < ctrl["l2"] / 10).all()  # additive pairs: LSA far better than "no effect"
    # real DMSO profiles are permuted with the rest: the control's null moves and centres on the grand mean
    assert null[null["method"] == "control"].groupby("pair")["l2"].std().gt(0).all()
    assert ctrl["z"].notna().all()


def zero_signature_splits(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str], np.ndarray]:
    """Planted profiles without DMSO rows, min-max scaled as ``normalised_splits`` stores them."""
    frame, x = planted(seed=seed)
    keep = ~frame["is_control"].to_numpy()
    frame, x = frame[keep].reset_index(drop=True), x[keep]
    names = [f"f{i}" for i in range(x.shape[1])]
    lo, hi = x.min(axis=0), x.max(axis=0)
    scaler = pd.DataFrame({"feature": names, "data_min": lo, "data_max": hi, "clip_low": np.nan, "clip_high": np.nan})
    splits = pd.concat([frame, pd.DataFrame((x - lo) / (hi - lo), columns=names)], axis=1)
    return splits, scaler, names, -lo / (hi - lo)


def test_without_the_option_a_dataset_without_controls_still_fails_clearly() -> None:
    splits, *_ = zero_signature_splits()
    with pytest.raises(NoControlError, match="zero_signature"):
        moa_groups(splits)
    with pytest.raises(ValueError, match="unknown control 'zero'"):
        moa_groups(splits, control="zero")


def test_zero_signature_control_row_is_the_scaled_zero_vector() -> None:
    splits, scaler, names, expected = zero_signature_splits()
    result = moa_groups(splits, control="zero_signature")
    dmso = result.groups.set_index("group").loc[CONTROL_LABEL]
    assert dmso["kind"] == "control" and dmso["profiles"] == 0 and bool(dmso["zero_signature"])
    assert not result.groups.loc[result.groups["group"] != CONTROL_LABEL, "zero_signature"].any()
    membership = pd.DataFrame({"profile_id": splits["profile_id"], "group": result.membership}).dropna()
    projection = np.random.default_rng(1).normal(size=(len(names), 4))
    encode = lambda v: np.asarray(v, np.float64) @ projection  # noqa: E731
    embeddings = splits[["profile_id"]].assign(**{f"z_{i}": c for i, c in enumerate(encode(splits[names].to_numpy()).T)})
    inputs = lsa_inputs(result.groups, membership, splits, embeddings, scaler.iloc[::-1], encode)  # scaler rows by name
    assert len(inputs.features) == len(splits) + 1
    assert np.allclose(inputs.features[-1], expected) and not np.allclose(inputs.features[-1], 0)
    assert np.allclose(inputs.latent[-1], encode(expected[None])[0], atol=1e-5)  # the model's encoding of it
    design = inputs.design
    assert design.labels[-1] == design.control and design.fixed.tolist() == [False] * len(splits) + [True]
    with pytest.raises(ValueError, match="scaler"):
        lsa_inputs(result.groups, membership, splits, embeddings)


def test_zero_signature_null_permutes_compounds_only() -> None:
    splits, scaler, names, expected = zero_signature_splits()
    result = moa_groups(splits, control="zero_signature")
    membership = pd.DataFrame({"profile_id": splits["profile_id"], "group": result.membership}).dropna()
    inputs = lsa_inputs(result.groups, membership, splits, scaler=scaler)
    design, x = inputs.design, inputs.features
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = design.permuted(rng)
        assert labels[-1] == design.control and (labels[:-1] != design.control).all()
        assert sorted(labels) == sorted(design.labels)
    _, distances, _ = score(design, x, x, IDENTITY, names)
    null = shuffled_null(design, x, x, IDENTITY, permutations=40, seed=2)
    control = null[null["method"] == "control"]
    real = distances[distances["method"] == "control"].set_index("pair")["l2"]
    # the control row never moves, so the control baseline's null is its real distance every time
    assert np.allclose(control["l2"], control["pair"].map(real))
    assert null[null["method"] == "lsa"].groupby("pair")["l2"].std().gt(0).all()
    table = zscores(distances, null).set_index(["method", "pair"])
    # a prediction that ignores the labels is never significant, and its z is undefined, not huge
    assert (table.loc["control", "p"] == 1).all() and table.loc["control", "z"].isna().all()
    # LSA against the zero signature: the planted A|B = A + B - DMSO is not A + B - 0, so no miracle;
    # the scaled zero row enters the arithmetic exactly as written
    a, b = (x[:-1][design.labels[:-1] == design.groups.index(g)].mean(axis=0) for g in ("A", "B"))
    lsa = table.loc[("lsa", "A|B")]
    target = x[:-1][design.labels[:-1] == design.groups.index("A|B")].mean(axis=0)
    assert lsa["l2"] == pytest.approx(np.linalg.norm(a - expected + b - target))


def test_datasets_with_controls_keep_the_null_they_had() -> None:
    frame, x = planted()
    result = moa_groups(frame)
    design = Design.build(result.membership, result.groups)
    assert design.fixed is None and not design.zero_signature
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(5):
        assert np.array_equal(design.permuted(a), b.permutation(design.labels))  # DMSO labels permuted too
    moved = [design.permuted(a) for _ in range(10)]
    control_rows = design.labels == design.control
    assert any((m[control_rows] != design.control).any() for m in moved)


def test_pairs_whose_single_has_one_compound_are_kept_and_flagged() -> None:
    frame = profiles(["DMSO", "A", "B", "B", "A|B", "C", "C", "D", "D", "C|D"])
    result = moa_groups(frame)
    table = result.groups.set_index("group")
    assert table.loc["A", "compounds"] == 1 and table.loc["B", "compounds"] == 2
    assert bool(table.loc["A|B", "single_has_one_compound"]) and bool(table.loc["A|B", "singles_present"])
    assert not table.loc["C|D", "single_has_one_compound"]
    assert not table.loc[table["kind"] != "pair", "single_has_one_compound"].any()
    assert len(Design.build(result.membership, result.groups).pairs) == 2  # kept


def test_registry_reads_and_checks_the_control_key(tmp_path: Path) -> None:
    from cpvae_assets.ingestion.registry import RegistryError, dataset_spec

    assert dataset_spec("demo_cp_level5").control == "profiles"
    (tmp_path / "dataset.toml").write_text('extends = "demo_cp_level5"\ncontrol = "zero_signature"\n')
    assert dataset_spec("zscored", tmp_path).control == "zero_signature"
    (tmp_path / "dataset.toml").write_text('extends = "demo_cp_level5"\ncontrol = "none"\n')
    with pytest.raises(RegistryError, match="control 'none'"):
        dataset_spec("zscored", tmp_path)
