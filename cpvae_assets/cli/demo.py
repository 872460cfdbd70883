"""``cpvae demo``: write the demo data, materialise every asset of every dataset, print a summary."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from cpvae_assets.cli.sql import print_query
from cpvae_assets.orchestration.tags import LAUNCHED_BY_TAG
from cpvae_assets.storage.paths import PACKAGE_DATA, lake_root, project_root

DEMO_DATASETS = ("demo_cp_level5", "demo_cp_level4", "demo_l1000", "lincs_cp_plate", "l1000_ljp005")
REAL_PLATES = {
    "lincs_cp_plate": "lincs_cellpainting_plate_SQ00015054.csv.gz",
    "l1000_ljp005": "l1000_LJP005_A375_24H.gct.gz",
}
# the small tuning budget of the demo: a real run sets trials to tens (the paper's budget)
DEMO_RUN_CONFIG = {
    "tuned_hyperparameters": {"config": {"trials": 1, "epochs_per_trial": 4, "beta_grid": [0.06, 0.3, 1.0, 10.0],
                                         "lambda_grid": [1.0, 1e1, 1e2, 1e3]}},
    "trained_models": {"config": {"epochs": 20, "patience": 6, "n_seeds": 2}},
}
ON_DEMAND = {"leave_moa_out": ("demo_cp_level5", "beta")}
AFTER_MODELS = ("report",)
MODEL_SUMMARY_SQL = """
SELECT dataset, model_type,
       min(val_loss) FILTER (WHERE role = 'real') AS val_loss_real,
       min(val_loss) FILTER (WHERE role = 'shuffled') AS val_loss_shuffled,
       max(epoch) AS epochs
FROM training_curves GROUP BY ALL ORDER BY ALL
"""
SUMMARY_SQL = """
WITH counts AS (
    SELECT dataset, split, count(*) AS profiles, count(DISTINCT compound) AS compounds
    FROM normalised_splits GROUP BY ALL
)
SELECT *, round(100.0 * profiles / sum(profiles) OVER (PARTITION BY dataset), 1) AS percent
FROM counts ORDER BY dataset, split
"""


def dagster_home(lake: Path) -> Path:
    """``$DAGSTER_HOME``, or a folder inside the lake so the UI sees the runs of ``cpvae demo``."""
    home = Path(os.environ.get("DAGSTER_HOME") or lake / "dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        local = project_root() / "deploy" / "dagster.local.yaml"  # training pool limit, telemetry off
        config.write_text(local.read_text() if local.is_file() else "telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def seed_landing(lake: Path) -> list[str]:
    """Write the demo datasets and copy the two real plates into the landing folder."""
    from cpvae_assets.ingestion.demo_data import generate_demo
    from cpvae_assets.storage.lake import Lake
    from cpvae_assets.storage.tables import atomic_path

    generate_demo(lake / "landing")
    for dataset, file_name in REAL_PLATES.items():
        target = Lake(lake).landing(dataset) / file_name
        with atomic_path(target) as tmp:
            shutil.copyfile(PACKAGE_DATA / "real" / file_name, tmp)
    return list(DEMO_DATASETS)


def materialise(datasets: list[str], lake: Path, model_types: tuple[str, ...] | None = None) -> list[str]:
    """Materialise every asset of every dataset (and dataset x model type) partition, in this
    process, on the real instance, so the runs show in the UI. Returns the partitions that failed
    (the others still run: one failed check does not hide the rest)."""
    import dagster as dg

    from cpvae_assets.definitions import defs
    from cpvae_assets.orchestration.partitions import dataset_model_partitions, dataset_partitions
    from cpvae_assets.schema import MODEL_TYPES

    os.environ["CPVAE_LAKE"] = str(lake)
    instance = dg.DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(dataset_partitions.name))
    instance.add_dynamic_partitions(dataset_partitions.name, [d for d in datasets if d not in known])
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets or [])
    # per-dataset assets that summarise the model partitions run after them
    last = {dg.AssetKey(name) for name in AFTER_MODELS}
    per_dataset = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def == dataset_partitions and k not in last]
    # retrains a model per partition: the demo runs it once (ON_DEMAND), a user from the UI
    on_demand = {dg.AssetKey(name) for name in ON_DEMAND}
    per_model = [k for k in graph.get_all_asset_keys()
                 if graph.get(k).partitions_def == dataset_model_partitions and k not in on_demand]
    unpartitioned = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is None]
    ops = {name: cfg for name, cfg in DEMO_RUN_CONFIG.items() if dg.AssetKey(name) in per_model}
    failed: list[str] = []
    for dataset in datasets:
        started = time.perf_counter()
        print(f"materialising {dataset} ...", flush=True)
        keys = [(dataset, per_dataset, None)]
        keys += [(dg.MultiPartitionKey({"dataset": dataset, "model_type": m}), per_model, {"ops": ops})
                 for m in (model_types or MODEL_TYPES) if per_model]
        keys += [(dataset, sorted(last & set(graph.get_all_asset_keys())), None)]
        for key, selection, run_config in keys:
            result = dg.materialize(assets, selection=selection, partition_key=key, instance=instance,
                                    resources=defs.resources, run_config=run_config, raise_on_error=False,
                                    tags={LAUNCHED_BY_TAG: "cpvae demo"})
            if not result.success:
                failed.append(str(key))
                print(f"  FAILED: {key} (run {result.run_id}; see the Dagster UI or the log above)", flush=True)
                if selection is per_dataset:
                    break
        print(f"  {dataset}: {time.perf_counter() - started:.0f} s", flush=True)
    for name, (dataset, model_type) in ON_DEMAND.items():
        if dataset in datasets and dg.AssetKey(name) in graph.get_all_asset_keys():
            key = dg.MultiPartitionKey({"dataset": dataset, "model_type": model_type})
            result = dg.materialize(assets, selection=[dg.AssetKey(name)], partition_key=key, instance=instance,
                                    resources=defs.resources, raise_on_error=False)
            if not result.success:
                failed.append(f"{name} {key}")
    if unpartitioned:
        result = dg.materialize(assets, selection=unpartitioned, instance=instance, resources=defs.resources,
                                raise_on_error=False)
        if not result.success:
            failed.append("remote_files")
    return failed


def run_demo(args: argparse.Namespace) -> int:
    lake = lake_root(args.lake)
    dagster_home(lake)
    datasets = seed_landing(lake)
    started = time.perf_counter()
    failed = materialise(datasets, lake)
    print(f"\nmaterialised {len(datasets)} datasets in {time.perf_counter() - started:.0f} s\n")
    print_query(lake, SUMMARY_SQL, 100)
    if (lake / "training_curves").exists():
        print()
        print_query(lake, MODEL_SUMMARY_SQL, 100)
    if failed:
        print(f"\n{len(failed)} partition(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


