"""Per-method summaries, the paper's Figures 6 and 7 as tables, and scoring against the demo's
planted ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cpvae_assets.schema import pair_key

# the run log's line when a model's LSA loses to a baseline (``cpvae demo`` counts these per baseline)
NOT_BEATEN = "the model's LSA does not beat these baselines on mean L2"


def method_summary(zscores: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean L2 on the real and on shuffled labels, share of pairs with q < 0.05, pairs."""
    return zscores.groupby("method").agg(mean_l2=("l2", "mean"), mean_l2_shuffled=("null_mean", "mean"),
                                         share_q_below_005=("q", lambda q: float((q < 0.05).mean())),
                                         pairs=("pair", "size")).reset_index()


def baselines_not_beaten(summary: pd.DataFrame) -> list[str]:
    """The baselines whose mean L2 is at most LSA's (from ``method_summary``)."""
    mean = dict(zip(summary["method"], summary["mean_l2"]))
    if "lsa" not in mean:
        return []
    return [m for m in summary["method"] if m != "lsa" and mean[m] <= mean["lsa"]]


def method_label(method: str, model_type: str) -> str:
    return f"{model_type}_lsa" if method == "lsa" else method


def figure6(zscores: pd.DataFrame) -> pd.DataFrame:
    """Mean L2 per dataset x method, real vs shuffled labels, zero-one normalised within a dataset.
    Baselines do not depend on the model, so each appears once per dataset."""
    frame = zscores.assign(method_label=[method_label(m, t) for m, t in zip(zscores["method"], zscores["model_type"])])
    frame = frame.drop_duplicates(subset=["dataset", "method_label", "pair"])
    table = frame.groupby(["dataset", "method_label"]).agg(mean_l2_real=("l2", "mean"), mean_l2_shuffled=("null_mean", "mean"),
                                                            pairs=("pair", "nunique"),
                                                            share_q_below_005=("q", lambda q: float((q < 0.05).mean()))).reset_index()
    both = table[["mean_l2_real", "mean_l2_shuffled"]]
    low = both.groupby(table["dataset"]).transform("min").min(axis=1)
    high = both.groupby(table["dataset"]).transform("max").max(axis=1)
    span = (high - low).replace(0, np.nan)
    table["real_01"] = (table["mean_l2_real"] - low) / span
    table["shuffled_01"] = (table["mean_l2_shuffled"] - low) / span
    return table.sort_values(["dataset", "mean_l2_real"]).reset_index(drop=True)


def figure7(zscores: pd.DataFrame, cell_painting: str, l1000: str, model_type: str = "beta") -> pd.DataFrame:
    """z of the same ``A|B`` in a Cell Painting and an L1000 dataset (the paper used the beta-VAE)."""
    rows = zscores[(zscores["method"] == "lsa") & (zscores["model_type"] == model_type)].assign(key=lambda f: f["pair"].map(pair_key))
    cp = rows[rows["dataset"] == cell_painting][["key", "pair", "z"]].rename(columns={"z": "z_cell_painting"})
    l1 = rows[rows["dataset"] == l1000][["key", "z"]].rename(columns={"z": "z_l1000"})
    merged = cp.merge(l1, on="key").drop(columns="key")
    merged["combined"] = merged["z_cell_painting"] + merged["z_l1000"]
    merged["top5"] = merged["combined"].rank(method="first") <= 5  # most negative z: best predicted in both
    return merged.sort_values("combined").reset_index(drop=True)


def ground_truth_scores(zscores: pd.DataFrame, truth: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per method, the share of planted additive pairs called (q < alpha) and of non-additive ones
    wrongly called. The denominator is every planted pair of that kind: a pair the method did not
    score (a single missing, no q) counts as not called, so losing pairs cannot raise a share."""
    keyed = truth.assign(key=truth["moa_pair"].map(pair_key)).drop_duplicates("key")[["key", "additive"]]
    keyed["additive"] = keyed["additive"].astype(bool)
    scored = zscores.assign(key=zscores["pair"].map(pair_key))
    rows = []
    for method, part in scored.groupby("method", sort=True):
        called_keys = set(part.loc[part["q"] < alpha, "key"])
        scored_keys = set(part.loc[part["q"].notna(), "key"])
        row: dict[str, object] = {"method": method}
        for name, kind in (("additive", keyed["additive"]), ("non_additive", ~keyed["additive"])):
            keys = keyed.loc[kind, "key"]
            row[f"{name}_pairs"] = int(len(keys))
            row[f"{name}_scored"] = int(keys.isin(scored_keys).sum())
            row[f"{name}_called"] = float(keys.isin(called_keys).mean()) if len(keys) else np.nan
        rows.append(row)
    columns = ["method"] + [f"{n}_{c}" for n in ("additive", "non_additive") for c in ("pairs", "scored", "called")]
    return pd.DataFrame(rows, columns=columns)


def distinctness(feature_means: pd.DataFrame, all_profiles_mean: pd.Series) -> pd.Series:
    """L2 distance of each group's mean profile from the mean of all profiles: how distinct its
    phenotype is (Supplementary Figure 8). Indexed by group."""
    features = list(all_profiles_mean.index)
    diff = feature_means.set_index("group")[features].to_numpy(np.float64) - all_profiles_mean.to_numpy(np.float64)
    return pd.Series(np.linalg.norm(diff, axis=1), index=feature_means["group"].to_numpy(), name="distinctness")


def predictability_vs_distinctness(zscores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per dataset x model type: each A|B's distinctness against its LSA z-score, and their Spearman
    correlation (negative: distinct phenotypes are predicted better, as the paper found)."""
    from scipy.stats import spearmanr

    cols = ["dataset", "model_type", "pair", "distinctness", "z"]
    stats_cols = ["dataset", "model_type", "pairs", "spearman_rho", "spearman_p"]
    if "distinctness" not in zscores.columns:
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=stats_cols)
    rows = zscores.loc[zscores["method"] == "lsa", cols].dropna(subset=["distinctness", "z"]).reset_index(drop=True)
    stats_rows = []
    for (dataset, model_type), part in rows.groupby(["dataset", "model_type"]):
        ok = len(part) >= 3 and part["distinctness"].nunique() > 1 and part["z"].nunique() > 1
        result = spearmanr(part["distinctness"], part["z"]) if ok else None
        stats_rows.append({"dataset": dataset, "model_type": model_type, "pairs": len(part),
                           "spearman_rho": float(result.statistic) if ok else np.nan,
                           "spearman_p": float(result.pvalue) if ok else np.nan})
    return rows, pd.DataFrame(stats_rows, columns=stats_cols)
