#!/usr/bin/env python
"""Benchmark: how training, LSA and the null grow with the number of profiles.

At 1x, 2x, 4x and 8x the rows of Cell Painting level 5 (10,368 ... 82,944 profiles x 588 features,
uniform synthetic values, the group design of ``null_benchmark.py`` scaled up: 207 groups, 86 usable
A|B pairs), each size in its own process (clean memory readings):

  train  ``train_model`` (beta-VAE, paper CP5 hyperparameters, 2 real + 2 shuffled seeds) for a fixed
         number of epochs (3; early stopping off), 90/10 train/validation; the compiled functions are
         traced on a small warm-up run first (same layout: nothing is traced again); ``seconds`` is
         the epochs (``train_stack``'s loop), ``train_model call s`` the whole call (shuffled copy,
         Keras export)
  lsa    encoding of every profile, then ``score`` (group means, LSA and baselines), after one
         untimed warm-up ``score`` (decoder tracing)
  null   ``shuffled_null`` with 1,000 permutations

It prints seconds and memory (peak RSS during the stage minus RSS before it) per size, and the
fitted exponent b of time ~ rows^b (least squares on log-log): 1 is linear.

    .venv/bin/python bench/growth.py [--quick] [--factors 1,2,4,8] [--epochs 3] [--permutations 1000] [--no-append]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402

BASE_ROWS, FEATURES = 10_368, 588
STAGES = ("train", "lsa", "null")


def worker(rows: int, epochs: int, permutations: int) -> list[dict]:
    from null_benchmark import design

    from cpvae_assets.lsa.arithmetic import score, shuffled_null
    from cpvae_assets.models.hyperparameters import paper_defaults
    from cpvae_assets.models.training import train_model

    x = np.random.default_rng(0).random((rows, FEATURES), dtype=np.float32)
    n_val = rows // 10
    hp = paper_defaults("cp5", FEATURES, epochs=epochs, patience=epochs + 1)
    warm = min(2000, rows // 2)
    train_model(x[:warm], x[warm:warm + warm // 10], "beta", hp.replace(epochs=1), seed=0)  # traces the compiled functions
    out: list[dict] = []
    with _common.Stage("train", out):
        run = train_model(x[:-n_val], x[-n_val:], "beta", hp, seed=0)
    # the epochs alone (train_stack's loop); the call also builds the shuffled copy and exports Keras models
    out[-1]["train_model call s"], out[-1]["seconds"] = out[-1]["seconds"], round(run.seconds, 2)
    d = design(n_profiles=rows)
    features = [f"f{i}" for i in range(FEATURES)]
    x64 = x.astype(np.float64)
    z_warm = run.model.encode(x).astype(np.float64)
    score(d, z_warm, x64, run.model.decode, features)  # warm-up: traces the decoder for the pairs' shape
    with _common.Stage("lsa", out):
        z = run.model.encode(x).astype(np.float64)
        score(d, z, x64, run.model.decode, features)
    with _common.Stage("null", out):
        shuffled_null(d, z, x64, run.model.decode, permutations, 0)
    for row in out:
        row["rows"] = rows
    return out


def exponent(sizes: list[float], values: list[float]) -> float | None:
    sizes_, values_ = np.asarray(sizes, float), np.asarray(values, float)
    ok = values_ > 0
    if ok.sum() < 2:
        return None
    return float(np.polyfit(np.log(sizes_[ok]), np.log(values_[ok]), 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 and 2,000 rows, 1 epoch, 20 permutations")
    parser.add_argument("--factors", default="1,2,4,8")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--permutations", type=int, default=None)
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 3)
    permutations = args.permutations or (20 if args.quick else 1000)
    if args.worker is not None:
        print("RESULT " + json.dumps(worker(args.worker, epochs, permutations)), flush=True)
        return 0

    run = _common.Run(_common.command_line("growth.py"))
    base = 1_000 if args.quick else BASE_ROWS
    factors = [1, 2] if args.quick else [int(f) for f in args.factors.split(",")]
    rows: list[dict] = []
    for factor in factors:
        n = base * factor
        print(f"{n:,} rows ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--epochs", str(epochs),
                              "--permutations", str(permutations)], capture_output=True, text=True, check=False)
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode != 0 or not lines:
            print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"worker for {n} rows failed")
        for row in json.loads(lines[-1][len("RESULT "):]):
            row["factor"] = factor
            row["memory MB (peak - before)"] = max(0, row["peak RSS MB"] - row["RSS before MB"])
            row["load (1 min)"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            print(f"  {row['stage']:>5}: {row['seconds']:8.2f} s  +{row['memory MB (peak - before)']:,} MB", flush=True)
    fits = []
    for stage in STAGES:
        mine = [r for r in rows if r["stage"] == stage]
        t = exponent([r["rows"] for r in mine], [r["seconds"] for r in mine])
        m = exponent([r["rows"] for r in mine], [r["memory MB (peak - before)"] for r in mine])
        fits.append({"stage": stage, "time exponent": "n/a" if t is None else round(t, 2),
                     "memory exponent": "n/a" if m is None else round(m, 2),
                     f"seconds at {factors[0]}x": mine[0]["seconds"], f"seconds at {factors[-1]}x": mine[-1]["seconds"],
                     f"MB at {factors[-1]}x": mine[-1]["memory MB (peak - before)"]})
    columns = ["stage", "factor", "rows", "seconds", "train_model call s", "CPU cores used", "RSS before MB", "peak RSS MB",
               "memory MB (peak - before)", "load (1 min)"]
    body = (run.header() + f"\n- training: beta-VAE, K = 4 (2 real + 2 shuffled), {epochs} epochs; null: {permutations} "
            "permutations; each size in a fresh process\n\n"
            + _common.markdown_table(sorted(rows, key=lambda r: (STAGES.index(r["stage"]), r["rows"])), columns)
            + "\n\nFitted exponent b of cost ~ rows^b (log-log least squares):\n\n" + _common.markdown_table(fits) + "\n")
    _common.publish("growth", "Growth with rows, 1x-8x CP level 5 (`growth.py`)", body, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
