"""One look for every figure: colours per model type and method, sizes readable in the Dagster UI's
metadata panel, PNG bytes embedded as Markdown images (no files to serve)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# Okabe-Ito: distinguishable with the common colour-vision deficiencies
MODEL_COLOURS = {"vanilla": "#0072B2", "beta": "#D55E00", "mmd": "#009E73", "pca": "#666666"}
METHOD_COLOURS = {"feature_arithmetic": "#CC79A7", "mean_of_singles": "#E69F00", "best_single": "#56B4E9",
                  "control": "#000000"}
ROLE_COLOURS = {"real": "#0072B2", "shuffled": "#999999"}
KIND_COLOURS = {"real": "#999999", "reconstructed": "#0072B2", "simulated": "#D55E00"}
SHUFFLED = "#BBBBBB"
DPI = 90
RC = {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
      "legend.fontsize": 7, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": DPI}


def colour(name: str) -> str:
    """Colour of a model type, of a baseline method, or of ``<model_type>_lsa``."""
    name = name.removesuffix("_lsa")
    return MODEL_COLOURS.get(name) or METHOD_COLOURS.get(name) or "#333333"


plt.rcParams.update(RC)  # only figure code imports this module


def figure(width: float, height: float, **kwargs):
    return plt.subplots(figsize=(width, height), **kwargs)


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
