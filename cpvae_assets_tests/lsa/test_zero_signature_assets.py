"""A dataset of z-scored signatures without control rows, through Dagster: its landing folder's
``dataset.toml`` sets ``control = "zero_signature"``; the LSA assets put the scaled zero signature in
the place of DMSO and permute the compounds' labels only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cpvae_assets_tests.support.helpers import failure_text

DATASET = "demo_zscored"
FAST = {"ops": {"tuned_hyperparameters": {"config": {"trials": 0}},
                "trained_models": {"config": {"epochs": 3, "patience": 3, "n_seeds": 1}},
                "shuffled_null": {"config": {"permutations": 30}},
                "latent_space_arithmetic": {"config": {"retrieval_null_size": 500}}}}
ASSETS = ["tuned_hyperparameters", "trained_models", "training_curves", "latent_embeddings", "moa_means",
          "lsa_predictions", "lsa_distances", "shuffled_null", "lsa_zscores", "method_comparison"]


def zscored_landing(lake: Path) -> None:
    """The demo's Cell Painting consensus profiles as z-scores against DMSO, DMSO rows dropped."""
    from cpvae_assets.ingestion.demo_data import DemoConfig, generate_demo

    folders = generate_demo(lake / "landing", DemoConfig(n_single_moas=8, n_pairs=3, n_synergistic=1, compounds_per_moa=3,
                                                         plate_maps=2, dmso_per_plate_map=10, replicates=2, n_features=40))
    frame = pd.read_csv(next(folders["demo_cp_level5"].glob("*.csv.gz")))
    features = [c for c in frame.columns if not c.startswith("Metadata_")]
    dmso = frame["Metadata_broad_sample"].fillna("").isin(["DMSO", ""])
    centre, spread = frame.loc[dmso, features].mean(), frame.loc[dmso, features].std()
    frame[features] = (frame[features] - centre) / spread
    target = lake / "landing" / DATASET
    target.mkdir()
    frame[~dmso].to_csv(target / "signatures.csv.gz", index=False)
    (target / "dataset.toml").write_text('extends = "demo_cp_level5"\ncontrol = "zero_signature"\n')


def test_zero_signature_dataset_end_to_end(lake: Path) -> None:
    import dagster as dg

    from cpvae_assets.definitions import defs
    from cpvae_assets.orchestration.partitions import dataset_partitions
    from cpvae_assets.storage.sql import query
    from cpvae_assets_tests.support.dagster_runs import resources as lake_resources

    zscored_landing(lake)
    resources = lake_resources(lake)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, [DATASET])
        run = dg.materialize(list(defs.assets), selection=["raw_profiles", "normalised_splits", "moa_groups"],
                             partition_key=DATASET, instance=instance, resources=resources, raise_on_error=False)
        assert run.success, failure_text(run)
        key = dg.MultiPartitionKey({"dataset": DATASET, "model_type": "pca"})
        run = dg.materialize(list(defs.assets), selection=ASSETS, partition_key=key, instance=instance,
                             resources=resources, run_config=FAST, raise_on_error=False)
        assert run.success, failure_text(run)
        meta = {m.asset_key.to_user_string(): m.metadata for m in run.get_asset_materialization_events()
                for m in [m.event_specific_data.materialization]}
    assert meta["shuffled_null"]["permuted"].value.startswith("compound labels only")
    assert meta["lsa_distances"]["zero_signature_control"].value is True

    control = query(lake, "SELECT kind, profiles, zero_signature FROM moa_groups WHERE \"group\" = 'DMSO'")
    assert control.to_dict("records") == [{"kind": "control", "profiles": 0, "zero_signature": True}]
    # the control baseline's prediction is the zero signature after scaling: (0 - min) / (max - min), not 0
    scaler = query(lake, "SELECT feature, data_min, data_max FROM normalised_splits_scaler").set_index("feature")
    predicted = query(lake, "SELECT * FROM lsa_predictions WHERE method = 'control' LIMIT 1")
    expected = -scaler["data_min"] / (scaler["data_max"] - scaler["data_min"])
    assert np.allclose(predicted[expected.index].to_numpy(np.float64)[0], expected.to_numpy(), atol=1e-5)
    assert not np.allclose(expected, 0)
    # the control row never moves under permutation: the control's null is constant, its p is 1
    null = query(lake, "SELECT pair, max(l2) - min(l2) AS span, avg(l2) AS l2 FROM shuffled_null "
                       "WHERE method = 'control' GROUP BY pair")
    assert (null["span"] < 1e-4 * null["l2"]).all()
    zs = query(lake, "SELECT method, p, z FROM lsa_zscores WHERE method IN ('control', 'lsa')")
    assert (zs.loc[zs["method"] == "control", "p"] == 1).all() and zs.loc[zs["method"] == "control", "z"].isna().all()
    assert zs.loc[zs["method"] == "lsa", "z"].notna().all()
    comparison = query(lake, "SELECT baseline, metric, n FROM method_comparison")
    assert len(comparison) == 12 and (comparison["n"] <= 3).all()
