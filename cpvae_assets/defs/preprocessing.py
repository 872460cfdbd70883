"""``normalised_splits``: seeded 80/10/10 splits by plate or cell line (by MOA group for data without
either), scaled 0-1 on train as the dataset says (min-max, or robust: clipped to training quantiles)."""


import dagster as dg
import pandas as pd

from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.ingestion.validate import feature_columns
from cpvae_assets.orchestration.io_manager import LakeTables
from cpvae_assets.orchestration.partitions import dataset_partitions
from cpvae_assets.preprocessing.quality import finite_features, split_proportions, strata_in_training
from cpvae_assets.preprocessing.splits import MIN_STRATUM, SPLITS, stratified_by
from cpvae_assets.preprocessing.splits import normalise_splits as normalise
from cpvae_assets.storage.lake import Lake

CHECKS = {
    "no_nonfinite_features": "no NaN or inf in the features after scaling",
    "split_proportions": "splits are disjoint and within 1 percentage point of 80/10/10",
    "every_stratum_in_training": "every plate (or cell line) has profiles in the training split; for data "
                                 f"split by MOA group, every group of at least {MIN_STRATUM} profiles",
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
def normalised_splits(context: dg.AssetExecutionContext, config: SplitConfig, lake: dg.ResourceParam[Lake],
                      raw_profiles: pd.DataFrame):
    """Train/validation/test splits with features scaled by a scaler fitted on train only (min-max, or
    robust for heavy-tailed data: the dataset's ``scaling``); the scaler is stored beside the data (view
    ``normalised_splits_scaler``) so it can be applied again or inverted. The column ``stratified_by``
    says what the split was stratified by."""
    dataset = context.partition_key
    spec = dataset_spec(dataset, lake.landing(dataset))
    features = feature_columns(raw_profiles)
    result = normalise(raw_profiles, features, seed=config.seed, scaling=spec.scaling, clip_quantiles=spec.quantiles)
    by = stratified_by(spec.stratum)
    frame = result.frame.assign(stratified_by=by)
    counts = frame["split"].value_counts()
    yield dg.Output(
        LakeTables(data=frame, scaler=result.scaler),
        metadata={
            "seed": config.seed,
            "feature_count": len(features),
            "stratified": result.stratified,
            "stratified_by": by,
            **{f"{s}_profiles": int(counts.get(s, 0)) for s in SPLITS},
            **{f"{s}_outside_0_1_fraction": v for s, v in result.outside_unit_fraction.items()},
            "scaling": result.scaling,
            "clipped": result.scaling == "robust",
            **({"clip_quantiles": list(result.clip_quantiles)} if result.clip_quantiles else {}),
            **{f"{s}_clipped_fraction": v for s, v in (result.clipped_fraction or {}).items()},
        },
    )
    min_size = 1 if spec.stratum else MIN_STRATUM
    for name, outcome in (
        ("no_nonfinite_features", finite_features(frame, features)),
        ("split_proportions", split_proportions(frame)),
        ("every_stratum_in_training", strata_in_training(frame, min_size)),
    ):
        yield dg.AssetCheckResult(check_name=name, passed=outcome.passed,
                                  description=outcome.description, metadata=outcome.metadata)
