"""Every figure of the platform, one module per stage; no plot code lives in an asset body."""

from cpvae_assets.plots.interpretation import (
                                               active_features_plot,
                                               correlation_heatmap,
                                               feature_group_heatmap,
                                               traversal_plot,
)
from cpvae_assets.plots.lsa import (
                                               distinctness_plot,
                                               figure6_plot,
                                               figure7_plot,
                                               forest_plot,
                                               leave_out_plot,
                                               pair_distances_plot,
)
from cpvae_assets.plots.models import training_curves_figure, umap_figure
from cpvae_assets.plots.style import MODEL_COLOURS, colour, markdown_image, to_png

__all__ = [
                                               "MODEL_COLOURS",
                                               "active_features_plot",
                                               "colour",
                                               "correlation_heatmap",
                                               "distinctness_plot",
                                               "feature_group_heatmap",
                                               "figure6_plot",
                                               "figure7_plot",
                                               "forest_plot",
                                               "leave_out_plot",
                                               "markdown_image",
                                               "pair_distances_plot",
                                               "to_png",
                                               "training_curves_figure",
                                               "traversal_plot",
                                               "umap_figure",
]
