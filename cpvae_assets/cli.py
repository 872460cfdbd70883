"""``cpvae``: the command line (fetch LINCS files, query the lake, run the demo). No TensorFlow here."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from cpvae_assets.paths import lake_root

DEMO_DATASETS = ("demo_cp_level5", "demo_cp_level4", "demo_l1000", "lincs_cp_plate", "l1000_ljp005")
REAL_PLATES = {
    "lincs_cp_plate": "lincs_cellpainting_plate_SQ00015054.csv.gz",
    "l1000_ljp005": "l1000_LJP005_A375_24H.gct.gz",
}
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
        config.write_text("telemetry:\n  enabled: false\n")
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


def materialise(datasets: list[str], lake: Path) -> None:
    """Materialise every asset of every dataset partition, in this process, on the real instance."""
    import dagster as dg

    from cpvae_assets.definitions import defs
    from cpvae_assets.partitions import dataset_partitions

    os.environ["CPVAE_LAKE"] = str(lake)
    instance = dg.DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(dataset_partitions.name))
    instance.add_dynamic_partitions(dataset_partitions.name, [d for d in datasets if d not in known])
    graph = defs.resolve_asset_graph()
    assets = list(defs.assets or [])
    per_dataset = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def == dataset_partitions]
    unpartitioned = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is None]
    for dataset in datasets:
        print(f"materialising {dataset} ...", flush=True)
        result = dg.materialize(assets, selection=per_dataset, partition_key=dataset, instance=instance,
                                resources=defs.resources, tags={"cpvae/launched_by": "cpvae demo"})
        if not result.success:
            raise SystemExit(f"materialisation of {dataset} failed")
    if unpartitioned:
        dg.materialize(assets, selection=unpartitioned, instance=instance, resources=defs.resources)


def cmd_demo(args: argparse.Namespace) -> int:
    lake = lake_root(args.lake)
    dagster_home(lake)
    datasets = seed_landing(lake)
    materialise(datasets, lake)
    print()
    return cmd_sql(argparse.Namespace(lake=args.lake, query=SUMMARY_SQL, max_rows=100))


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
