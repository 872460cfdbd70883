"""``cpvae``: the command line (fetch LINCS files, query the lake, run the demo). No TensorFlow here."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cpvae_assets.schema import MATMUL_DTYPES, MODEL_TYPES, PRESETS
from cpvae_assets.storage.paths import lake_root


def cmd_demo(args: argparse.Namespace) -> int:
    from cpvae_assets.cli.demo import run_demo

    return run_demo(args)


def cmd_run(args: argparse.Namespace) -> int:
    from cpvae_assets.cli.demo import run_datasets

    return run_datasets(args)


def cmd_sql(args: argparse.Namespace) -> int:
    from cpvae_assets.cli.sql import print_query

    print_query(lake_root(args.lake), args.query, args.max_rows)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from cpvae_assets.ingestion.registry import dataset_spec
    from cpvae_assets.orchestration.resources import LincsRemoteResource
    from cpvae_assets.storage.lake import Lake

    lake = Lake.at(args.lake)
    remote = LincsRemoteResource(manifest=args.manifest or "", progress=not args.quiet)
    spec = dataset_spec(args.dataset)
    if not spec.remote_files:
        raise SystemExit(f"dataset {args.dataset!r} lists no remote files in the registry")
    for path in remote.fetch(spec, lake.landing(args.dataset)):
        print(f"verified {path}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict the profile of MOA A combined with MOA B in a dataset's latent space."""
    from cpvae_assets.lsa.predict import predict_combination
    from cpvae_assets.models.store import ModelStore
    from cpvae_assets.storage.lake import Lake

    lake = Lake.at(args.lake)
    splits = lake.table("normalised_splits", args.dataset)
    embeddings = lake.table("latent_embeddings", args.dataset, args.model_type)
    model = ModelStore(lake).load(args.dataset, args.model_type)
    result = predict_combination(model, splits, embeddings, args.moa_a, args.moa_b, args.top)
    print(f"{args.dataset} / {args.model_type}: {result.expression}")
    print("observed in the dataset" if result.observed else "no compound in the dataset has this combination")
    print("\nnearest compounds (L2 in the scaled feature space):")
    print(result.nearest_compounds.to_string(index=False))
    note = f" ({result.unannotated_profiles} profiles without an MOA annotation are in no group)" \
        if result.unannotated_profiles else ""
    print(f"\nnearest MOA groups{note}:")
    print(result.nearest_groups.to_string(index=False))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cpvae_assets.ingestion.registry import dataset_spec
    from cpvae_assets.report import write_report
    from cpvae_assets.storage.lake import Lake

    lake = Lake.at(args.lake)
    kind = dataset_spec(args.dataset, lake.landing(args.dataset)).kind
    target = Path(args.output or f"cpvae_report_{args.dataset}.html")
    provenance, runs = _provenance(lake.root, args.dataset)
    path = write_report(lake, args.dataset, kind, target, provenance, args.overwrite, runs)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained: open it in any browser)")
    return 0


def _provenance(lake: Path, dataset: str) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """What the Dagster instance of the demo and the UI recorded: ingestion and the run of each table."""
    home = Path(os.environ.get("DAGSTER_HOME") or lake / "dagster_home")
    if not (home / "dagster.yaml").is_file():
        return {"landing": f"no Dagster instance at {home}"}, {}
    import dagster as dg

    from cpvae_assets.orchestration.provenance import landing_provenance, run_ids
    from cpvae_assets.report.collect import report_inputs

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        return landing_provenance(instance, dataset), run_ids(instance, dataset, report_inputs())


def cmd_export(args: argparse.Namespace) -> int:
    from cpvae_assets.report.export import export
    from cpvae_assets.storage.lake import Lake

    for path in export(Lake.at(args.lake), args.dataset, args.model_type, args.format, Path(args.output), args.overwrite):
        print(f"wrote {path}")
    return 0


WORKERS_HELP = ("runs at once, each in a worker process (default: the usable cores, at most 2); "
                "1 runs them one after another in this process")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="cpvae", description=__doc__)
    top.add_argument("--lake", default=None, help="data lake root (default: $CPVAE_LAKE or ./data_lake)")
    sub = top.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the demo data, materialise every asset, print a summary")
    demo.add_argument("-v", "--verbose", action="store_true", help="print every Dagster event as well")
    demo.add_argument("--workers", type=_positive, default=None, help=WORKERS_HELP)
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="materialise datasets already in landing, at a preset's budget")
    run.add_argument("datasets", nargs="+")
    run.add_argument("--preset", default="demo", choices=PRESETS, help="tuning and training budget (defs/jobs.py)")
    run.add_argument("--model-types", nargs="+", default=list(MODEL_TYPES), choices=MODEL_TYPES)
    run.add_argument("--matmul-dtype", default="float32", choices=MATMUL_DTYPES,
                     help="operands of the training's matrix products (bfloat16: faster on CPUs with bf16 units)")
    run.add_argument("-v", "--verbose", action="store_true", help="print every Dagster event as well")
    run.add_argument("--workers", type=_positive, default=None, help=WORKERS_HELP)
    run.set_defaults(func=cmd_run)
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
    predict.add_argument("--model-type", default="beta", choices=MODEL_TYPES)
    predict.add_argument("--top", type=int, default=5)
    predict.set_defaults(func=cmd_predict)
    report = sub.add_parser("report", help="write one self-contained HTML report of a dataset")
    report.add_argument("dataset")
    report.add_argument("-o", "--output", default=None, help="HTML file (default: cpvae_report_<dataset>.html)")
    report.add_argument("--overwrite", action="store_true", help="replace an existing file")
    report.set_defaults(func=cmd_report)
    export = sub.add_parser("export", help="write latent embeddings and LSA predictions as AnnData (.h5ad)")
    export.add_argument("dataset")
    export.add_argument("model_type", choices=MODEL_TYPES)
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
