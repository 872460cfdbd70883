#!/usr/bin/env python
"""Refresh latency on the daemon path, against the same dataset materialised in one process.

Starts ``dg dev`` (webserver and daemon) on 127.0.0.1 with a fresh ``DAGSTER_HOME`` and lake, drops a
real plate into a fresh landing folder, and measures the seconds from the drop to the last
materialisation of that dataset's partitions (every asset of the plan: inputs, the four model types,
the report), with nothing launched by hand: the landing sensor and whatever follows. Then, in the same
run, ``cpvae run <dataset>`` on another fresh lake (the same plan in one process) for the ratio.
Counts runs, processes started (run workers and step workers) and duplicates (an asset partition
materialised more than once for one change).

    .venv/bin/python bench/refresh.py [--dataset lincs_cp_plate] [--quick] [--timeout 3600]

``--quick`` (the smoke test) uses PCA only and a quarter of the plate.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402

ROOT = BENCH.parent
BIN = Path(sys.executable).parent
PLATES = {"lincs_cp_plate": "lincs_cellpainting_plate_SQ00015054.csv.gz", "l1000_ljp005": "l1000_LJP005_A375_24H.gct.gz"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_instance(folder: Path, model_types: list[str]) -> dict[str, str]:
    home, lake = folder / "dagster_home", folder / "lake"
    home.mkdir(parents=True)
    lake.mkdir()
    shutil.copyfile(ROOT / "deploy" / "dagster.local.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CPVAE_LAKE": str(lake), "CPVAE_REFRESH_PRESET": "demo",
           "CPVAE_REFRESH_MODEL_TYPES": ",".join(model_types)}
    env.pop("CPVAE_EXECUTOR", None)
    return env


def drop_plate(lake: Path, dataset: str, rows: int | None) -> None:
    """The plate into ``landing/<dataset>/``, renamed into place so the sensor never sees half a file."""
    from cpvae_assets.storage.paths import PACKAGE_DATA

    source = PACKAGE_DATA / "real" / PLATES[dataset]
    folder = lake / "landing" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{source.name}.part"
    if rows is None:
        shutil.copyfile(source, tmp)
        os.replace(tmp, folder / source.name)
    else:  # a smaller plate, still real profiles: the first rows
        import pandas as pd

        target = folder / "plate.csv"
        pd.read_csv(source, dtype=str).head(rows).to_csv(tmp, index=False)
        os.replace(tmp, target)


def expected(dataset: str, model_types: list[str]) -> set[tuple[str, str]]:
    from cpvae_assets.defs.jobs import DATASET_ASSETS, MODEL_ASSETS, REPORT_ASSETS

    keys = {(a, dataset) for a in (*DATASET_ASSETS, *REPORT_ASSETS)}
    return keys | {(a, f"{dataset}|{m}") for a in MODEL_ASSETS for m in model_types}


def materialised_after(instance, keys: set[tuple[str, str]], since: float) -> dict[tuple[str, str], list[float]]:
    import dagster as dg

    found: dict[tuple[str, str], list[float]] = {}
    for asset, partition in keys:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition], after_timestamp=since),
            limit=100).records
        found[(asset, partition)] = sorted(r.timestamp for r in records)
    return found


def daemon_path(folder: Path, dataset: str, rows: int | None, model_types: list[str], timeout: float) -> dict:
    import dagster as dg

    env = fresh_instance(folder, model_types)
    os.environ.update({k: env[k] for k in ("DAGSTER_HOME", "CPVAE_LAKE")})
    dg.DagsterInstance.get().dispose()  # create the instance's tables before two processes race to
    port = free_port()
    log = open(folder / "dg-dev.log", "w")
    server = subprocess.Popen([str(BIN / "dg"), "dev", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:  # the webserver answers once the code location has loaded
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dg dev did not start; see {folder / 'dg-dev.log'}") from None
                time.sleep(1)
        time.sleep(10)  # the daemon's first sensor tick registers the sensors' cursors
        keys = expected(dataset, model_types)
        dropped = time.time()
        drop_plate(Path(env["CPVAE_LAKE"]), dataset, rows)
        with dg.DagsterInstance.get() as instance:
            while True:
                try:
                    found = materialised_after(instance, keys, dropped)
                except Exception as exc:  # SQLite storage busy with the daemon's writes: ask again
                    print(f"  (retrying a read: {type(exc).__name__})", flush=True)
                    time.sleep(2)
                    continue
                active = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING,
                                                                    dg.DagsterRunStatus.STARTED]))
                if all(found.values()) and not active:
                    break
                if time.time() - dropped > timeout:
                    raise RuntimeError(f"not refreshed after {timeout:.0f} s: missing "
                                       f"{sorted(k for k, v in found.items() if not v)[:5]}")
                time.sleep(2)
            time.sleep(15)  # anything launched late (a duplicate) would show now
            found = materialised_after(instance, keys, dropped)
            runs = [record.dagster_run for record in instance.get_run_records(
                dg.RunsFilter(created_after=datetime.datetime.fromtimestamp(dropped, datetime.timezone.utc)))]
            steps = sum(len(instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)) for r in runs)
            failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    last = max(t for v in found.values() for t in v)
    return {"seconds": last - dropped, "runs": len(runs), "failed runs": len(failed),
            "processes": len(runs) + steps, "step processes": steps,
            "duplicates": sum(len(v) - 1 for v in found.values() if len(v) > 1),
            "jobs": Counter(r.job_name for r in runs)}


def in_process(folder: Path, dataset: str, rows: int | None, model_types: list[str]) -> float:
    """``cpvae run <dataset>`` at the refresh's budget, in a fresh process: the same plan in one process."""
    env = fresh_instance(folder, model_types)
    drop_plate(Path(env["CPVAE_LAKE"]), dataset, rows)
    started = time.perf_counter()
    subprocess.run([str(BIN / "cpvae"), "run", dataset, "--preset", "demo", "--model-types", *model_types],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="lincs_cp_plate", choices=sorted(PLATES))
    parser.add_argument("--quick", action="store_true", help="PCA only, the first 96 wells")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    run = _common.Run(_common.command_line("refresh.py"))
    model_types = ["pca"] if args.quick else ["vanilla", "beta", "mmd", "pca"]
    rows = 96 if args.quick else None
    with tempfile.TemporaryDirectory(prefix="cpvae-refresh-") as tmp:
        daemon = daemon_path(Path(tmp) / "daemon", args.dataset, rows, model_types, args.timeout)
        print(f"daemon path: {daemon['seconds']:.0f} s, {daemon['runs']} runs, {daemon['processes']} processes, "
              f"{daemon['duplicates']} duplicates", flush=True)
        local = in_process(Path(tmp) / "local", args.dataset, rows, model_types)
        print(f"in one process: {local:.0f} s", flush=True)
    ratio = daemon["seconds"] / local
    row = {"dataset": args.dataset + (" (96 wells, PCA)" if args.quick else ""), "daemon path s": round(daemon["seconds"]),
           "in one process s": round(local), "ratio": round(ratio, 2), "runs": daemon["runs"],
           "failed runs": daemon["failed runs"], "processes started": daemon["processes"],
           "of which step processes": daemon["step processes"], "duplicate materialisations": daemon["duplicates"],
           "runs per job": ", ".join(f"{k} {v}" for k, v in sorted(daemon["jobs"].items()))}
    print(f"ratio {ratio:.2f}", flush=True)
    body = (run.header() + "\n\n" + _common.markdown_table([row]) + "\n\nFrom the drop of the plate into a fresh "
            "landing folder to the last materialisation of its partitions, with `dg dev` (webserver and daemon) "
            "running and nothing launched by hand; against `cpvae run` of the same dataset and budget in one "
            "process, in the same run.\n")
    _common.publish("refresh", "Refresh latency, daemon path vs one process (`refresh.py`)", body, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
