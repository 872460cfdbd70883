"""One Dagster run of the model assets on a small demo: tuning, training, embeddings and QC with their
checks for beta and PCA, a diverging retraining that leaves the stored model alone, every LSA asset
and the cross-dataset summary, and byte-identical embeddings and LSA tables on a re-run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cpvae_assets.storage.paths import DATA_FILE
from cpvae_assets_tests.support.helpers import failure_text, sha256

MODEL_ASSETS = ["tuned_hyperparameters", "trained_models", "training_curves", "latent_embeddings", "generation_qc"]
FAST = {"ops": {"tuned_hyperparameters": {"config": {"trials": 0}},
                "trained_models": {"config": {"epochs": 5, "patience": 5, "n_seeds": 1}},
                "latent_embeddings": {"config": {"export_h5ad": True}}}}


def test_model_assets_end_to_end(lake: Path) -> None:
    import dagster as dg

    from cpvae_assets.definitions import defs
    from cpvae_assets.ingestion.demo_data import DemoConfig, generate_demo
    from cpvae_assets.models.precision import kernel_record
    from cpvae_assets.orchestration.io_manager import LakeIOManager
    from cpvae_assets.orchestration.partitions import dataset_partitions
    from cpvae_assets.orchestration.resources import LakeResource, LincsRemoteResource
    from cpvae_assets.storage.sql import query
    from cpvae_assets.storage.tables import read_table, write_table

    dataset = "demo_cp_level5"
    generate_demo(lake / "landing", DemoConfig(n_single_moas=8, n_pairs=3, n_synergistic=1, compounds_per_moa=3,
                                               plate_maps=2, dmso_per_plate_map=10, replicates=2, n_features=60))
    resources = {"io_manager": LakeIOManager(root=str(lake)), "lake": LakeResource(root=str(lake)),
                 "lincs_remote": LincsRemoteResource()}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, [dataset])
        run = dg.materialize(list(defs.assets), selection=["raw_profiles", "normalised_splits"], partition_key=dataset,
                             instance=instance, resources=resources, raise_on_error=False)
        assert run.success, failure_text(run)

        results = {}
        for model_type in ("beta", "pca"):
            key = dg.MultiPartitionKey({"dataset": dataset, "model_type": model_type})
            # the beta-VAE trains with the opt-in bfloat16 matmul operands: the same assets, the dtype recorded
            config = FAST if model_type == "pca" else {"ops": {**FAST["ops"], "trained_models": {"config": {
                **FAST["ops"]["trained_models"]["config"], "matmul_dtype": "bfloat16"}}}}
            result = dg.materialize(list(defs.assets), selection=MODEL_ASSETS, partition_key=key, instance=instance,
                                    resources=resources, run_config=config, raise_on_error=False)
            assert result.success, failure_text(result)
            checks = result.get_asset_check_evaluations()
            assert {e.check_name for e in checks} == {"real_beats_shuffled", "finite_losses", "one_row_per_profile"}
            assert all(e.passed for e in checks), [(e.check_name, e.metadata) for e in checks if not e.passed]
            results[model_type] = result

        models = lake / "trained_models" / f"dataset={dataset}"
        assert (models / "model_type=beta" / "encoder.keras").is_file()
        assert (models / "model_type=beta" / "decoder.keras").is_file()
        assert (models / "model_type=pca" / "pca.npz").is_file()
        assert not (models / "model_type=pca" / "encoder.keras").exists()
        assert (lake / "latent_embeddings" / f"dataset={dataset}" / "model_type=beta" / "embeddings.h5ad").is_file()

        curves = query(lake, "SELECT dataset, model_type, min(val_loss) AS best FROM training_curves GROUP BY ALL")
        assert set(curves["model_type"]) == {"beta", "pca"} and set(curves["dataset"]) == {dataset}
        assert np.isfinite(curves["best"]).all()
        profiles = query(lake, "SELECT count(*) AS n FROM normalised_splits")["n"][0]
        embedded = query(lake, "SELECT model_type, count(*) AS n FROM latent_embeddings GROUP BY ALL")
        assert dict(zip(embedded["model_type"], embedded["n"])) == {"beta": profiles, "pca": profiles}
        qc = query(lake, "SELECT model_type, reconstruction_mse FROM generation_qc")
        assert set(qc["model_type"]) == {"beta", "pca"}

        beta = results["beta"]
        tuned_meta = beta.asset_materializations_for_node("tuned_hyperparameters")[0].metadata
        assert tuned_meta["source"].value == "paper"
        materialised = {m.asset_key.to_user_string(): m for m in beta.asset_materializations_for_node("trained_models")}
        assert set(materialised) == {"trained_models", "training_curves"}
        assert "data:image/png;base64" in materialised["training_curves"].metadata["curves"].value
        trained_meta = materialised["trained_models"].metadata
        assert trained_meta["val_loss_real"].value < trained_meta["val_loss_shuffled"].value
        assert json.loads(trained_meta["hyperparameters"].value)["matmul_dtype"] == "bfloat16"
        threads = json.loads(trained_meta["tensorflow_threads"].value)  # how the run's TensorFlow threaded
        assert threads["inter_op"] >= 1 and threads["intra_op"] >= 1
        kernels = json.loads(trained_meta["tensorflow_kernels"].value)  # what decides the rounding on this machine
        assert kernels == kernel_record() and isinstance(kernels["tensorflow_onednn"], bool)
        dtypes = query(lake, "SELECT DISTINCT model_type, matmul_dtype FROM trained_models ORDER BY ALL")
        assert dtypes.values.tolist() == [["beta", "bfloat16"], ["pca", None]]  # PCA multiplies no network

        # a retraining that diverges fails the run and leaves the stored model and its summary alone
        partition = models / "model_type=beta"
        stored = {p.name: sha256(p) for p in partition.iterdir() if p.is_file()}
        tuned = lake / "tuned_hyperparameters" / f"dataset={dataset}" / "model_type=beta" / DATA_FILE
        write_table(read_table(tuned).assign(learning_rate=1e6), tuned)
        key = dg.MultiPartitionKey({"dataset": dataset, "model_type": "beta"})
        diverged = dg.materialize(list(defs.assets), selection=["trained_models", "training_curves"], partition_key=key,
                                  instance=instance, resources=resources, run_config={"ops": {"trained_models": FAST["ops"]["trained_models"]}},
                                  raise_on_error=False)
        assert not diverged.success
        text = failure_text(diverged)
        assert "TrainingDiverged" in text and "at epoch 1" in text
        assert {p.name: sha256(p) for p in partition.iterdir() if p.is_file()} == stored

        # latent space arithmetic on the stored models: every LSA asset, then the cross-dataset summary
        lsa_assets = ["moa_means", "lsa_predictions", "lsa_distances", "shuffled_null", "lsa_zscores", "method_comparison"]
        run = dg.materialize(list(defs.assets), selection=["moa_groups"], partition_key=dataset, instance=instance,
                             resources=resources, raise_on_error=False)
        assert run.success, failure_text(run)
        for model_type in ("beta", "pca"):
            key = dg.MultiPartitionKey({"dataset": dataset, "model_type": model_type})
            run = dg.materialize(list(defs.assets), selection=lsa_assets, partition_key=key, instance=instance,
                                 resources=resources, run_config={"ops": {"shuffled_null": {"config": {"permutations": 50}}}},
                                 raise_on_error=False)
            assert run.success, failure_text(run)
            # the verdict per baseline in the run log (3 pairs: too few to compare)
            logged = [e.user_message for e in instance.all_logs(run.run_id) if f"{model_type} LSA vs" in e.user_message]
            assert len(logged) == 4 and all("no comparison" in line for line in logged), logged
        run = dg.materialize(list(defs.assets), selection=["lsa_summary"], instance=instance, resources=resources,
                             run_config={"ops": {"lsa_summary": {"config": {"l1000": "none"}}}}, raise_on_error=False)
        assert run.success, failure_text(run)

        # reproducible: the same stored models and inputs give byte-identical embeddings and LSA tables
        stored = {p: sha256(p) for a in ["latent_embeddings", *lsa_assets] for p in (lake / a).rglob("*.parquet")}
        for model_type in ("beta", "pca"):
            key = dg.MultiPartitionKey({"dataset": dataset, "model_type": model_type})
            again = dg.materialize(list(defs.assets), selection=["latent_embeddings", *lsa_assets], partition_key=key,
                                   instance=instance, resources=resources,
                                   run_config={"ops": {"shuffled_null": {"config": {"permutations": 50}},
                                                       "latent_embeddings": FAST["ops"]["latent_embeddings"]}},
                                   raise_on_error=False)
            assert again.success, failure_text(again)
        assert len(stored) >= 14 and {p: sha256(p) for p in stored} == stored
        zs = query(lake, "SELECT model_type, method, count(*) AS pairs, count(q) AS with_q FROM lsa_zscores GROUP BY ALL")
        assert set(zs["model_type"]) == {"beta", "pca"} and set(zs["method"]) == {"lsa", "feature_arithmetic",
                                                                                 "mean_of_singles", "best_single", "control"}
        assert (zs["pairs"] == 3).all() and (zs["with_q"] == 3).all()  # the three planted pairs
        summary = query(lake, "SELECT * FROM lsa_zscores_summary WHERE method = 'lsa'")
        assert {"additive_called", "non_additive_called"} <= set(summary.columns)
        figure6 = query(lake, "SELECT method_label, real_01 FROM lsa_summary")
        assert {"beta_lsa", "pca_lsa", "feature_arithmetic"} <= set(figure6["method_label"])
        assert figure6["real_01"].between(0, 1).all()
        spread = query(lake, "SELECT seeds FROM lsa_distances WHERE model_type = 'beta' AND method = 'lsa'")
        assert (spread["seeds"] == 1).all()  # n_seeds 1 in this run: one seed model stored
        # copairs' retrieval beside the distances: AP per query, mAP per method, cosine named
        ap = query(lake, "SELECT method, average_precision, ap_p, distance FROM lsa_distances")
        assert ap["average_precision"].between(0, 1).all() and ap["ap_p"].between(0, 1).all()
        assert set(ap["distance"]) == {"cosine"}
        maps = query(lake, "SELECT model_type, method, queries, mean_average_precision FROM lsa_distances_map")
        assert len(maps) == 10 and (maps["queries"] == 3).all()
        # method_comparison: 4 baselines x 3 metrics per model; 3 pairs are too few, so n and the reason only
        comparison = query(lake, "SELECT model_type, baseline, metric, n, mean_difference, ci_low, wilcoxon_p, reason "
                                 "FROM method_comparison")
        assert len(comparison) == 2 * 4 * 3 and set(comparison["baseline"]) == {"feature_arithmetic", "mean_of_singles",
                                                                                "best_single", "control"}
        assert comparison[["mean_difference", "ci_low", "wilcoxon_p"]].isna().all().all()
        assert comparison["reason"].str.contains("3 pair.s. with both values; at least 5").sum() == 2 * 4 * 3 - 2
        undefined = comparison[(comparison["baseline"] == "control") & (comparison["metric"] == "shift_pearson")]
        assert (undefined["n"] == 0).all() and undefined["reason"].str.contains("undefined on every pair").all()
        pairs = query(lake, "SELECT count(*) AS n FROM method_comparison_pairs")["n"][0]
        assert pairs == 2 * 4 * 3 * 3
        summary = query(lake, "SELECT count(*) AS n FROM lsa_summary_method_comparison")["n"][0]
        assert summary == 2 * 4 * 3
