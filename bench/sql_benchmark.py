#!/usr/bin/env python
"""Benchmark: the catalog's typical SQL queries over a lake of the benchmark pipeline's size.

Writes, with the project's own ``cpvae_assets.storage.tables.write_table`` into a temporary lake, the tables
the whole pipeline at Cell Painting level-5 size produces for one dataset (``bench_cp5``) and the
four model types: ``normalised_splits`` (10,368 x 588 features), ``latent_embeddings`` (10,368 x 10
per model type), ``training_curves`` (50 epochs x 4 members), ``shuffled_null`` (1,000 permutations x
86 pairs x 4 methods per model type: 1.4 M rows), ``lsa_distances`` and ``lsa_zscores``; then
``rebuild_catalog`` and times each query through ``cpvae_assets.storage.sql.query`` (a fresh read-only
connection per query, as ``make sql`` / ``cpvae sql`` run it): first (cold) and median of 5.
Target (issue 8): each under 200 ms.

    .venv/bin/python bench/sql_benchmark.py [--quick] [--repeats 5] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DATASET = "bench_cp5"
METHODS = ("lsa", "feature_arithmetic", "mean_of_singles", "best_single")
QUERIES = {
    "top z-scores": "SELECT dataset, model_type, pair, method, l2, z, q FROM lsa_zscores WHERE method = 'lsa' "
                    "ORDER BY z LIMIT 10",
    "per-model summary": "SELECT dataset, model_type, method, count(*) AS pairs, avg(l2) AS mean_l2, "
                         "avg(CASE WHEN q < 0.05 THEN 1 ELSE 0 END) AS share_q05 FROM lsa_zscores GROUP BY ALL ORDER BY ALL",
    "one dataset's embeddings": f"SELECT * FROM latent_embeddings WHERE dataset = '{DATASET}' AND model_type = 'beta'",
    "training curves, best epoch": "SELECT dataset, model_type, role, min(val_loss) AS best FROM training_curves GROUP BY ALL",
    "null per pair (1.4 M rows)": "SELECT model_type, method, pair, avg(l2) AS null_mean, stddev(l2) AS null_sd "
                                  "FROM shuffled_null GROUP BY ALL ORDER BY null_sd DESC LIMIT 10",
}


def build_lake(lake: Path, profiles: int, features: int, permutations: int, pairs: int = 86, latent: int = 10) -> dict[str, int]:
    from cpvae_assets.schema import MODEL_TYPES
    from cpvae_assets.storage.catalog import rebuild_catalog
    from cpvae_assets.storage.paths import partition_dir
    from cpvae_assets.storage.tables import write_table

    rng = np.random.default_rng(0)
    ids = [f"P{i:06d}" for i in range(profiles)]
    meta = pd.DataFrame({"profile_id": ids, "compound": rng.integers(0, 1600, profiles).astype(str),
                         "moa": rng.choice([f"moa{i}" for i in range(200)], profiles),
                         "dose": rng.choice([0.04, 0.12, 0.37, 1.11, 3.33, 10.0], profiles),
                         "stratum": rng.choice([f"plate{i}" for i in range(6)], profiles),
                         "is_control": rng.random(profiles) < 0.04,
                         "split": rng.choice(["train", "validation", "test"], profiles, p=[0.8, 0.1, 0.1])})
    counts: dict[str, int] = {}

    def put(asset: str, frame: pd.DataFrame, model_type: str | None = None, name: str = "data") -> None:
        write_table(frame, partition_dir(lake, asset, DATASET, model_type) / f"{name}.parquet")
        counts[asset] = counts.get(asset, 0) + len(frame)

    values = rng.random((profiles, features), dtype=np.float32)
    put("normalised_splits", pd.concat([meta, pd.DataFrame(values, columns=[f"feature_{i}" for i in range(features)])], axis=1))
    pair_names = [f"moa{2 * i}|moa{2 * i + 1}" for i in range(pairs)]
    for model_type in MODEL_TYPES:
        z = rng.normal(size=(profiles, latent)).astype(np.float32)
        put("latent_embeddings", pd.concat([meta, pd.DataFrame(z, columns=[f"z_{i}" for i in range(latent)])], axis=1), model_type)
        epochs = np.arange(1, 51)
        put("training_curves", pd.DataFrame([{"role": role, "seed": s, "epoch": int(e), "loss": float(rng.random()),
                                              "val_loss": float(rng.random())}
                                             for role in ("real", "shuffled") for s in (0, 1) for e in epochs]), model_type)
        n = permutations * pairs * len(METHODS)
        put("shuffled_null", pd.DataFrame({"method": np.repeat(METHODS, permutations * pairs),
                                           "permutation": np.tile(np.repeat(np.arange(permutations), pairs), len(METHODS)),
                                           "pair": np.tile(pair_names, permutations * len(METHODS)),
                                           "l2": rng.random(n)}), model_type)
        dist = pd.DataFrame({"pair": np.tile(pair_names, len(METHODS)), "method": np.repeat(METHODS, pairs),
                             "l2": rng.random(pairs * len(METHODS))})
        put("lsa_distances", dist, model_type)
        put("lsa_zscores", dist.assign(null_mean=rng.random(len(dist)), null_sd=rng.random(len(dist)),
                                       z=rng.normal(size=len(dist)), p=rng.random(len(dist)), q=rng.random(len(dist))),
            model_type)
    rebuild_catalog(lake)
    return counts


def cli_seconds(lake: Path, sql: str) -> float:
    """Wall time of ``cpvae sql`` in a fresh process: Python start-up, imports, the query, the output."""
    command = [str(Path(sys.executable).with_name("cpvae")), "--lake", str(lake), "sql", sql]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 profiles, 50 permutations, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    run = _common.Run(_common.command_line("sql_benchmark.py"))
    repeats = args.repeats or (2 if args.quick else 5)
    profiles, permutations = (1_000, 50) if args.quick else (10_368, 1_000)

    from cpvae_assets.storage.sql import query

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        started = time.perf_counter()
        counts = build_lake(lake, profiles, 588, permutations)
        build_seconds = time.perf_counter() - started
        size_mb = sum(p.stat().st_size for p in lake.rglob("*") if p.is_file()) / 1e6
        for name, sql in QUERIES.items():
            times, result = [], None
            for _ in range(1 + repeats):
                t = time.perf_counter()
                result = query(lake, sql)
                times.append((time.perf_counter() - t) * 1000)
            median = statistics.median(times[1:])
            shell = statistics.median(cli_seconds(lake, sql) * 1000 for _ in range(repeats))
            rows.append({"query": name, "result rows": len(result), "first ms": round(times[0], 1),
                         f"median of {repeats} ms": round(median, 1), "max ms": round(max(times[1:]), 1),
                         "under 200 ms": "yes" if max(times) < 200 else "no",
                         f"`cpvae sql` wall, median of {repeats} ms": round(shell), "under 500 ms": "yes" if shell < 500 else "no",
                         "load (1 min)": round(os.getloadavg()[0], 2)})
            print(f"  {name}: first {times[0]:.0f} ms, median {median:.0f} ms; cpvae sql {shell:.0f} ms", flush=True)
    sql_list = "\n".join(f"- {name}: `{sql}`" for name, sql in QUERIES.items())
    body = (run.header() + f"\n- lake: {size_mb:.0f} MB of Parquet, written in {build_seconds:.1f} s; rows per view: "
            + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + "\n\n" + _common.markdown_table(rows)
            + "\n\nEach query in process through `cpvae_assets.storage.sql.query` (opens the catalog read-only, runs, "
            "closes), and as the shell runs it: the `cpvae sql` command in a new process, start-up and printing "
            "included (what `make sql` waits for).\n\n" + sql_list + "\n")
    _common.publish("sql", "SQL over the benchmark lake (`sql_benchmark.py`)", body, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
