"""Benchmark: the shuffled-label null of latent space arithmetic at the Cell Painting level-5 shape.

Prints (and appends to bench/results.md) the time of 1,000 (and 10) label permutations for
10,368 profiles x 588 features, latent dimension 10, 86 A|B pairs with both singles present, all
four methods, decoding through a real Keras decoder of the paper's shape (10 -> 250 -> 588).
Target (issue): 1,000 permutations in under 10 s on 2 cores.

    .venv/bin/python bench/null_benchmark.py [--permutations 1000] [--no-append]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import subprocess
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def design(n_profiles: int = 10_368, n_singles: int = 120, n_pairs: int = 86, seed: int = 0):
    """Group labels like LINCS CP5 after the paper's filtering: DMSO, singles, and A|B pairs."""
    from cpvae_assets.lsa.arithmetic import Design

    rng = np.random.default_rng(seed)
    singles = [f"moa{i}" for i in range(n_singles)]
    pairs = set()
    while len(pairs) < n_pairs:
        a, b = sorted(rng.choice(n_singles, 2, replace=False))
        pairs.add(f"{singles[a]}|{singles[b]}")
    groups = ["DMSO"] + singles + sorted(pairs)
    weights = np.array([20.0] + [1.0] * (len(groups) - 1))
    membership = pd.Series(rng.choice(groups, n_profiles, p=weights / weights.sum()))
    table = pd.DataFrame({"group": groups, "kind": ["control"] + ["single"] * n_singles + ["pair"] * n_pairs})
    split = table["group"].str.split("|", n=1, expand=True)
    table["moa_a"], table["moa_b"] = split[0].where(table["kind"] == "pair"), split[1].where(table["kind"] == "pair")
    table["singles_present"] = table["kind"] == "pair"
    return Design.build(membership, table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    import keras

    from cpvae_assets.lsa.arithmetic import shuffled_null
    from cpvae_assets.models.latent import KerasModel

    d = design()
    rng = np.random.default_rng(1)
    x = rng.random((len(d.labels), 588))
    z = rng.normal(size=(len(d.labels), 10))
    encoder_in = keras.Input((588,))
    encoder = keras.Model(encoder_in, [keras.layers.Dense(10)(encoder_in)] * 2)
    z_in = keras.Input((10,))
    decoder = keras.Model(z_in, keras.layers.Dense(588, activation="sigmoid")(keras.layers.LeakyReLU(0.3)(keras.layers.Dense(250)(z_in))))
    model = KerasModel(encoder, decoder)
    shuffled_null(d, z, x, model.decode, 5, 0)  # warm-up: trace the decoder once
    rows = []
    for n in sorted({10, args.permutations}):
        started = time.perf_counter()
        null = shuffled_null(d, z, x, model.decode, n, 0)
        seconds = time.perf_counter() - started
        rows.append({"permutations": n, "profiles": len(d.labels), "features": 588, "groups": len(d.groups),
                     "pairs": len(d.pairs), "methods": null["method"].nunique(), "null rows": len(null),
                     "seconds": round(seconds, 2), "peak RSS MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024})
    table = pd.DataFrame(rows)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    header = (f"\n## shuffled null, CP level-5 shape - {dt.date.today()} - commit {commit} - "
              f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})\n\n")
    try:
        text = header + table.to_markdown(index=False) + "\n"
    except ImportError:  # tabulate missing
        text = header + table.to_string(index=False) + "\n"
    print(text)
    if not args.no_append:
        with open(Path(__file__).with_name("results.md"), "a") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
