"""Figures of the model assets: training curves (paper Figure 2) and the generation UMAP (Figure 3)."""

from __future__ import annotations

import pandas as pd

from cpvae_assets.plots.style import KIND_COLOURS, ROLE_COLOURS, figure, to_png


def training_curves_figure(curves: pd.DataFrame, title: str) -> bytes:
    """Train and validation loss per epoch, real vs column-shuffled data."""
    fig, ax = figure(6, 3.6)
    for (role, seed), part in curves.groupby(["role", "seed"]):
        c = ROLE_COLOURS.get(role, "grey")
        ax.plot(part["epoch"], part["loss"], color=c, alpha=0.5, lw=1, label=f"{role} train (seed {seed})")
        ax.plot(part["epoch"], part["val_loss"], color=c, ls="--", lw=1.5, label=f"{role} validation (seed {seed})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per profile (log scale)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=6, ncols=2)
    return to_png(fig)


def umap_figure(coords: pd.DataFrame, title: str) -> bytes:
    """Real test profiles, their reconstructions and simulated profiles in one UMAP."""
    fig, ax = figure(4.8, 4.2)
    sizes = {"real": 14, "reconstructed": 8, "simulated": 8}
    for kind, part in coords.groupby("kind"):
        ax.scatter(part["umap_1"], part["umap_2"], s=sizes.get(kind, 8), c=KIND_COLOURS.get(kind, "black"),
                   alpha=0.6, label=kind, linewidths=0)
    ax.set_xlabel("UMAP 1 (a.u.)")
    ax.set_ylabel("UMAP 2 (a.u.)")
    ax.set_title(title)
    ax.legend(markerscale=2)
    return to_png(fig)
