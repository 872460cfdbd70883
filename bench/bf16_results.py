#!/usr/bin/env python
"""Benchmark: does training with bfloat16 matmul operands change the science? (issue 15, part 3)

Runs the same datasets twice through ``cpvae run`` (the project's own Dagster jobs, in process), once
with ``--matmul-dtype float32`` and once with ``bfloat16``, each into a lake of its own, then compares
per dataset x VAE type (PCA trains no network):

- the chosen hyperparameters (tuning also runs in the chosen dtype, so it may choose differently);
- the chosen model's validation loss;
- per A|B pair: LSA's L2 to the real profile and its z against the shuffled null (Pearson r, largest
  difference), and the pairs called at q < 0.05;
- the method-comparison verdicts: per baseline and metric, "better" / "worse" when the bootstrap 95%
  CI of LSA minus the baseline excludes 0 on that side, "level" otherwise;
- the latent embeddings: Pearson r of the pairwise distances of (up to 600) profiles, which does not
  depend on a rotation of the latent axes.

The tolerance is fixed here, before any run: bfloat16 may become the default (on CPUs with native
bf16 units) only if no verdict and no q < 0.05 call changes, every validation loss is within 2%, the
per-pair LSA L2 correlate at r >= 0.98 and the embedding distances at r >= 0.95. A CPU without bf16
units emulates the products (slower, the same rounding of the operands). It measures; it asserts nothing.

    .venv/bin/python bench/bf16_results.py [--datasets a,b] [--preset demo] [--lake32 PATH]
        [--lake16 PATH] [--no-append] [--results PATH]

``--lake32`` reuses a lake already materialised in float32 at the same preset (``make demo``'s).
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
import pandas as pd  # noqa: E402

VAES = ("vanilla", "beta", "mmd")
HYPERPARAMETERS = ("latent_dim", "learning_rate", "batch_size", "encoder_batch_norm", "beta", "lam")
TOLERANCE = {"val_loss_rel": 0.02, "lsa_l2_r": 0.98, "embedding_distance_r": 0.95}
EMBEDDING_SAMPLE = 600


def materialise(lake: Path, datasets: list[str], preset: str, dtype: str) -> float:
    """``cpvae run`` into ``lake`` (landing seeded as ``cpvae demo`` does); returns its wall seconds."""
    from cpvae_assets.cli.demo import seed_landing

    lake.mkdir(parents=True, exist_ok=True)
    seed_landing(lake)
    env = {**os.environ, "CPVAE_LAKE": str(lake), "DAGSTER_HOME": str(lake / "dagster_home")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cpvae_assets.cli", "run", *datasets, "--preset", preset,
                    "--model-types", *VAES, "--matmul-dtype", dtype], env=env, check=True)
    return time.perf_counter() - started


def table(lake: Path, name: str, dataset: str, model_type: str) -> pd.DataFrame:
    from cpvae_assets.storage.lake import Lake

    return Lake.at(str(lake)).table(name, dataset, model_type)


def verdict(row: pd.Series) -> str:
    if row["n"] < 5 or not np.isfinite(row["ci_low"]):
        return "n/a"
    better = row["ci_high"] < 0 if row["lower_is_better"] else row["ci_low"] > 0
    worse = row["ci_low"] > 0 if row["lower_is_better"] else row["ci_high"] < 0
    return "better" if better else "worse" if worse else "level"


def distance_r(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial.distance import pdist

    return float(np.corrcoef(pdist(a), pdist(b))[0, 1])


def compare(lake32: Path, lake16: Path, dataset: str, model_type: str) -> dict:
    row: dict[str, object] = {"dataset": dataset, "model": model_type}
    models = {dtype: table(lake, "trained_models", dataset, model_type) for dtype, lake in (("f32", lake32), ("bf16", lake16))}
    chosen = {dtype: m.loc[m["chosen"]].iloc[0] for dtype, m in models.items()}
    row["dtype recorded"] = f"{chosen['f32'].get('matmul_dtype', 'float32') or 'float32'}/{chosen['bf16'].get('matmul_dtype')}"
    same = [h for h in HYPERPARAMETERS if pd.isna(chosen["f32"][h]) and pd.isna(chosen["bf16"][h])
            or chosen["f32"][h] == chosen["bf16"][h]]
    row["same hyperparameters"] = "yes" if len(same) == len(HYPERPARAMETERS) else \
        "no: " + ", ".join(f"{h} {chosen['f32'][h]:g}->{chosen['bf16'][h]:g}" for h in HYPERPARAMETERS if h not in same)
    v32, v16 = float(chosen["f32"]["val_loss"]), float(chosen["bf16"]["val_loss"])
    row["val loss f32"], row["val loss bf16"], row["val loss rel diff"] = v32, v16, (v16 - v32) / abs(v32)

    z = {dtype: table(lake, "lsa_zscores", dataset, model_type).query("method == 'lsa'").set_index("pair")
         for dtype, lake in (("f32", lake32), ("bf16", lake16))}
    pairs = z["f32"].index.intersection(z["bf16"].index)
    row["pairs"] = len(pairs)
    if len(pairs) >= 3:
        a, b = z["f32"].loc[pairs], z["bf16"].loc[pairs]
        row["LSA L2 r"] = float(np.corrcoef(a["l2"], b["l2"])[0, 1])
        row["LSA L2 max rel diff"] = float(((b["l2"] - a["l2"]).abs() / a["l2"].abs()).max())
        row["z r"] = float(np.corrcoef(a["z"], b["z"])[0, 1])
        row["z max diff"] = float((b["z"] - a["z"]).abs().max())
        row["q<0.05 calls changed"] = int(((a["q"] < 0.05) != (b["q"] < 0.05)).sum())

    comparisons = {dtype: table(lake, "method_comparison", dataset, model_type).set_index(["baseline", "metric"])
                   for dtype, lake in (("f32", lake32), ("bf16", lake16))}
    keys = comparisons["f32"].index.intersection(comparisons["bf16"].index)
    verdicts = {dtype: comparisons[dtype].loc[keys].apply(verdict, axis=1) for dtype in comparisons}
    changed = [f"{base}/{metric} {verdicts['f32'][(base, metric)]}->{verdicts['bf16'][(base, metric)]}"
               for base, metric in keys if verdicts["f32"][(base, metric)] != verdicts["bf16"][(base, metric)]]
    row["verdicts"] = len(keys)
    row["verdicts changed"] = "; ".join(changed) or "none"

    embeddings = {dtype: table(lake, "latent_embeddings", dataset, model_type).set_index("profile_id")
                  for dtype, lake in (("f32", lake32), ("bf16", lake16))}
    ids = embeddings["f32"].index.intersection(embeddings["bf16"].index)
    ids = ids[np.random.default_rng(0).permutation(len(ids))[:EMBEDDING_SAMPLE]]
    cols = {dtype: [c for c in e.columns if c.startswith("z_") and e[c].notna().all()] for dtype, e in embeddings.items()}
    if cols["f32"] and len(cols["f32"]) == len(cols["bf16"]):
        row["embedding distance r"] = distance_r(embeddings["f32"].loc[ids, cols["f32"]].to_numpy(float),
                                                 embeddings["bf16"].loc[ids, cols["bf16"]].to_numpy(float))
    return row


def within_tolerance(row: dict) -> bool:
    return (row["verdicts changed"] == "none" and row.get("q<0.05 calls changed", 0) == 0
            and abs(row["val loss rel diff"]) <= TOLERANCE["val_loss_rel"]
            and row.get("LSA L2 r", 1.0) >= TOLERANCE["lsa_l2_r"]
            and row.get("embedding distance r", 0.0) >= TOLERANCE["embedding_distance_r"])


def main(argv: list[str] | None = None) -> None:
    from cpvae_assets.cli.demo import DEMO_DATASETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DEMO_DATASETS), help="comma-separated (default: the demo's)")
    parser.add_argument("--preset", default="demo", choices=("demo", "paper"))
    parser.add_argument("--lake32", type=Path, default=None, help="a lake already materialised in float32")
    parser.add_argument("--lake16", type=Path, default=None, help="a lake already materialised in bfloat16")
    parser.add_argument("--quick", action="store_true", help="only the first dataset")
    parser.add_argument("--results", type=Path, default=_common.RESULTS)
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args(argv)
    run = _common.Run(_common.command_line("bf16_results.py"))
    datasets = args.datasets.split(",")[: 1 if args.quick else None]
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="cpvae-bf16-") as tmp:
        lakes = {}
        for dtype, given in (("float32", args.lake32), ("bfloat16", args.lake16)):
            lakes[dtype] = given or Path(tmp) / dtype
            if given is None:
                seconds[dtype] = materialise(lakes[dtype], datasets, args.preset, dtype)
                print(f"{dtype}: {seconds[dtype]:.0f} s", flush=True)
        rows = [compare(lakes["float32"], lakes["bfloat16"], d, m) for d in datasets for m in VAES]
    for row in rows:
        row["within tolerance"] = "yes" if within_tolerance(row) else "no"
    accepted = all(r["within tolerance"] == "yes" for r in rows)
    timing = ", ".join(f"{d} {s:.0f} s" for d, s in seconds.items()) or "lakes given"
    body = (run.header() + f"\n- native bf16 units on this CPU: {native_bf16_text()}; preset {args.preset}; "
            f"datasets {', '.join(datasets)}; `cpvae run` wall time: {timing}\n"
            f"- tolerance (fixed before the runs): {TOLERANCE}, no verdict or q < 0.05 call changed\n\n"
            + _common.markdown_table(rows)
            + f"\n\n**Decision: {'bfloat16 is within tolerance everywhere' if accepted else 'float32 stays the default'}** "
            f"({sum(r['within tolerance'] == 'yes' for r in rows)} of {len(rows)} dataset x model rows within tolerance).\n")
    _common.publish("bf16", "bfloat16 matmuls: effect on the results (`bf16_results.py`)", body, args)


def native_bf16_text() -> str:
    from cpvae_assets.models.precision import native_bf16

    return "yes" if native_bf16() else "no (emulated)"


if __name__ == "__main__":
    main()
