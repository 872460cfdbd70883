"""Interpretation assets per dataset x model_type: latent traversal, CellProfiler feature-group
contributions with active latent features (Figure 4, Supplementary Figure 6) and latent correlation
(Supplementary Figure 5). The science is in ``cpvae_assets.interpretation``."""

import dagster as dg
import pandas as pd

from cpvae_assets import plots
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.interpretation.correlation import correlation_matrix, disentanglement
from cpvae_assets.interpretation.correlation import latent_correlation as correlate
from cpvae_assets.interpretation.feature_groups import (
    cluster_order,
    contribution_matrix,
    group_contributions,
    parse_feature_names,
    unparsed,
)
from cpvae_assets.interpretation.traversal import active_features, top_features
from cpvae_assets.interpretation.traversal import latent_traversal as traverse
from cpvae_assets.models.store import ModelStore
from cpvae_assets.orchestration.io_manager import LakeTables
from cpvae_assets.orchestration.partitions import dataset_and_model, dataset_model_partitions
from cpvae_assets.schema import feature_columns
from cpvae_assets.storage.lake import Lake


class TraversalConfig(dg.Config):
    magnitude: float = 3.0
    """z_i = +magnitude and -magnitude (in SD of the latent feature's prior), all others 0."""
    top: int = 10
    """Input features (genes, for L1000) listed per latent feature in ``latent_traversal_top``."""


class ContributionConfig(dg.Config):
    active_threshold: float = 0.05
    """A latent feature is active when some input feature moves by at least this much (min-max scaled
    units: 0.05 is 5% of the feature's training range) between z_i = -3 and +3."""


@dg.asset(partitions_def=dataset_model_partitions, group_name="interpretation", kinds={"keras", "parquet"},
          deps=["trained_models", "normalised_splits"])
def latent_traversal(context: dg.AssetExecutionContext, config: TraversalConfig, lake: dg.ResourceParam[Lake]) -> LakeTables:
    """decode(z_i = +3) - decode(z_i = -3) per latent feature and input feature (long table); the
    strongest input features per latent feature in ``latent_traversal_top``."""
    dataset, model_type = dataset_and_model(context)
    model = ModelStore(lake).load(dataset, model_type)
    table = traverse(model, feature_columns(lake.columns("normalised_splits", dataset)), config.magnitude)
    top = top_features(table, config.top)
    png = plots.traversal_plot(top, f"{dataset} / {model_type}: strongest features per latent feature")
    context.add_output_metadata({"latent_dim": model.latent_dim, "magnitude": config.magnitude,
                                 "traversal": dg.MetadataValue.md(plots.markdown_image(png, "latent traversal"))})
    return LakeTables(data=table, top=top, figures={"traversal": png})


@dg.asset(partitions_def=dataset_model_partitions, group_name="interpretation", kinds={"scipy", "parquet"})
def feature_group_contributions(context: dg.AssetExecutionContext, config: ContributionConfig, lake: dg.ResourceParam[Lake],
                                latent_traversal: pd.DataFrame) -> LakeTables:
    """Cell Painting: each compartment x channel group's share of every latent feature's traversal
    effect (clustered heatmap: Figure 4; per feature group: view ``feature_group_contributions_by_feature_group``).
    Every dataset: which latent features are active (view ``..._active``, Supplementary Figure 6)."""
    dataset, model_type = dataset_and_model(context)
    active = active_features(latent_traversal, config.active_threshold)
    n_active = int(active["active"].sum())
    title = f"{dataset} / {model_type}"
    figures = {"active": plots.active_features_plot(active, config.active_threshold, model_type, title)}
    metadata = {"active_latent_features": n_active, "latent_features": len(active),
                "active_threshold": config.active_threshold,
                "active": dg.MetadataValue.md(plots.markdown_image(figures["active"], "active latent features"))}
    if dataset_spec(dataset, lake.landing(dataset)).kind != "cell_painting":
        context.log.info(f"{dataset} is not Cell Painting: no CellProfiler feature groups (see latent_traversal_top)")
        empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in (("latent_feature", str), ("group", str),
                              ("mean_abs_contribution", float), ("features", int), ("share", float), ("grouping", str))})
        context.add_output_metadata({**metadata, "feature_groups": "not applicable: features are genes"})
        return LakeTables(data=empty, by_feature_group=empty, active=active, figures=figures)
    parsed = parse_feature_names(list(dict.fromkeys(latent_traversal["feature"])))
    other = unparsed(parsed)
    if other:
        context.log.warning(f"{len(other)} feature names do not follow CellProfiler's pattern (group 'other'): {other}")
    contributions = group_contributions(latent_traversal, parsed)
    matrix = contribution_matrix(contributions)
    rows, cols = cluster_order(matrix)
    png = plots.feature_group_heatmap(matrix, rows, cols, f"{dataset} / {model_type}: feature-group contributions")
    metadata.update({"groups": matrix.shape[0], "unparsed_feature_names": len(other),
                     "unparsed": ", ".join(other[:50]) or "none",
                     "heatmap": dg.MetadataValue.md(plots.markdown_image(png, "feature-group heatmap"))})
    context.add_output_metadata(metadata)
    return LakeTables(data=contributions, by_feature_group=group_contributions(latent_traversal, parsed, "feature_group"),
                      active=active, parsed=parsed, figures={**figures, "heatmap": png})


@dg.asset(partitions_def=dataset_model_partitions, group_name="interpretation", kinds={"numpy", "parquet"})
def latent_correlation(context: dg.AssetExecutionContext, latent_embeddings: pd.DataFrame) -> LakeTables:
    """Pearson r of every pair of latent features over all profiles (long table) and one row of
    disentanglement per model (view ``latent_correlation_summary``): join it to ``generation_qc`` for
    the reconstruction vs correlation trade-off of Supplementary Figure 5."""
    dataset, model_type = dataset_and_model(context)
    table = correlate(latent_embeddings)
    summary = disentanglement(table)
    png = plots.correlation_heatmap(correlation_matrix(table), f"{dataset} / {model_type}: mean |r| "
                                                        f"{summary['mean_abs_correlation']:.3f}")
    context.add_output_metadata({**{k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()},
                                 "heatmap": dg.MetadataValue.md(plots.markdown_image(png, "latent correlation"))})
    return LakeTables(data=table, summary=pd.DataFrame([summary]), figures={"heatmap": png})
