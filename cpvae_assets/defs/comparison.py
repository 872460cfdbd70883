"""``method_comparison``: does the model's LSA beat each baseline on the same A|B pairs? The paired
difference LSA - baseline for L2, cosine distance and the shift Pearson r side by side (L2 alone
rewards small predictions), with a forest plot and one verdict line per baseline in the run log."""

import dagster as dg
import pandas as pd

from cpvae_assets import plots
from cpvae_assets.lsa.arithmetic import BASELINES
from cpvae_assets.lsa.comparison import RESAMPLES, verdict_lines
from cpvae_assets.lsa.comparison import method_comparison as compare
from cpvae_assets.orchestration.io_manager import LakeTables
from cpvae_assets.orchestration.partitions import dataset_and_model, dataset_model_partitions

SIGNS = "d = LSA - baseline; L2 and cosine distance: d < 0 LSA better; shift Pearson r: d > 0 LSA better"


class ComparisonConfig(dg.Config):
    seed: int = 0
    """Seed of the percentile bootstrap over pairs."""
    resamples: int = RESAMPLES


@dg.asset(partitions_def=dataset_model_partitions, group_name="lsa", kinds={"scipy", "parquet"})
def method_comparison(context: dg.AssetExecutionContext, config: ComparisonConfig, lsa_distances: pd.DataFrame) -> LakeTables:
    """Per baseline x metric: mean of d = LSA - baseline over pairs with a percentile bootstrap 95% CI,
    two-sided Wilcoxon p, win rate and n (fewer than 5 pairs: n and the reason, the rest NULL); the
    per-pair differences in view ``method_comparison_pairs``."""
    dataset, model_type = dataset_and_model(context)
    table, pairs = compare(lsa_distances, BASELINES, config.seed, config.resamples)
    context.log.info(f"{dataset}: {SIGNS}")
    for line in verdict_lines(table, model_type):
        context.log.info(line)
    labelled = table.assign(label=model_type + " vs " + table["baseline"])
    png = plots.forest_plot(labelled, f"{dataset} / {model_type}: LSA - baseline (95% bootstrap CI)")
    context.add_output_metadata({"forest": dg.MetadataValue.md(plots.markdown_image(png, "LSA vs baselines")),
                                 "signs": SIGNS, "seed": config.seed, "resamples": config.resamples,
                                 "pairs": int(table["n"].max()) if len(table) else 0})
    return LakeTables(data=table, pairs=pairs)
