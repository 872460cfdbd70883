"""``normalised_splits``: seeded 80/10/10 splits by plate or cell line, 0-1 scaled on train."""


import dagster as dg
import pandas as pd

from cpvae_assets.ingestion.validate import feature_columns
from cpvae_assets.orchestration.io_manager import LakeTables
from cpvae_assets.orchestration.partitions import dataset_partitions
from cpvae_assets.preprocessing.quality import finite_features, split_proportions, strata_in_training
from cpvae_assets.preprocessing.splits import SPLITS
from cpvae_assets.preprocessing.splits import normalise_splits as normalise

CHECKS = {
    "no_nonfinite_features": "no NaN or inf in the features after scaling",
    "split_proportions": "splits are disjoint and within 1 percentage point of 80/10/10",
    "every_stratum_in_training": "every plate (or cell line) has profiles in the training split",
}


class SplitConfig(dg.Config):
    seed: int = 0
    """Seed of the split; recorded in the metadata so a split can be reproduced."""


@dg.asset(
    partitions_def=dataset_partitions,
    group_name="preprocessing",
    kinds={"scikitlearn", "parquet"},
    check_specs=[dg.AssetCheckSpec(name, asset="normalised_splits", blocking=True, description=text)
                 for name, text in CHECKS.items()],
)
def normalised_splits(context: dg.AssetExecutionContext, config: SplitConfig, raw_profiles: pd.DataFrame):
    """Train/validation/test splits with features min-max scaled by a scaler fitted on train only;
    the scaler is stored beside the data (view ``normalised_splits_scaler``) so it can be inverted."""
    features = feature_columns(raw_profiles)
    result = normalise(raw_profiles, features, seed=config.seed)
    counts = result.frame["split"].value_counts()
    yield dg.Output(
        LakeTables(data=result.frame, scaler=result.scaler),
        metadata={
            "seed": config.seed,
            "feature_count": len(features),
            "stratified": result.stratified,
            **{f"{s}_profiles": int(counts.get(s, 0)) for s in SPLITS},
            **{f"{s}_outside_0_1_fraction": v for s, v in result.outside_unit_fraction.items()},
            "clipped": False,
        },
    )
    for name, outcome in (
        ("no_nonfinite_features", finite_features(result.frame, features)),
        ("split_proportions", split_proportions(result.frame)),
        ("every_stratum_in_training", strata_in_training(result.frame)),
    ):
        yield dg.AssetCheckResult(check_name=name, passed=outcome.passed,
                                  description=outcome.description, metadata=outcome.metadata)
