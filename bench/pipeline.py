#!/usr/bin/env python
"""Benchmark: the paper's whole pipeline at Cell Painting level-5 size, stage by stage.

Synthetic data from the demo generator (``cpvae_assets.ingestion.demo_data``) at full size: 10,368 consensus
profiles x 588 features (80 single MOAs, 86 two-MOA pairs, 10 compounds per MOA, 6 doses, 384 DMSO).
Then, calling the science functions directly (not Dagster: no asset I/O, no run storage, no
catalog; those add seconds per asset and are measured by `make demo`):

  ingest      ``ingest_dataset`` on the level-5 table written as Parquet (validation, canonical columns)
  splits      ``normalise_splits``: 80/10/10 by plate map, min-max scaled on train
  train:<m>   ``train_model`` for vanilla, beta, mmd (paper hyperparameters for CP level 5, no tuning:
              latent 10, lr 1e-3, batch 96, BN on, beta 0.3, lambda 1000, up to 50 epochs, patience 10),
              2 real + 2 column-shuffled seeds in one stack; and pca
  embed:<m>   ``generation.embed``: z_mean of all profiles
  groups      ``moa_groups`` (the paper's filtering) and the design of usable A|B pairs
  lsa:<m>     MOA means (latent and features), ``score`` (LSA and the three baselines), and the
              distances under every real seed's model (the seed spread)
  null:<m>    ``shuffled_null`` with 1,000 permutations, then ``zscores``

Target (issue 8): under 15 minutes wall on 2 cores, data generation excluded.

    .venv/bin/python bench/pipeline.py [--quick] [--epochs N] [--permutations N] [--no-append]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402
import numpy as np  # noqa: E402

MODEL_TYPES = ("vanilla", "beta", "mmd", "pca")
# 6 doses x ((80 singles + 86 pairs) x 10 compounds + 4 others) + 6 plate maps x 64 DMSO = 10,368
FULL = {"n_single_moas": 80, "n_pairs": 86, "n_synergistic": 17, "compounds_per_moa": 10, "dmso_per_plate_map": 64}
QUICK = {"n_single_moas": 12, "n_pairs": 8, "n_synergistic": 2, "compounds_per_moa": 3, "dmso_per_plate_map": 10}


def synthetic_level5(quick: bool):
    """The demo generator's level-5 consensus profiles at CP5 size (or a small quick size)."""
    from cpvae_assets.ingestion.demo_data import DemoConfig, design_compounds, generate_cell_painting

    cfg = DemoConfig(**(QUICK if quick else FULL))
    rng = np.random.default_rng(cfg.seed)
    compounds, _, _ = design_compounds(cfg, rng)
    _, level5 = generate_cell_painting(cfg, compounds, rng)
    return level5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: ~750 profiles, 2 epochs, 20 permutations")
    parser.add_argument("--epochs", type=int, default=None, help="maximum epochs (default: the paper's 50, 2 with --quick)")
    parser.add_argument("--permutations", type=int, default=None, help="null permutations (default 1000, 20 with --quick)")
    parser.add_argument("--n-seeds", type=int, default=2, help="real (and as many shuffled) seeds per model type")
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    run = _common.Run(_common.command_line("pipeline.py"))
    permutations = args.permutations or (20 if args.quick else 1000)

    import pandas as pd

    from cpvae_assets.ingestion.registry import dataset_spec
    from cpvae_assets.ingestion.validate import ingest_dataset
    from cpvae_assets.lsa.arithmetic import Design, group_means, score, shuffled_null, zscores
    from cpvae_assets.lsa.moa_groups import moa_groups
    from cpvae_assets.models.embedding import embed
    from cpvae_assets.models.hyperparameters import paper_defaults
    from cpvae_assets.models.training import train_model
    from cpvae_assets.preprocessing.splits import normalise_splits
    from cpvae_assets.schema import feature_columns

    stages: list[dict] = []

    def stage(name: str) -> _common.Stage:
        print(f"  {name} ...", flush=True)
        return _common.Stage(name, stages)

    with stage("data (synthetic; not part of the pipeline)"):
        level5 = synthetic_level5(args.quick)
    print(f"{len(level5):,} profiles", flush=True)
    pipeline_started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "bench_cp5"
        landing.mkdir()
        level5.to_parquet(landing / "level5.parquet", index=False)
        del level5
        with stage("ingest"):
            ingested = ingest_dataset(landing, dataset_spec("demo_cp_level5"))
    profiles = ingested.profiles
    with stage("splits"):
        splits = normalise_splits(profiles, ingested.features, seed=0).frame
    features = feature_columns(splits)
    train = splits.loc[splits["split"] == "train", features].to_numpy(np.float32)
    val = splits.loc[splits["split"] == "validation", features].to_numpy(np.float32)
    hp = paper_defaults("cp5", len(features))
    if args.epochs or args.quick:
        hp = hp.replace(epochs=args.epochs or 2)
    runs, embeddings = {}, {}
    for model_type in MODEL_TYPES:
        with stage(f"train:{model_type}"):
            runs[model_type] = train_model(train, val, model_type, hp, seed=0, n_seeds=args.n_seeds)
        stages[-1]["note"] = (f"{runs[model_type].summary['epochs_run'].max()} epochs, "
                              f"{len(runs[model_type].summary)} models" if model_type != "pca" else "2 PCA fits")
        with stage(f"embed:{model_type}"):
            embeddings[model_type] = embed(runs[model_type].model, splits)
    with stage("groups"):
        groups = moa_groups(splits)
        design = Design.build(groups.membership, groups.groups)
        kept = groups.membership.notna().to_numpy()
        x = splits.loc[kept, features].to_numpy(np.float64)
    stages[-1]["note"] = f"{len(design.groups)} groups, {len(design.pairs)} usable A|B, {int(kept.sum()):,} profiles kept"
    summary = []
    for model_type in MODEL_TYPES:
        run_ = runs[model_type]
        z_cols = [c for c in embeddings[model_type].columns if c.startswith("z_")]
        z = embeddings[model_type].loc[kept, z_cols].to_numpy(np.float64)
        with stage(f"lsa:{model_type}"):
            group_means(design.labels, z, len(design.groups))  # moa_means (latent)
            group_means(design.labels, x, len(design.groups))  # moa_means_features
            _, distances, _ = score(design, z, x, run_.model.decode, features)
            for _, seed_model in run_.seed_models:  # seed spread: every real seed's model
                score(design, seed_model.encode(x.astype(np.float32)).astype(np.float64), x, seed_model.decode, features)
        with stage(f"null:{model_type}"):
            null = shuffled_null(design, z, x, run_.model.decode, permutations, 0)
            table = zscores(distances, null)
        stages[-1]["note"] = f"{permutations} permutations, {len(null):,} null rows"
        means = table.groupby("method")["l2"].mean()
        summary.append({"model_type": model_type, **{f"mean L2 {m}": round(float(v), 3) for m, v in means.items()},
                        "share q<0.05 (lsa)": round(float((table.loc[table["method"] == "lsa", "q"] < 0.05).mean()), 3)})
    pipeline_seconds = time.perf_counter() - pipeline_started
    total = {"stage": "**pipeline total** (ingest to null)", "seconds": round(pipeline_seconds, 1),
             "note": f"target < 900 s: {'met' if pipeline_seconds < 900 else 'missed'}"}
    rows = stages + [total]
    for row in rows:
        row.setdefault("note", "")
    body = (run.header() + f"\n- profiles: {len(profiles):,} x {len(features)} features; hyperparameters: paper CP level 5"
            f" (max {hp.epochs} epochs, patience {hp.patience}); {args.n_seeds} real + {args.n_seeds} shuffled seeds per VAE;"
            f" {permutations} null permutations; science functions called directly, not through Dagster\n\n"
            + _common.markdown_table(rows, ["stage", "seconds", "CPU cores used", "RSS before MB", "peak RSS MB", "note"])
            + "\n\nLSA on the synthetic data (a sanity check, not a benchmark):\n\n" + _common.markdown_table(summary) + "\n")
    _common.publish("pipeline", "Whole pipeline, CP level-5 size (`pipeline.py`)", body, args)
    del pd
    return 0


if __name__ == "__main__":
    sys.exit(main())
