"""``cpvae demo`` and ``cpvae run``: launch the plan of runs of ``defs/jobs.py`` in this process, on the
Dagster instance (so every run and its events show in the UI), with a progress view instead of every
event; the full log goes to a file under ``<lake>/logs/``."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import time
from pathlib import Path

from cpvae_assets.storage.paths import PACKAGE_DATA, lake_root, project_root

DEMO_DATASETS = ("demo_cp_level5", "demo_cp_level4", "demo_l1000", "lincs_cp_plate", "l1000_ljp005",
                 "l1000_consensus")
# real files shipped in cpvae_assets/data/real, copied into landing under their registry names
REAL_PLATES = {
    "lincs_cp_plate": "lincs_cellpainting_plate_SQ00015054.csv.gz",
    "l1000_ljp005": "l1000_LJP005_A375_24H.gct.gz",
    "l1000_consensus": "l1000_consensus_drugbank.tsv.gz",
}
LOG_FOLDER = "logs"


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
    """Write the demo datasets and copy the real plates into the landing folder."""
    from cpvae_assets.ingestion.demo_data import generate_demo

    generate_demo(lake / "landing")
    for dataset in REAL_PLATES:
        land_real(lake, dataset)
    return list(DEMO_DATASETS)


def land_real(lake: Path, dataset: str) -> Path:
    """Copy a real file shipped in the package into its dataset's landing folder."""
    from cpvae_assets.storage.lake import Lake
    from cpvae_assets.storage.tables import atomic_path

    file_name = REAL_PLATES[dataset]
    with atomic_path(Lake(lake).landing(dataset) / file_name) as tmp:
        shutil.copyfile(PACKAGE_DATA / "real" / file_name, tmp)
    return Lake(lake).landing(dataset) / file_name


def execute(runs: list, lake: Path, command: str, verbose: bool = False, workers: int | None = None) -> list[str]:
    """Launch ``runs`` (``defs.jobs.plan``), at most ``workers`` at once (default ``workers.default_workers``),
    each once the runs it reads are done; returns the runs that failed (the others still run, except
    the runs of a dataset whose inputs failed)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    import dagster as dg
    from rich.console import Console

    from cpvae_assets.cli.progress import RunProgress, duration, grouped_warnings
    from cpvae_assets.cli.summary import lsa_verdicts, print_summary
    from cpvae_assets.cli.workers import Launcher, default_workers
    from cpvae_assets.definitions import defs
    from cpvae_assets.lsa.summary import NOT_BEATEN
    from cpvae_assets.orchestration.partitions import dataset_partitions, partition_dimensions
    from cpvae_assets.orchestration.tags import LAUNCHED_BY_TAG

    os.environ["CPVAE_LAKE"] = str(lake)  # before any worker starts: they inherit the environment
    workers = workers or default_workers()
    instance = dg.DagsterInstance.get()
    dataset_of = [partition_dimensions(r.partition).get("dataset") if r.partition else None for r in runs]
    datasets = list(dict.fromkeys(d for d in dataset_of if d))
    known = set(instance.get_dynamic_partitions(dataset_partitions.name))
    instance.add_dynamic_partitions(dataset_partitions.name, [d for d in datasets if d not in known])
    steps_of = {name: len(defs.resolve_job_def(name).nodes) for name in dict.fromkeys(r.job for r in runs)}
    total_steps = sum(steps_of[r.job] for r in runs)
    loggers = {"python": {}} | ({"console": {"config": {"log_level": "DEBUG"}}} if verbose else {})
    tags = {LAUNCHED_BY_TAG: f"cpvae {command}"}
    slug = re.sub(r"[^A-Za-z0-9_.]+", "-", command).strip("-")  # "run --preset demo" -> run-preset-demo
    log_file = lake / LOG_FOLDER / f"cpvae-{slug}-{dt.datetime.now():%Y%m%d-%H%M%S}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    console = Console(highlight=False)
    if not console.is_terminal:  # a log or a pipe: wide enough for the summary table, no wrapping
        console = Console(highlight=False, width=max(console.width, 120))
    console.print(f"cpvae {command}: {len(datasets)} dataset(s), {len(runs)} runs, {workers} at a time, on the Dagster "
                  f"instance {instance.root_directory}\nfull log: {log_file}", soft_wrap=True)  # a path is never broken
    started, failed, skipped = time.monotonic(), [], set()
    first_start: dict[str, float] = {}
    state: dict[int, bool] = {}  # position in the plan -> succeeded (skipped runs count as failed)
    pending, running = list(range(len(runs))), {}
    with RunProgress(console, total_steps, len(runs), log_file, live=console.is_terminal and not verbose) as progress, \
            Launcher(workers, (progress, progress.file)) as launcher:
        progress.datasets = datasets
        while pending or running:
            for i in [i for i in pending if all(j in state for j in runs[i].after)]:  # in plan order
                run, dataset = runs[i], dataset_of[i]
                if dataset in skipped:
                    pending.remove(i)
                    state[i] = False
                    progress.advance_skipped()
                elif len(running) < workers:
                    pending.remove(i)
                    progress.start_run(run.label)
                    if dataset:
                        first_start.setdefault(dataset, time.monotonic())
                    running[launcher.submit(run.job, run.partition, run.ops, run.label, loggers, tags)] = i
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                run, dataset = runs[i], dataset_of[i]
                try:
                    success, run_id = future.result()
                    where = f"run {run_id}"
                except Exception as exc:  # noqa: BLE001  (a worker that died: no Dagster run to point to)
                    success, where = False, f"{type(exc).__name__}: {exc}"
                state[i] = success
                progress.end_run(run.label)
                if not success:
                    failed.append(f"{run.label} ({where})")
                    if run.job == "dataset_inputs":
                        skipped.add(dataset)
                if run.job == "dataset_report":  # the last run of a dataset
                    mark = "failed" if any(f.startswith(f"{dataset} ") for f in failed) else "done"
                    progress.line(f"{mark:>6}  {dataset:<24} {duration(time.monotonic() - first_start[dataset]):>12}")
    elapsed = time.monotonic() - started
    per_dataset = f" ({duration(elapsed / len(datasets))} per dataset)" if len(datasets) > 1 else ""
    console.print(f"\n{len(runs)} runs in {duration(elapsed)}{per_dataset}" + (f", {len(failed)} failed" if failed else ""))
    print_summary(console, lake, datasets)
    findings = lsa_verdicts(lake, datasets) + grouped_warnings(progress.warnings, summarised=(NOT_BEATEN,))
    if findings:
        console.print(f"\nWarnings that matter (full text in {log_file.name}):")
        for text in findings:
            console.print(f"  - {text}")
    if failed:
        console.print("\nFailed runs (open them in the Dagster UI, or read the log):")
        for text in failed:
            console.print(f"  - {text}")
    return failed


def run_demo(args: argparse.Namespace) -> int:
    from cpvae_assets.defs.jobs import plan

    lake = lake_root(args.lake)
    dagster_home(lake)
    datasets = seed_landing(lake)
    return 1 if execute(plan(datasets, "demo"), lake, "demo", args.verbose, args.workers) else 0


def run_datasets(args: argparse.Namespace) -> int:
    """``cpvae run <dataset>...``: materialise datasets already in landing at a preset's budget."""
    from cpvae_assets.defs.jobs import plan
    from cpvae_assets.storage.lake import Lake

    lake = lake_root(args.lake)
    dagster_home(lake)
    for dataset in args.datasets:  # a real dataset shipped with the package lands itself the first time
        if dataset in REAL_PLATES and not Lake(lake).landing(dataset).is_dir():
            print(f"{dataset}: landed the packaged file {land_real(lake, dataset)}")
    absent = [d for d in args.datasets if not Lake(lake).landing(d).is_dir()]
    if absent:
        raise FileNotFoundError(f"no landing folder for {', '.join(absent)} under {lake / 'landing'}: "
                                "put the profile files there first")
    runs = plan(list(args.datasets), args.preset, tuple(args.model_types), leave_out=False, matmul_dtype=args.matmul_dtype)
    dtype = f" --matmul-dtype {args.matmul_dtype}" if args.matmul_dtype != "float32" else ""
    return 1 if execute(runs, lake, f"run --preset {args.preset}{dtype}", args.verbose, args.workers) else 0
