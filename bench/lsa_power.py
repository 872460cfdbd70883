#!/usr/bin/env python
"""Benchmark: power analysis of latent space arithmetic against its baselines (method.md, "Power analysis").

The demo generator (``cpvae_assets.ingestion.demo_data``) has two knobs: ``effect_size`` (norm of an
MOA's hidden direction / sd of the compound-to-compound noise) and ``nonlinearity`` (the hidden-to-feature
map blended from its linearisation, 0, to the full tanh map, 1). For each setting of a grid of both,
this script generates Cell Painting level-5 data (588 features; 40 single MOAs, 40 pairs of which 10
synergistic at least 90 degrees from the sum of their singles), and runs the project's own functions
as ``bench/pipeline.py`` does: ``ingest_dataset``, ``normalise_splits``, ``train_model`` (beta-VAE at
the paper's CP5 hyperparameters, no tuning, a small fixed epoch budget; PCA with the same latent
dimension), ``moa_groups``, ``score``, ``shuffled_null``, ``zscores``, ``ground_truth_scores`` and
``paired_difference``. Per method: mean L2, the share of planted additive and of non-additive pairs
called at q < 0.05, and LSA minus each baseline on L2, paired over pairs, with a bootstrap 95% CI.

Verdict per setting and model: LSA "beats" a baseline when the CI of the mean L2 difference lies below
0, "loses" when above, "ties" otherwise. It measures; it asserts nothing.

    .venv/bin/python bench/lsa_power.py [--quick] [--effect-sizes 1,3,10] [--nonlinearities 0,0.5,1]
        [--epochs N] [--permutations N] [--seeds 0,1] [--no-append] [--results PATH]
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
import pandas as pd  # noqa: E402

BASELINES = ("feature_arithmetic", "mean_of_singles", "best_single")
SHORT = {"feature_arithmetic": "FA", "mean_of_singles": "MoS", "best_single": "best"}
DESIGN = {"n_single_moas": 40, "n_pairs": 40, "n_synergistic": 10, "compounds_per_moa": 4}
QUICK_DESIGN = {"n_single_moas": 12, "n_pairs": 8, "n_synergistic": 2, "compounds_per_moa": 2,
                "dmso_per_plate_map": 8, "n_features": 120}


def generate(design: dict, effect_size: float, nonlinearity: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Level-5 consensus profiles and the planted truth of one setting."""
    from cpvae_assets.ingestion.demo_data import DemoConfig, design_compounds, generate_cell_painting

    cfg = DemoConfig(seed=20211 + seed, effect_size=effect_size, nonlinearity=nonlinearity, **design)
    rng = np.random.default_rng(cfg.seed)
    compounds, truth, _ = design_compounds(cfg, rng)
    _, level5 = generate_cell_painting(cfg, compounds, rng)
    return level5, truth


def evaluate(level5: pd.DataFrame, epochs: int, permutations: int) -> dict[str, pd.DataFrame]:
    """The pipeline on one dataset: z-scores per model type (beta, pca) and method."""
    from cpvae_assets.ingestion.registry import dataset_spec
    from cpvae_assets.ingestion.validate import ingest_dataset
    from cpvae_assets.lsa.arithmetic import Design, score, shuffled_null, zscores
    from cpvae_assets.lsa.moa_groups import moa_groups
    from cpvae_assets.models.hyperparameters import fit_to_data, paper_defaults
    from cpvae_assets.models.training import train_model
    from cpvae_assets.preprocessing.splits import normalise_splits
    from cpvae_assets.schema import feature_columns

    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder) / "power"
        landing.mkdir()
        level5.to_parquet(landing / "level5.parquet", index=False)
        ingested = ingest_dataset(landing, dataset_spec("demo_cp_level5"))
    splits = normalise_splits(ingested.profiles, ingested.features, seed=0).frame
    features = feature_columns(splits)
    train = splits.loc[splits["split"] == "train", features].to_numpy(np.float32)
    val = splits.loc[splits["split"] == "validation", features].to_numpy(np.float32)
    groups = moa_groups(splits)
    design = Design.build(groups.membership, groups.groups)
    kept = groups.membership.notna().to_numpy()
    x = splits.loc[kept, features].to_numpy(np.float64)
    out = {}
    for model_type in ("beta", "pca"):
        hp, _ = fit_to_data(paper_defaults("cp5", len(features), epochs=epochs, patience=max(3, epochs // 3)),
                            model_type, len(features), len(train))
        model = train_model(train, val, model_type, hp, seed=0, n_seeds=1).model
        z = model.encode(x.astype(np.float32)).astype(np.float64)
        _, distances, _ = score(design, z, x, model.decode, features)
        null = shuffled_null(design, z, x, model.decode, permutations, seed=0)
        out[model_type] = zscores(distances, null)
    return out


def pooled_shares(tables: list[pd.DataFrame], truths: list[pd.DataFrame]) -> pd.DataFrame:
    """``ground_truth_scores`` per data seed (pair names repeat across seeds), pooled as counts."""
    from cpvae_assets.lsa.summary import ground_truth_scores

    scores = pd.concat([ground_truth_scores(t, truth) for t, truth in zip(tables, truths)])
    for kind in ("additive", "non_additive"):
        scores[f"{kind}_hits"] = scores[f"{kind}_called"] * scores[f"{kind}_pairs"]
    pooled = scores.groupby("method").sum(numeric_only=True)
    return pd.DataFrame({kind: pooled[f"{kind}_hits"] / pooled[f"{kind}_pairs"] for kind in ("additive", "non_additive")})


def summarise(runs: list[tuple[dict[str, pd.DataFrame], pd.DataFrame]]) -> tuple[list[dict], list[dict]]:
    """Rows per method (mean L2, shares called) and per model x baseline x pair subset (paired L2
    difference), pooling the pairs of every data seed; ``runs`` holds (z-scores per model, truth) per seed."""
    from cpvae_assets.lsa.comparison import paired_difference
    from cpvae_assets.schema import pair_key

    truths = [truth for _, truth in runs]
    additive = {f"{pair_key(p)} #{seed}" for seed, t in enumerate(truths) for p in t.loc[t["additive"], "moa_pair"]}
    methods, diffs = [], []
    for model_type in ("beta", "pca"):
        tables = [tables[model_type] for tables, _ in runs]
        shares = pooled_shares(tables, truths)
        table = pd.concat([t.assign(pair=t["pair"].map(pair_key) + f" #{seed}") for seed, t in enumerate(tables)])
        for method in ["lsa", *BASELINES] if model_type == "beta" else ["lsa"]:  # baselines do not depend on the model
            methods.append({"method": f"lsa:{model_type}" if method == "lsa" else method,
                            "mean L2": float(table.loc[table["method"] == method, "l2"].mean()),
                            "additive": float(shares.loc[method, "additive"]),
                            "non-additive": float(shares.loc[method, "non_additive"])})
        wide = table.pivot(index="pair", columns="method", values="l2")
        for subset, rows in (("all", wide), ("additive", wide[wide.index.isin(additive)])):
            for baseline in BASELINES:
                result = paired_difference(rows["lsa"].to_numpy(), rows[baseline].to_numpy())
                diffs.append({"model": model_type, "pairs": subset, "baseline": baseline, **result.as_row(),
                              "verdict": verdict(result.ci_low, result.ci_high)})
    return methods, diffs


def verdict(ci_low: float | None, ci_high: float | None) -> str:
    if ci_high is None or ci_low is None:
        return "n/a"
    return "beats" if ci_high < 0 else "loses to" if ci_low > 0 else "ties"


def tables(method_rows: list[dict], diff_rows: list[dict]) -> tuple[list[dict], list[dict], list[dict], str]:
    """The verdict table, the per-method table, the paired differences, and the answer in one sentence."""
    diffs = pd.DataFrame(diff_rows)
    verdicts, wins = [], []
    for (effect, curve), part in diffs.groupby(["effect size", "non-linearity"], sort=True):
        row = {"effect size": f"{effect:g}", "non-linearity": f"{curve:g}"}
        for (model, subset), cell in part.groupby(["model", "pairs"], sort=False):
            row[f"{model} LSA, {subset} pairs"] = "; ".join(f"{v} {SHORT[b]}" for b, v in zip(cell["baseline"], cell["verdict"]))
        verdicts.append(row)
        main = part[(part["model"] == "beta") & (part["pairs"] == "all")].set_index("baseline")["verdict"]
        if main["feature_arithmetic"] == "beats" and main["mean_of_singles"] == "beats":
            wins.append(f"effect size {effect:g} with non-linearity {curve:g}")
    answer = ("The beta-VAE's LSA beats both feature arithmetic and the mean of singles (all pairs, 95% CI of the "
              f"mean L2 difference below 0) at: {'; '.join(wins)}." if wins else
              "The beta-VAE's LSA never beats both feature arithmetic and the mean of singles on this grid.")
    per_method = []
    for (effect, curve), part in pd.DataFrame(method_rows).groupby(["effect size", "non-linearity"], sort=True):
        row = {"effect size": f"{effect:g}", "non-linearity": f"{curve:g}"}
        row.update({f"L2 {r['method']}": r["mean L2"] for r in part.to_dict("records")})
        row.update({f"called {r['method']}": f"{r['additive']:.2f} / {r['non-additive']:.2f}" for r in part.to_dict("records")})
        per_method.append(row)
    paired = [{"effect size": f"{r['effect size']:g}", "non-linearity": f"{r['non-linearity']:g}", "model": r["model"],
               "pairs": r["pairs"], "baseline": r["baseline"], "n": r["n"], "mean d L2": r["mean_difference"],
               "95% CI": f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r["ci_low"] is not None else "",
               "Wilcoxon p": r["wilcoxon_p"], "win rate": r["win_rate"], "verdict": r["verdict"]} for r in diff_rows]
    return verdicts, per_method, paired, answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 x 2 grid, ~300 profiles, 2 epochs, 20 permutations")
    parser.add_argument("--effect-sizes", default=None, help="comma-separated (default 1,2,4,8,16; quick 2,16)")
    parser.add_argument("--nonlinearities", default=None, help="comma-separated in [0, 1] (default 0,0.5,1; quick 0,1)")
    parser.add_argument("--epochs", type=int, default=None, help="beta-VAE training epochs (default 20, quick 2)")
    parser.add_argument("--permutations", type=int, default=None, help="null permutations (default 1000, quick 20)")
    parser.add_argument("--seeds", default=None, help="data seeds per setting, pairs pooled (default 0,1; quick 0)")
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    run = _common.Run(_common.command_line("lsa_power.py"))
    effects = [float(v) for v in (args.effect_sizes or ("2,16" if args.quick else "1,2,4,8,16")).split(",")]
    curves = [float(v) for v in (args.nonlinearities or ("0,1" if args.quick else "0,0.5,1")).split(",")]
    epochs = args.epochs or (2 if args.quick else 20)
    permutations = args.permutations or (20 if args.quick else 1000)
    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1")).split(",")]
    design = QUICK_DESIGN if args.quick else DESIGN

    method_rows, diff_rows, timing = [], [], []
    for effect in effects:
        for curve in curves:
            started = time.perf_counter()
            runs = []
            for seed in seeds:
                level5, truth = generate(design, effect, curve, seed)
                runs.append((evaluate(level5, epochs, permutations), truth))
            methods, diffs = summarise(runs)
            setting = {"effect size": effect, "non-linearity": curve}
            method_rows += [{**setting, **m} for m in methods]
            diff_rows += [{**setting, **d} for d in diffs]
            timing.append(time.perf_counter() - started)
            print(f"effect size {effect:g}, non-linearity {curve:g}: {timing[-1]:.0f} s; beta LSA (all pairs) "
                  + ", ".join(f"{d['verdict']} {SHORT[d['baseline']]}" for d in diffs if d["model"] == "beta" and d["pairs"] == "all"),
                  flush=True)
    verdicts, per_method, paired, answer = tables(method_rows, diff_rows)
    body = (run.header() + f"\n- data: demo generator, level 5, design {design}, data seeds {seeds} per setting (pairs pooled); "
            f"beta-VAE: paper CP5 hyperparameters (latent 10, beta 0.3, no tuning), {epochs} epochs, 1 real + 1 shuffled "
            f"seed; PCA latent 10; {permutations} null permutations; called = q < 0.05 (BH within method); "
            f"{np.mean(timing):.0f} s per setting on average\n\n"
            f"**{answer}**\n\n"
            "Verdict per setting: LSA minus baseline on L2 per A|B, paired; beats = bootstrap 95% CI of the mean "
            "difference below 0, loses to = above 0, ties = the CI contains 0. FA = feature arithmetic, MoS = mean of "
            "singles, best = best single (an oracle: it picks the single closer to the real A|B).\n\n"
            + _common.markdown_table(verdicts)
            + "\n\nMean L2 to the real A|B mean profile (scaled features), and the share of planted additive / "
            "non-additive pairs called at q < 0.05 (additive should be called, non-additive should not):\n\n"
            + _common.markdown_table(per_method)
            + "\n\nLSA minus baseline, L2, paired over pairs:\n\n" + _common.markdown_table(paired) + "\n")
    _common.publish("lsa_power", "LSA power analysis: effect size x non-linearity (`lsa_power.py`)", body, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
