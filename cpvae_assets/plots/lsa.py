"""Figures of the LSA summary: Figure 6, Figure 7, Supplementary Figure 8, and the forest plot of
LSA against each baseline."""

from __future__ import annotations

import pandas as pd

from cpvae_assets.plots.style import MODEL_COLOURS, SHUFFLED, colour, figure, to_png


def figure6_plot(table: pd.DataFrame) -> bytes:
    """Zero-one normalised mean L2 per dataset and method, real vs shuffled labels."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = figure(3.2 * len(datasets), 3.6, ncols=len(datasets), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = table[table["dataset"] == dataset]
        y = range(len(part))
        ax.barh([i + 0.2 for i in y], part["real_01"], height=0.4, label="real labels",
                color=[colour(m) for m in part["method_label"]])
        ax.barh([i - 0.2 for i in y], part["shuffled_01"], height=0.4, label="shuffled labels", color=SHUFFLED)
        ax.set_yticks(list(y), part["method_label"])
        ax.set_title(dataset)
        ax.set_xlabel("mean L2 to real A|B (0-1 within dataset)")
    axes[0][0].legend()
    return to_png(fig)


def figure7_plot(table: pd.DataFrame, title: str) -> bytes:
    """z in Cell Painting vs z in L1000 per A|B, the five best in both labelled."""
    fig, ax = figure(4.6, 4.2)
    ax.scatter(table["z_cell_painting"], table["z_l1000"], s=14, alpha=0.7, color=MODEL_COLOURS["beta"])
    for row in table[table["top5"]].itertuples():
        ax.annotate(row.pair, (row.z_cell_painting, row.z_l1000), fontsize=6)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("LSA z-score, Cell Painting (SD of null)")
    ax.set_ylabel("LSA z-score, L1000 (SD of null)")
    ax.set_title(title)
    return to_png(fig)


def distinctness_plot(table: pd.DataFrame, stats: pd.DataFrame) -> bytes:
    """Per A|B: distance of its real mean profile from the mean of all profiles vs its LSA z-score,
    one panel per dataset, one colour per model type (Supplementary Figure 8)."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = figure(3.4 * len(datasets), 3.3, ncols=len(datasets), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for model_type, part in table[table["dataset"] == dataset].groupby("model_type"):
            rho = stats.loc[(stats["dataset"] == dataset) & (stats["model_type"] == model_type), "spearman_rho"]
            label = f"{model_type} (rho {rho.iloc[0]:.2f})" if len(rho) and pd.notna(rho.iloc[0]) else model_type
            ax.scatter(part["distinctness"], part["z"], s=12, alpha=0.7, color=colour(model_type), label=label)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(dataset)
        ax.set_xlabel("L2 of A|B mean from all-profile mean (scaled units)")
        ax.set_ylabel("LSA z-score (SD of null)")
        ax.legend()
    return to_png(fig)


def pair_distances_plot(table: pd.DataFrame, model_type: str, title: str) -> bytes:
    """Per A|B: L2 of the model's LSA prediction against its shuffled-label null (mean +- SD), best
    predicted first (Supplementary Figure 7)."""
    rows = table[table["method"] == "lsa"].sort_values("z").reset_index(drop=True)
    fig, ax = figure(5.2, max(2.0, 0.9 + 0.22 * len(rows)))
    y = range(len(rows))
    ax.errorbar(rows["null_mean"], list(y), xerr=rows["null_sd"], fmt="o", color=SHUFFLED, ms=4,
                label="shuffled labels (mean +- SD)")
    ax.scatter(rows["l2"], list(y), color=colour(model_type), s=18, zorder=3, label=f"{model_type} LSA")
    ax.set_yticks(list(y), rows["pair"], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("L2 to the real A|B mean profile (scaled units)")
    ax.set_title(title)
    ax.legend()
    return to_png(fig)


def leave_out_plot(table: pd.DataFrame, title: str) -> bytes:
    """Rank of each A|B before and after retraining without the held-out pairs' compounds
    (Supplementary Figure 9): held-out pairs highlighted."""
    fig, ax = figure(4.2, 4.0)
    held = table["held_out"].astype(bool)
    ax.scatter(table.loc[~held, "rank_before"], table.loc[~held, "rank_after"], s=12, color=SHUFFLED, label="other A|B")
    ax.scatter(table.loc[held, "rank_before"], table.loc[held, "rank_after"], s=24, color=MODEL_COLOURS["beta"],
               label="held out in retraining")
    for row in table[held].itertuples():
        ax.annotate(row.pair, (row.rank_before, row.rank_after), fontsize=6)
    top = max(int(table["rank_before"].max()), int(table["rank_after"].max()), 1) if len(table) else 1
    ax.plot([1, top], [1, top], color="grey", lw=0.5)
    ax.set_xlabel("rank by LSA z-score, original model (1 = best)")
    ax.set_ylabel("rank after retraining without them")
    ax.set_title(title)
    ax.legend()
    return to_png(fig)


FOREST_AXES = {"l2": "L2: LSA - baseline (< 0: LSA better)",
               "cosine_distance": "cosine distance: LSA - baseline (< 0: LSA better)",
               "shift_pearson": "shift Pearson r: LSA - baseline (> 0: LSA better)"}


def forest_plot(table: pd.DataFrame, title: str) -> bytes:
    """Mean paired difference with its bootstrap 95% CI, one row per ``label`` (a baseline, or a
    dataset / model / baseline), one panel per metric side by side (L2 alone rewards small
    predictions); rows without a comparison show their n."""
    labels = list(dict.fromkeys(table["label"]))
    fig, axes = figure(3.4 * len(FOREST_AXES), max(1.6, 0.7 + 0.24 * len(labels)), ncols=len(FOREST_AXES),
                       squeeze=False, sharey=True)
    y = {label: i for i, label in enumerate(labels)}
    for ax, (metric, xlabel) in zip(axes[0], FOREST_AXES.items()):
        for row in table[table["metric"] == metric].itertuples():
            if pd.isna(row.mean_difference):
                ax.annotate(f"n={row.n}", (0, y[row.label]), fontsize=6, color="grey", ha="center", va="center")
                continue
            ax.errorbar(row.mean_difference, y[row.label], xerr=[[row.mean_difference - row.ci_low],
                                                                 [row.ci_high - row.mean_difference]],
                        fmt="o", ms=4, capsize=2, color=colour(row.baseline))
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_xlabel(xlabel)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
    axes[0][0].set_title(title, loc="left")
    return to_png(fig)
