#!/usr/bin/env python
"""``cpvae demo`` one run at a time against runs side by side in worker processes, in one benchmark run.

Runs ``cpvae demo --workers N`` for each N of ``--workers`` (default 1 and 2) on a fresh lake and
Dagster instance each, one after another, and prints per N: wall seconds (the demo's own "runs in"),
seconds per dataset, CPU cores used, the peak proportional set size of the process tree (sampled every
2 s), and the seconds of each stage (the sum of its step durations over the instance's runs: with
workers side by side these add up to more than the wall time). Then it compares every Parquet table
of the lakes with the first one's, value for value (paths, hashes and the code version aside).

    .venv/bin/python bench/demo_workers.py [--workers 1,2] [--quick]

``--quick`` (a smoke run) plans one real plate with PCA instead of the six demo datasets.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402

BIN = Path(sys.executable).parent
# columns that name a lake path or a file hash, or the code version: not results
NOT_RESULTS = {"scaler", "sha256", "model_files_sha256", "code_version", "seconds", "path"}


def sampled_pss_mb(root: int, stop: threading.Event, peak: list[float]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], sum(filter(None, map(_common.proc_pss_mb, _common.process_tree(root)))))
        stop.wait(2)


def stage_seconds(home: Path) -> dict[str, float]:
    code = ("import json, dagster as dg, collections; i = dg.DagsterInstance.get(); s = collections.Counter()\n"
            "for r in i.get_runs():\n"
            "    for st in i.get_run_step_stats(r.run_id):\n"
            "        s[st.step_key] += (st.end_time or 0) - (st.start_time or 0)\n"
            "print(json.dumps(s))")
    out = subprocess.run([sys.executable, "-c", code], env=os.environ | {"DAGSTER_HOME": str(home)},
                         capture_output=True, text=True, check=True).stdout
    import json

    return json.loads(out.strip().splitlines()[-1])


def demo(workers: int, lake: Path, quick: bool) -> dict:
    env = os.environ | {"CPVAE_LAKE": str(lake), "DAGSTER_HOME": str(lake / "dagster_home")}
    if quick:
        args = [str(BIN / "cpvae"), "run", "l1000_ljp005", "--model-types", "pca", "--workers", str(workers)]
    else:
        args = [str(BIN / "cpvae"), "demo", "--workers", str(workers)]
    before = os.times()
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stop, peak = threading.Event(), [0.0]
    sampler = threading.Thread(target=sampled_pss_mb, args=(proc.pid, stop, peak), daemon=True)
    sampler.start()
    output = proc.communicate()[0]
    stop.set()
    wall = time.perf_counter() - started
    after = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"cpvae with --workers {workers} failed:\n{output[-3000:]}")
    match = re.search(r"(\d+) runs in (?:(\d+) min )?(\d+) s", output)
    runs, seconds = int(match[1]), int(match[2] or 0) * 60 + int(match[3])
    datasets = int(re.search(r"(\d+) dataset\(s\)", output)[1])
    cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    return {"workers": workers, "runs": runs, "runs s": seconds, "s per dataset": seconds / datasets,
            "process s": round(wall, 1), "CPU cores used": cpu / wall, "peak PSS MB": round(peak[0]),
            "stages": stage_seconds(lake / "dagster_home")}


def differing_tables(first: Path, other: Path) -> tuple[int, list[str]]:
    import pandas as pd

    same, differ = 0, []
    for path in sorted(first.rglob("*.parquet")):
        rel = path.relative_to(first)
        if rel.parts[0] in ("landing", "dagster_home", "logs", "models"):
            continue
        a = pd.read_parquet(path)
        b = pd.read_parquet(other / rel) if (other / rel).exists() else None
        keep = [c for c in a.columns if c not in NOT_RESULTS]
        if b is not None and list(b.columns) == list(a.columns) and a[keep].equals(b[keep]):
            same += 1
        else:
            differ.append(str(rel))
    return same, differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, the first is the reference")
    parser.add_argument("--quick", action="store_true", help="one real plate with PCA")
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    run = _common.Run(_common.command_line("demo_workers.py"))
    rows, lakes = [], []
    with tempfile.TemporaryDirectory(prefix="cpvae-demo-workers-") as folder:
        for n in (int(w) for w in args.workers.split(",")):
            lake = Path(folder) / f"workers{n}"
            if args.quick:
                (lake / "landing" / "l1000_ljp005").mkdir(parents=True)
                from cpvae_assets.cli.demo import land_real

                land_real(lake, "l1000_ljp005")
            rows.append(demo(n, lake, args.quick))
            lakes.append(lake)
            print(f"--workers {n}: {rows[-1]['runs s']} s", flush=True)
        for row, lake in zip(rows, lakes):
            same, differ = differing_tables(lakes[0], lake)
            row["tables equal to the first"] = f"{same} of {same + len(differ)}"
            row["differing"] = ", ".join(differ[:5]) + (" ..." if len(differ) > 5 else "")
    stages = sorted({s for r in rows for s in r["stages"]}, key=lambda s: -rows[0]["stages"].get(s, 0))
    stage_rows = [{"stage": s, **{f"--workers {r['workers']} s": round(r["stages"].get(s, 0.0), 1) for r in rows}}
                  for s in stages]
    stage_rows.append({"stage": "sum", **{f"--workers {r['workers']} s": round(sum(r["stages"].values()), 1) for r in rows}})
    summary = [{k: v for k, v in r.items() if k != "stages"} for r in rows]
    body = (run.header() + "\n\n" + _common.markdown_table(summary) + "\n\nStep seconds per stage, summed over every run "
            "(runs side by side each take longer, so the sums exceed the wall time):\n\n" + _common.markdown_table(stage_rows)
            + "\n\n'runs s': the demo's own time from its first run to its last; 'process s' adds the process start and "
            "the summary. CPU cores used: CPU seconds of the process tree / process seconds. Tables compared value for "
            f"value with the first lake's, leaving out {', '.join(sorted(NOT_RESULTS))}.")
    _common.publish("demo_workers", "`cpvae demo` one run at a time vs worker processes (`demo_workers.py`)", body, args)


if __name__ == "__main__":
    main()
