#!/usr/bin/env python
"""Benchmark: the shuffled-label null of latent space arithmetic at the Cell Painting level-5 shape.

Prints (and writes to its section of bench/results.md) the time of 10 and 1,000 label permutations
for 10,368 profiles x 588 features, latent dimension 10, 86 A|B pairs with both singles present, all
four methods, decoding through a Keras decoder of the paper's shape (10 -> 250 -> 588), and the
permutations per second. Target (issue 8): 1,000 permutations in under 10 s on 2 cores.

    .venv/bin/python bench/null_benchmark.py [--permutations 1000] [--quick] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CP5_PROFILES, CP5_FEATURES, CP5_LATENT = 10_368, 588, 10


def design(n_profiles: int = CP5_PROFILES, n_singles: int = 120, n_pairs: int = 86, seed: int = 0):
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
    # every group at least once (a small quick run keeps all pairs usable), the rest drawn at random
    labels = np.concatenate([groups, rng.choice(groups, n_profiles - len(groups), p=weights / weights.sum())])
    membership = pd.Series(rng.permutation(labels))
    table = pd.DataFrame({"group": groups, "kind": ["control"] + ["single"] * n_singles + ["pair"] * n_pairs})
    split = table["group"].str.split("|", n=1, expand=True)
    table["moa_a"], table["moa_b"] = split[0].where(table["kind"] == "pair"), split[1].where(table["kind"] == "pair")
    table["singles_present"] = table["kind"] == "pair"
    return Design.build(membership, table)


def paper_decoder(n_features: int = CP5_FEATURES, latent: int = CP5_LATENT, hidden: int = 250):
    """A Keras model of the paper's shape behind the project's LatentModel interface (untrained)."""
    import keras

    from cpvae_assets.models.latent import KerasModel

    encoder_in = keras.Input((n_features,))
    encoder = keras.Model(encoder_in, [keras.layers.Dense(latent)(encoder_in)] * 2)
    z_in = keras.Input((latent,))
    h = keras.layers.LeakyReLU(0.3)(keras.layers.Dense(hidden)(z_in))
    decoder = keras.Model(z_in, keras.layers.Dense(n_features, activation="sigmoid")(h))
    return KerasModel(encoder, decoder)


def numpy_decoder(n_features: int = CP5_FEATURES, latent: int = CP5_LATENT, hidden: int = 250):
    """The decoder's arithmetic in numpy (random weights), for the smoke run."""
    rng = np.random.default_rng(2)
    w1, w2 = rng.normal(0, 0.3, (latent, hidden)).astype(np.float32), rng.normal(0, 0.1, (hidden, n_features)).astype(np.float32)

    def decode(z: np.ndarray) -> np.ndarray:
        h = z @ w1
        return 1 / (1 + np.exp(-(np.where(h > 0, h, 0.3 * h) @ w2)))

    return decode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 permutations, numpy decoder (no TensorFlow)")
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    run = _common.Run(_common.command_line("null_benchmark.py"))
    permutations = 50 if args.quick else args.permutations

    from cpvae_assets.lsa.arithmetic import shuffled_null

    d = design()
    rng = np.random.default_rng(1)
    x = rng.random((len(d.labels), CP5_FEATURES))
    z = rng.normal(size=(len(d.labels), CP5_LATENT))
    # --quick (the CI smoke test) decodes with numpy weights of the same shape: no TensorFlow import
    decode = numpy_decoder() if args.quick else paper_decoder().decode
    shuffled_null(d, z, x, decode, 5, 0)  # warm-up: trace the decoder once
    rows = []
    for n in sorted({10, permutations}):
        stages: list[dict] = []
        with _common.Stage("null", stages):
            null = shuffled_null(d, z, x, decode, n, 0)
        seconds = stages[0]["seconds"]
        rows.append({"permutations": n, "profiles": len(d.labels), "features": CP5_FEATURES, "groups": len(d.groups),
                     "pairs": len(d.pairs), "methods": null["method"].nunique(), "null rows": len(null),
                     "seconds": seconds, "permutations/s": round(n / max(seconds, 1e-9)),
                     "target": "< 10 s" if n == 1000 else "", "met": ("yes" if seconds < 10 else "no") if n == 1000 else "",
                     "CPU cores used": stages[0]["CPU cores used"], "peak RSS MB": stages[0]["peak RSS MB"],
                     "load (1 min) after": round(os.getloadavg()[0], 2)})
    body = (run.header() + "\n\n" + _common.markdown_table(rows) + "\n\n"
            "`shuffled_null` as the `shuffled_null` asset calls it; labels permuted over all kept profiles, group means "
            "as one sparse product per chunk of 100 permutations, the decoder traced once before timing.\n")
    _common.publish("null", "Shuffled null, CP level-5 shape (`null_benchmark.py`)", body, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
