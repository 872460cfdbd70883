"""Figures of the interpretation assets: the clustered feature-group heatmap (paper Figure 4), active
latent features (Supplementary Figure 6), latent correlation (Supplementary Figure 5) and the
traversal's strongest features."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import dendrogram

from cpvae_assets.plots.style import colour, figure, to_png


def _ticks(ax, axis: str, labels: list[str], most: int = 40) -> None:
    step = max(1, int(np.ceil(len(labels) / most)))
    positions = np.arange(0, len(labels), step)
    if axis == "x":
        ax.set_xticks(positions, [labels[i] for i in positions], rotation=90)
    else:
        ax.set_yticks(positions, [labels[i] for i in positions])


def feature_group_heatmap(matrix: pd.DataFrame, row_link, col_link, title: str) -> bytes:
    """Groups x latent features of the normalised contribution, both axes in dendrogram order, with
    the dendrograms drawn on top and left."""
    n_rows, n_cols = matrix.shape
    width, height = min(14.0, 3.0 + 0.16 * n_cols), min(10.0, 2.6 + 0.2 * n_rows)
    fig, axes = figure(width, height, nrows=2, ncols=2,
                       gridspec_kw={"width_ratios": [1, 5], "height_ratios": [1, 4], "wspace": 0.02, "hspace": 0.03})
    axes[0, 0].axis("off")
    col_order, row_order = list(range(n_cols)), list(range(n_rows))
    style = {"color_threshold": 0, "above_threshold_color": "#444444", "no_labels": True}
    if col_link is not None:
        col_order = dendrogram(col_link, ax=axes[0, 1], **style)["leaves"]
    if row_link is not None:
        # drawn bottom-up; the heatmap's first row is at the top
        row_order = dendrogram(row_link, ax=axes[1, 0], orientation="left", **style)["leaves"][::-1]
    for ax in (axes[0, 1], axes[1, 0]):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    ordered = matrix.iloc[row_order, col_order]
    heat = axes[1, 1]
    image = heat.imshow(ordered.to_numpy(float), aspect="auto", cmap="viridis", vmin=0)
    _ticks(heat, "x", [str(c) for c in ordered.columns])
    heat.yaxis.tick_right()
    heat.set_yticks(np.arange(n_rows), [str(r) for r in ordered.index])
    heat.set_xlabel("latent feature")
    # top left, as in seaborn's clustermap
    colourbar = fig.colorbar(image, cax=axes[0, 0].inset_axes([0.8, 0.05, 0.1, 0.9]))
    colourbar.ax.yaxis.set_ticks_position("left")
    colourbar.ax.yaxis.set_label_position("left")
    colourbar.set_label("share of |traversal|\nper latent feature", fontsize=6)
    axes[0, 1].set_title(title)
    return to_png(fig)


def active_features_plot(active: pd.DataFrame, threshold: float, model_type: str, title: str) -> bytes:
    """Largest traversal effect per latent feature against the activity threshold."""
    k = len(active)
    fig, ax = figure(min(12.0, 2.5 + 0.12 * k), 3.0)
    ax.bar(np.arange(k), active["max_abs"], color=[colour(model_type) if a else "#CCCCCC" for a in active["active"]])
    ax.axhline(threshold, color="black", lw=0.8, ls="--", label=f"active if >= {threshold:g}")
    _ticks(ax, "x", active["latent_feature"].tolist())
    ax.set_xlabel("latent feature")
    ax.set_ylabel("max |decode(+3) - decode(-3)|\n(min-max scaled units)")
    ax.set_title(f"{title}: {int(active['active'].sum())} of {k} active")
    ax.legend()
    return to_png(fig)


def correlation_heatmap(matrix: pd.DataFrame, title: str) -> bytes:
    k = matrix.shape[0]
    side = min(9.0, 2.8 + 0.08 * k)
    fig, ax = figure(side + 0.8, side)
    image = ax.imshow(matrix.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1)
    labels = [str(c) for c in matrix.columns]
    _ticks(ax, "x", labels, 30)
    _ticks(ax, "y", labels, 30)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("Pearson r over all profiles")
    ax.set_title(title)
    return to_png(fig)


def traversal_plot(top: pd.DataFrame, title: str, per_latent: int = 3, most_latent: int = 16) -> bytes:
    """Signed traversal difference of the strongest few input features (genes for L1000) of each
    latent feature, for the latent features with the largest effects."""
    strength = top.groupby("latent_feature", sort=False)["abs_difference"].max().sort_values(ascending=False)
    latents = sorted(strength.index[:most_latent], key=lambda c: int(str(c).split("_")[-1]))
    rows = top[top["latent_feature"].isin(latents) & (top["rank"] <= per_latent)]
    features = list(dict.fromkeys(rows.sort_values(["latent_feature", "rank"])["feature"]))
    full = top[top["latent_feature"].isin(latents) & top["feature"].isin(features)]
    grid = full.pivot_table(index="feature", columns="latent_feature", values="difference", aggfunc="first")
    grid = grid.reindex(index=features, columns=latents)
    bound = float(np.nanmax(np.abs(grid.to_numpy(float)))) if grid.size else 1.0
    fig, ax = figure(min(12.0, 3.5 + 0.35 * len(latents)), min(12.0, 1.5 + 0.16 * len(features)))
    image = ax.imshow(grid.to_numpy(float), aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_xticks(np.arange(len(latents)), latents, rotation=90)
    ax.set_yticks(np.arange(len(features)), features, fontsize=6)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).set_label("decode(+3) - decode(-3) (scaled units)")
    ax.set_title(title)
    return to_png(fig)
