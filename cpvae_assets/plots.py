"""Figures for the Dagster UI: PNG bytes, embedded in asset metadata as Markdown images."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def training_curves_figure(curves: pd.DataFrame, title: str) -> bytes:
    """Train and validation loss per epoch, real vs column-shuffled data (the paper's Figure 2)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    colours = {"real": "tab:blue", "shuffled": "tab:orange"}
    for (role, seed), part in curves.groupby(["role", "seed"]):
        ax.plot(part["epoch"], part["loss"], color=colours.get(role, "grey"), alpha=0.5, lw=1,
                label=f"{role} train (seed {seed})")
        ax.plot(part["epoch"], part["val_loss"], color=colours.get(role, "grey"), ls="--", lw=1.5,
                label=f"{role} validation (seed {seed})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per profile")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6, ncols=2)
    return to_png(fig)


def umap_figure(coords: pd.DataFrame, title: str) -> bytes:
    """Real test profiles, their reconstructions and simulated profiles in one UMAP (Figure 3)."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    style = {"real": ("tab:grey", 14), "reconstructed": ("tab:blue", 8), "simulated": ("tab:red", 8)}
    for kind, part in coords.groupby("kind"):
        colour, size = style.get(kind, ("black", 8))
        ax.scatter(part["umap_1"], part["umap_2"], s=size, c=colour, alpha=0.6, label=kind, linewidths=0)
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, markerscale=2)
    return to_png(fig)


def figure6_plot(table: pd.DataFrame) -> bytes:
    """Zero-one normalised mean L2 per dataset and method, real vs shuffled labels (paper Figure 6)."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.2 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        part = table[table["dataset"] == dataset]
        y = range(len(part))
        ax.barh([i + 0.2 for i in y], part["real_01"], height=0.4, label="real labels", color="tab:blue")
        ax.barh([i - 0.2 for i in y], part["shuffled_01"], height=0.4, label="shuffled labels", color="tab:grey")
        ax.set_yticks(list(y), part["method_label"], fontsize=7)
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("mean L2 (0-1 within dataset)", fontsize=7)
    axes[0][0].legend(fontsize=6)
    return to_png(fig)


def figure7_plot(table: pd.DataFrame, title: str) -> bytes:
    """z in Cell Painting vs z in L1000 per A|B, the five best in both labelled (paper Figure 7)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.scatter(table["z_cell_painting"], table["z_l1000"], s=14, alpha=0.7)
    for row in table[table["top5"]].itertuples():
        ax.annotate(row.pair, (row.z_cell_painting, row.z_l1000), fontsize=6)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("z (Cell Painting)")
    ax.set_ylabel("z (L1000)")
    ax.set_title(title, fontsize=9)
    return to_png(fig)
