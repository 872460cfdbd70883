"""Figures of the LSA summary: Figure 6, Figure 7 and Supplementary Figure 8."""

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
