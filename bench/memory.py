#!/usr/bin/env python
"""Benchmark: peak resident memory of training at the L1000 shape, and of the whole ``make demo``.

1. ``train_model`` on synthetic L1000-shaped data (118,050 x 978 float32, 80/10 train/validation),
   paper L1000 hyperparameters (latent 65, hidden 500, batch 512, beta 40), 2 real + 2 column-shuffled
   seeds (the default training run), for 2 epochs (memory does not grow with epochs). Peak RSS of
   this process (VmHWM) per stage, and overall (``ru_maxrss``). Target (issue 8): under 4 GB.
2. ``--demo``: runs ``cpvae demo`` (what ``make demo`` runs after the install) into a temporary lake
   and Dagster home, and samples every 0.5 s the summed RSS of its whole process tree (the
   multiprocess executor's step processes included). Target: under 3 GB. Takes the demo's time
   (about 7 minutes on a quiet 2-core machine). ``/usr/bin/time -v .venv/bin/cpvae demo`` gives only
   the largest single process, not the tree.

    .venv/bin/python bench/memory.py [--quick] [--demo] [--n-seeds 2] [--epochs 2] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402

L1000_ROWS, L1000_GENES = 118_050, 978


def train_memory(rows: int, n_seeds: int, epochs: int) -> list[dict]:
    stages: list[dict] = []
    with _common.Stage("import TensorFlow", stages):
        from cpvae_assets.models.hyperparameters import paper_defaults
        from cpvae_assets.models.trainer import train_stack  # noqa: F401  (imports TensorFlow and Keras)
        from cpvae_assets.models.training import train_model
    with _common.Stage("synthetic data (float32)", stages):
        x = np.random.default_rng(0).random((rows, L1000_GENES), dtype=np.float32)
        n_train, n_val = int(rows * 0.8), int(rows * 0.1)
        train, val = x[:n_train], x[n_train:n_train + n_val]
    stages[-1]["note"] = f"{x.nbytes / 1e6:,.0f} MB of profiles"
    hp = paper_defaults("l1000", L1000_GENES, epochs=epochs, patience=epochs + 1)
    with _common.Stage("train_model", stages):
        run = train_model(train, val, "beta", hp, seed=0, n_seeds=n_seeds)
    stages[-1]["note"] = (f"K = {2 * n_seeds} ({n_seeds} real + {n_seeds} shuffled), {run.summary['epochs_run'].max()} epochs, "
                          f"{n_train:,} train + {n_val:,} validation rows, batch {hp.batch_size}")
    stages.append({"stage": "**whole process** (ru_maxrss)", "peak RSS MB": round(_common.maxrss_mb()),
                   "note": "target < 4,096 MB: " + ("met" if _common.maxrss_mb() < 4096 else "missed")})
    return stages


def _tree_rss_mb(root: int) -> tuple[float, float, int]:
    """Summed and largest RSS (MB) of ``root`` and all its descendants, and how many there are."""
    sizes = [rss for pid in _common.process_tree(root) if (rss := _common.proc_status_mb("VmRSS", pid)) is not None]
    return sum(sizes), max(sizes, default=0.0), len(sizes)


def demo_memory() -> dict:
    cli = Path(sys.executable).with_name("cpvae")
    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, CPVAE_LAKE=str(Path(folder) / "lake"), DAGSTER_HOME=str(Path(folder) / "dagster_home"))
        Path(env["DAGSTER_HOME"]).mkdir()
        Path(env["DAGSTER_HOME"], "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        started = time.perf_counter()
        proc = subprocess.Popen([str(cli), "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=_common.ROOT)
        peak_sum = peak_one = 0.0
        peak_procs = 0
        output: list[str] = []
        import threading

        reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
        reader.start()
        while proc.poll() is None:
            total, largest, count = _tree_rss_mb(proc.pid)
            if total > peak_sum:
                peak_sum, peak_procs = total, count
            peak_one = max(peak_one, largest)
            time.sleep(0.5)
        reader.join(timeout=10)
        seconds = time.perf_counter() - started
    if proc.returncode != 0:
        print("".join(output[-40:]), file=sys.stderr)
    return {"stage": "cpvae demo (make demo without the install)", "seconds": round(seconds, 1),
            "peak RSS MB": round(peak_sum), "largest single process MB": round(peak_one),
            "note": f"process tree, sampled every 0.5 s; {peak_procs} processes at the peak; exit code {proc.returncode}; "
                    f"target < 3,072 MB: {'met' if peak_sum < 3072 else 'missed'}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 8,000 rows, 1 epoch")
    parser.add_argument("--demo", action="store_true", help="also measure `cpvae demo` (several minutes)")
    parser.add_argument("--n-seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    run = _common.Run(_common.command_line("memory.py"))
    rows = train_memory(8_000 if args.quick else L1000_ROWS, args.n_seeds, args.epochs or (1 if args.quick else 2))
    if args.demo:
        rows.append(demo_memory())
    for row in rows:
        row.setdefault("note", "")
        row["load (1 min)"] = round(os.getloadavg()[0], 2)
    columns = ["stage", "seconds", "RSS before MB", "peak RSS MB", "largest single process MB", "note", "load (1 min)"]
    body = run.header() + "\n\n" + _common.markdown_table(rows, columns) + (
        "\n\nPeak RSS of a stage is the process' VmHWM after resetting it at the stage's start, so it includes what was "
        "resident before (RSS before).\n")
    if not args.demo:
        body += ("\n`make demo` was not measured in this run (`bench/memory.py --demo` measures it; `bench/run_all.py` "
                 "runs it).\n")
    _common.publish("memory", "Peak memory: L1000 training, make demo (`memory.py`)", body, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
