"""``cpvae``: the command line (fetch LINCS files, query the lake, run the demo). No TensorFlow here."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from cpvae_assets.paths import lake_root, project_root

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
    from cpvae_assets.demo_data import generate_demo
    from cpvae_assets.lake import atomic_path
    from cpvae_assets.paths import landing_dir
    from cpvae_assets.registry import DATA_DIR

    generate_demo(lake / "landing")
    for dataset, file_name in REAL_PLATES.items():
        target = landing_dir(lake, dataset) / file_name
        with atomic_path(target) as tmp:
            shutil.copyfile(DATA_DIR / "real" / file_name, tmp)
    return list(DEMO_DATASETS)


def materialise(datasets: list[str], lake: Path, model_types: tuple[str, ...] | None = None) -> list[str]:
    """Materialise every asset of every dataset (and dataset x model type) partition, in this
    process, on the real instance, so the runs show in the UI. Returns the partitions that failed
    (the others still run: one failed check does not hide the rest)."""
    import dagster as dg

    from cpvae_assets.definitions import defs
    from cpvae_assets.partitions import (
        MODEL_TYPES,
        dataset_model_partitions,
        dataset_partitions,
    )

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
                                    tags={"cpvae/launched_by": "cpvae demo"})
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


def cmd_demo(args: argparse.Namespace) -> int:
    lake = lake_root(args.lake)
    dagster_home(lake)
    datasets = seed_landing(lake)
    started = time.perf_counter()
    failed = materialise(datasets, lake)
    print(f"\nmaterialised {len(datasets)} datasets in {time.perf_counter() - started:.0f} s\n")
    cmd_sql(argparse.Namespace(lake=args.lake, query=SUMMARY_SQL, max_rows=100))
    if (lake / "training_curves").exists():
        print()
        cmd_sql(argparse.Namespace(lake=args.lake, query=MODEL_SUMMARY_SQL, max_rows=100))
    if failed:
        print(f"\n{len(failed)} partition(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    import pandas as pd

    from cpvae_assets.sql import query

    frame = query(lake_root(args.lake), args.query)
    with pd.option_context("display.max_rows", args.max_rows, "display.max_columns", 30, "display.width", 200):
        print(frame.to_string(index=False, max_rows=args.max_rows))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from cpvae_assets.paths import landing_dir
    from cpvae_assets.registry import dataset_spec
    from cpvae_assets.resources import LincsRemoteResource

    lake = lake_root(args.lake)
    remote = LincsRemoteResource(manifest=args.manifest or "", progress=not args.quiet)
    spec = dataset_spec(args.dataset)
    if not spec.remote_files:
        raise SystemExit(f"dataset {args.dataset!r} lists no remote files in the registry")
    for path in remote.fetch(spec, landing_dir(lake, args.dataset)):
        print(f"verified {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict the profile of MOA A combined with MOA B in a dataset's latent space."""
    from cpvae_assets.lake import read_table
    from cpvae_assets.lsa.predict import predict_combination
    from cpvae_assets.models.latent import load_model
    from cpvae_assets.paths import partition_dir

    lake = lake_root(args.lake)
    splits_path = partition_dir(lake, "normalised_splits", args.dataset) / "data.parquet"
    embeddings_path = partition_dir(lake, "latent_embeddings", args.dataset, args.model_type) / "data.parquet"
    for path in (splits_path, embeddings_path):
        if not path.exists():
            raise FileNotFoundError(f"{path}: materialise it first (make demo, or the Dagster UI)")
    model = load_model(partition_dir(lake, "trained_models", args.dataset, args.model_type), args.model_type)
    result = predict_combination(model, read_table(splits_path), read_table(embeddings_path), args.moa_a, args.moa_b, args.top)
    print(f"{args.dataset} / {args.model_type}: {result.expression}")
    print("observed in the dataset" if result.observed else "no compound in the dataset has this combination")
    print("\nnearest compounds (L2 in the scaled feature space):")
    print(result.nearest_compounds.to_string(index=False))
    print("\nnearest MOA groups:")
    print(result.nearest_groups.to_string(index=False))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cpvae_assets.registry import dataset_spec
    from cpvae_assets.report import write_report

    lake = lake_root(args.lake)
    kind = dataset_spec(args.dataset, lake / "landing" / args.dataset).kind
    target = Path(args.output or f"cpvae_report_{args.dataset}.html")
    provenance, runs = _provenance(lake, args.dataset)
    path = write_report(lake, args.dataset, kind, target, provenance, args.overwrite, runs)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained: open it in any browser)")
    return 0


def _provenance(lake: Path, dataset: str) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """What the Dagster instance of the demo and the UI recorded: ingestion and the run of each table."""
    home = Path(os.environ.get("DAGSTER_HOME") or lake / "dagster_home")
    if not (home / "dagster.yaml").is_file():
        return {"landing": f"no Dagster instance at {home}"}, {}
    import dagster as dg

    from cpvae_assets.report.collect import report_inputs
    from cpvae_assets.report.provenance import landing_provenance, run_ids

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        return landing_provenance(instance, dataset), run_ids(instance, dataset, report_inputs())


def cmd_export(args: argparse.Namespace) -> int:
    from cpvae_assets.export import export

    for path in export(lake_root(args.lake), args.dataset, args.model_type, args.format, Path(args.output), args.overwrite):
        print(f"wrote {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cpvae", description=__doc__)
    top.add_argument("--lake", default=None, help="data lake root (default: $CPVAE_LAKE or ./data_lake)")
    sub = top.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the demo data, materialise every asset, print a summary")
    demo.set_defaults(func=cmd_demo)
    sql = sub.add_parser("sql", help="run a read-only SQL query over the lake's catalog")
    sql.add_argument("query")
    sql.add_argument("--max-rows", type=int, default=200)
    sql.set_defaults(func=cmd_sql)
    fetch = sub.add_parser("fetch", help="download a registered LINCS dataset into its landing folder")
    fetch.add_argument("dataset")
    fetch.add_argument("--manifest", default=None, help="manifest TSV (default: the shipped LINCS manifest)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(func=cmd_fetch)
    predict = sub.add_parser("predict", help="predict the profile of MOA A combined with MOA B (latent space arithmetic)")
    predict.add_argument("moa_a")
    predict.add_argument("moa_b")
    predict.add_argument("--dataset", default="demo_cp_level5")
    predict.add_argument("--model-type", default="beta", choices=["vanilla", "beta", "mmd", "pca"])
    predict.add_argument("--top", type=int, default=5)
    predict.set_defaults(func=cmd_predict)
    report = sub.add_parser("report", help="write one self-contained HTML report of a dataset")
    report.add_argument("dataset")
    report.add_argument("-o", "--output", default=None, help="HTML file (default: cpvae_report_<dataset>.html)")
    report.add_argument("--overwrite", action="store_true", help="replace an existing file")
    report.set_defaults(func=cmd_report)
    export = sub.add_parser("export", help="write latent embeddings and LSA predictions as AnnData (.h5ad)")
    export.add_argument("dataset")
    export.add_argument("model_type", choices=["vanilla", "beta", "mmd", "pca"])
    export.add_argument("--format", default="h5ad", choices=["h5ad"])
    export.add_argument("-o", "--output", default=".", help="folder for the two files (default: here)")
    export.add_argument("--overwrite", action="store_true", help="replace existing files")
    export.set_defaults(func=cmd_export)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:
        if not isinstance(exc, (ValueError, RuntimeError, OSError)) and "duckdb" not in type(exc).__module__:
            raise
        print(f"cpvae {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
