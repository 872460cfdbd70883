"""Latent space arithmetic assets: MOA groups, group means, predictions, distances with copairs'
retrieval mAP, the shuffled null, z-scores, and the cross-dataset summary (the paper's Figures 6 and
7, and every partition's comparison of LSA with the baselines)."""

import dagster as dg
import numpy as np
import pandas as pd

from cpvae_assets import plots
from cpvae_assets.defs.runtime import TRAINING_OP_TAGS, TRAINING_POOL, take_core_share
from cpvae_assets.ingestion.demo_data import GROUND_TRUTH
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.lsa.arithmetic import Encoder, LsaInputs, group_means, lsa_inputs, score, seed_spread, zscores
from cpvae_assets.lsa.arithmetic import shuffled_null as run_null
from cpvae_assets.lsa.moa_groups import moa_groups as group_profiles
from cpvae_assets.lsa.moa_groups import stored_membership
from cpvae_assets.lsa.retrieval import NULL_SIZE, references, retrieval
from cpvae_assets.lsa.summary import (
    NOT_BEATEN,
    baselines_not_beaten,
    distinctness,
    figure6,
    figure7,
    ground_truth_scores,
    method_summary,
    predictability_vs_distinctness,
)
from cpvae_assets.models.store import ModelStore
from cpvae_assets.orchestration.io_manager import LakeTables
from cpvae_assets.orchestration.partitions import (
    dataset_and_model,
    dataset_model_partitions,
    dataset_partitions,
)
from cpvae_assets.orchestration.tags import TRAINS_TAG
from cpvae_assets.schema import latent_columns
from cpvae_assets.storage.lake import Lake


class NullConfig(dg.Config):
    permutations: int = 1000
    """Label permutations; the paper used 10 (set 10 to reproduce it)."""
    seed: int = 0


class ArithmeticConfig(dg.Config):
    retrieval_null_size: int = NULL_SIZE
    """Random rank lists in copairs' null of each query's average precision and each method's mAP."""
    seed: int = 0


class SummaryConfig(dg.Config):
    cell_painting: str = "demo_cp_level5"
    l1000: str = "demo_l1000"
    model_type: str = "beta"


@dg.asset(partitions_def=dataset_partitions, group_name="lsa", kinds={"pandas", "parquet"})
def moa_groups(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake], normalised_splits: pd.DataFrame) -> LakeTables:
    """The paper's filtering: one- or two-MOA compounds, singles only when in some pair, and DMSO (for
    a dataset with ``control = "zero_signature"``: an empty DMSO group, flagged, that the arithmetic
    fills with the zero signature); compounds and profiles per group, pairs whose single has one
    compound flagged (view ``moa_groups_membership``: the group of each profile)."""
    control = dataset_spec(context.partition_key, lake.landing(context.partition_key)).control
    result = group_profiles(normalised_splits, control=control)
    for name, count in result.excluded.items():
        context.log.info(f"excluded: {name} = {count}")
    groups = result.groups
    flagged = groups.loc[groups["single_profile"], "group"].tolist()
    if flagged:
        context.log.warning(f"groups with a single profile (kept, flagged): {flagged}")
    one_compound = groups.loc[groups["single_has_one_compound"] & (groups["singles_present"] == True), "group"].tolist()  # noqa: E712
    if one_compound:
        context.log.warning(f"A|B whose single MOA has one compound (kept, flagged single_has_one_compound; their "
                            f"arithmetic is that of one compound): {one_compound}")
    context.add_output_metadata({**result.excluded, "groups": len(groups), "control": control,
                                 "pairs_usable": int((groups["singles_present"] == True).sum()),  # noqa: E712
                                 "single_profile_groups": len(flagged),
                                 "pairs_with_one_compound_single": len(one_compound)})
    membership = pd.DataFrame({"profile_id": normalised_splits["profile_id"].values, "group": result.membership.values})
    return LakeTables(data=result.groups, membership=membership.dropna())


def _inputs(lake: Lake, dataset: str, splits: pd.DataFrame, embeddings: pd.DataFrame | None = None,
            encode: Encoder | None = None) -> LsaInputs:
    """The design and values; a zero-signature dataset's control row from the stored scaler."""
    return lsa_inputs(lake.table("moa_groups", dataset), lake.table("moa_groups", dataset, table="membership"),
                      splits, embeddings, lake.table("normalised_splits", dataset, table="scaler"), encode)


@dg.multi_asset(
    outs={
        "moa_means": dg.AssetOut(kinds={"parquet"},
                                 description="Mean latent vector per MOA group (all doses, all splits); the mean "
                                             "profile per group in feature space: view moa_means_features."),
        "lsa_predictions": dg.AssetOut(kinds={"parquet"},
                                       description="Predicted A|B profile per method (expression named); "
                                                   "latent predictions: view lsa_predictions_latent."),
        "lsa_distances": dg.AssetOut(kinds={"parquet", "copairs"},
                                     description="L2, cosine distance, Pearson r of the shifts from DMSO, and "
                                                 "copairs' average precision (cosine) of the real A|B profiles "
                                                 "among all compounds' profiles, with its p; mAP per method: "
                                                 "view lsa_distances_map."),
    },
    partitions_def=dataset_model_partitions, group_name="lsa", deps=["moa_groups", "trained_models"],
)
def latent_space_arithmetic(context: dg.AssetExecutionContext, config: ArithmeticConfig, lake: dg.ResourceParam[Lake],
                            normalised_splits: pd.DataFrame, latent_embeddings: pd.DataFrame):
    dataset, model_type = dataset_and_model(context)
    store = ModelStore(lake)
    model = store.load(dataset, model_type)
    inputs = _inputs(lake, dataset, normalised_splits, latent_embeddings, model.encode)
    design, x, z, features = inputs.design, inputs.features, inputs.latent, inputs.feature_names
    if design.pairs.empty:
        context.log.warning(f"{dataset}: no A|B with both singles present; nothing to predict")
    real = design.labels if design.fixed is None else design.labels[~design.fixed]  # the zero signature is no profile
    counts = np.bincount(real, minlength=len(design.groups))
    latent_means = pd.DataFrame(group_means(design.labels, z, len(design.groups))[0], columns=latent_columns(z.shape[1]))
    latent_means.insert(0, "group", design.groups)
    latent_means.insert(1, "profiles", counts)
    feature_means = pd.DataFrame(group_means(design.labels, x, len(design.groups))[0], columns=features)
    feature_means.insert(0, "group", design.groups)
    predictions, distances, latent = score(design, z, x, model.decode, features)
    distances = distances.merge(seed_spread(inputs, (m for _, m in store.seeds(dataset, model_type))),
                                on=["method", "pair"], how="left")
    distances["distinctness"] = distances["pair"].map(distinctness(feature_means, normalised_splits[features].mean()))
    predictions.insert(2, "expression", predictions["method"].map(dict(zip(distances["method"], distances["expression"]))))
    group_of = stored_membership(normalised_splits, lake.table("moa_groups", dataset, table="membership"))
    per_query, per_method = retrieval(predictions, *references(normalised_splits, group_of, features), features,
                                      config.retrieval_null_size, config.seed)
    distances = distances.merge(per_query.drop(columns=["positives", "negatives"]), on=["method", "pair"], how="left")
    skipped = int(sum("|" in g for g in design.groups)) - len(design.pairs)
    yield dg.Output(LakeTables(data=latent_means, features=feature_means), output_name="moa_means",
                    metadata={"groups": len(design.groups), "latent_dim": z.shape[1]})
    yield dg.Output(LakeTables(data=predictions, latent=latent), output_name="lsa_predictions",
                    metadata={"pairs": len(design.pairs), "pairs_skipped_missing_single": skipped})
    summary = distances.groupby("method")["l2"].mean().round(4).to_dict()
    maps = {f"map_{r.method}": round(float(r.mean_average_precision), 4) for r in per_method.itertuples()}
    yield dg.Output(LakeTables(data=distances, map=per_method), output_name="lsa_distances",
                    metadata={**{f"mean_l2_{k}": v for k, v in summary.items()}, **maps, "retrieval_distance": "cosine",
                              "retrieval_null_size": config.retrieval_null_size, "seed": config.seed,
                              "zero_signature_control": design.zero_signature})


@dg.asset(partitions_def=dataset_model_partitions, group_name="lsa", kinds={"numpy", "parquet"},
          deps=["moa_groups", "trained_models"])
def shuffled_null(context: dg.AssetExecutionContext, config: NullConfig, lake: dg.ResourceParam[Lake],
                  normalised_splits: pd.DataFrame, latent_embeddings: pd.DataFrame) -> pd.DataFrame:
    """Distances of every method's prediction to the real A|B means when MOA labels (DMSO included)
    are permuted across profiles; one row per permutation x pair x method. A zero-signature control
    is no profile: it keeps its label and only the compounds' labels are permuted."""
    dataset, model_type = dataset_and_model(context)
    model = ModelStore(lake).load(dataset, model_type)
    inputs = _inputs(lake, dataset, normalised_splits, latent_embeddings, model.encode)
    null = run_null(inputs.design, inputs.latent, inputs.features, model.decode, config.permutations, config.seed)
    context.add_output_metadata({"permutations": config.permutations, "seed": config.seed, "rows": len(null),
                                 "permuted": "compound labels only (zero-signature control fixed)"
                                 if inputs.design.zero_signature else "all labels, DMSO included"})
    return null


@dg.asset(partitions_def=dataset_model_partitions, group_name="lsa", kinds={"scipy", "parquet"})
def lsa_zscores(context: dg.AssetExecutionContext, lake: dg.ResourceParam[Lake], lsa_distances: pd.DataFrame,
                shuffled_null: pd.DataFrame) -> LakeTables:
    """Per A|B and method: z = (d - mean(null)) / sd(null), empirical p, BH q; per-method summary
    (view ``lsa_zscores_summary``), scored against the planted truth where the dataset has one."""
    dataset, model_type = dataset_and_model(context)
    table = zscores(lsa_distances, shuffled_null)
    summary = method_summary(table)
    truth_path = lake.landing(dataset) / GROUND_TRUTH
    if truth_path.is_file():
        summary = summary.merge(ground_truth_scores(table, pd.read_csv(truth_path)), on="method", how="left")
    beaten = baselines_not_beaten(summary)
    if beaten:
        context.log.warning(f"{NOT_BEATEN}: {', '.join(beaten)}")
    if (table["method"] == "lsa").any():
        png = plots.pair_distances_plot(table, model_type, f"{dataset} / {model_type}: LSA vs shuffled labels")
        context.add_output_metadata({"pairs": dg.MetadataValue.md(plots.markdown_image(png, "LSA distance per A|B"))})
    context.add_output_metadata({"beaten_by": ", ".join(beaten) or "none",
                                 **{f"{r.method}_share_q_below_005": round(r.share_q_below_005, 3) for r in summary.itertuples()}})
    return LakeTables(data=table, summary=summary)


@dg.asset(group_name="lsa", kinds={"duckdb", "parquet"}, deps=["lsa_zscores", "method_comparison"])
def lsa_summary(context: dg.AssetExecutionContext, config: SummaryConfig, lake: dg.ResourceParam[Lake]) -> LakeTables:
    """Figure 6 (mean L2 per dataset x method, real vs shuffled labels, 0-1 within dataset), Figure 7
    (Cell Painting vs L1000 z per A|B; view ``lsa_summary_cp_vs_l1000``), Supplementary Figure 8
    (distinctness of each A|B vs its z-score; views ``lsa_summary_distinctness`` and
    ``lsa_summary_distinctness_spearman``) and every partition's ``method_comparison`` (view
    ``lsa_summary_method_comparison``, with a forest plot over datasets)."""
    zs = lake.stacked("lsa_zscores")
    fig6 = figure6(zs)
    fig7 = figure7(zs, config.cell_painting, config.l1000, config.model_type)
    metadata: dict = {"datasets": int(fig6["dataset"].nunique())}
    if len(fig6):  # no dataset with a scored A|B yet (a plate without pairs): the tables stay empty
        metadata["figure6"] = dg.MetadataValue.md(plots.markdown_image(plots.figure6_plot(fig6), "Figure 6"))
    else:
        context.log.warning("no dataset has an A|B pair with both singles yet: Figure 6 is empty")
    if len(fig7):
        metadata["figure7"] = dg.MetadataValue.md(plots.markdown_image(
            plots.figure7_plot(fig7, f"{config.model_type}: {config.cell_painting} vs {config.l1000}"), "Figure 7"))
        metadata["pairs_in_both"] = len(fig7)
    pairs, spearman = predictability_vs_distinctness(zs)
    if len(pairs):
        metadata["supplementary_figure8"] = dg.MetadataValue.md(plots.markdown_image(plots.distinctness_plot(pairs, spearman),
                                                                               "Supplementary Figure 8"))
        metadata["spearman_distinctness_vs_z"] = dg.MetadataValue.md(spearman.round(3).to_markdown(index=False))
    comparison = lake.stacked("method_comparison")
    if len(comparison):
        labelled = comparison.assign(label=comparison["dataset"] + " / " + comparison["model_type"] + " vs "
                                     + comparison["baseline"])
        metadata["method_comparison"] = dg.MetadataValue.md(plots.markdown_image(
            plots.forest_plot(labelled, "LSA - baseline per dataset and model (95% bootstrap CI)"), "LSA vs baselines"))
    context.add_output_metadata(metadata)
    return LakeTables(data=fig6, cp_vs_l1000=fig7, distinctness=pairs, distinctness_spearman=spearman,
                      method_comparison=comparison)


class LeaveOutConfig(dg.Config):
    top: int = 5
    permutations: int = 200
    seed: int = 0


@dg.asset(partitions_def=dataset_model_partitions, group_name="lsa", kinds={"tensorflow", "parquet"},
          deps=["moa_groups"], pool=TRAINING_POOL, op_tags=TRAINING_OP_TAGS)
def leave_moa_out(context: dg.AssetExecutionContext, config: LeaveOutConfig, lake: dg.ResourceParam[Lake],
                  normalised_splits: pd.DataFrame, lsa_zscores: pd.DataFrame, trained_models: pd.DataFrame) -> pd.DataFrame:
    """Retrain without the compounds of the best-predicted A|B and check they still rank among the
    best (Supplementary Figure 9). On demand: job ``leave_moa_out_job``; retrains one model."""
    take_core_share(context)
    from cpvae_assets.defs.models import TrainingConfig, chosen_hyperparameters
    from cpvae_assets.lsa.leave_out import leave_moa_out as run

    dataset, model_type = dataset_and_model(context)
    groups = lake.table("moa_groups", dataset)
    group_of = stored_membership(normalised_splits, lake.table("moa_groups", dataset, table="membership"))
    hp = chosen_hyperparameters(trained_models, TrainingConfig())
    table = run(normalised_splits, group_of, groups, lsa_zscores, model_type, hp, config.seed, config.top, config.permutations)
    held = table[table["held_out"]]
    if len(table):
        png = plots.leave_out_plot(table, f"{dataset} / {model_type}: leave MOAs out")
        context.add_output_metadata({"ranks": dg.MetadataValue.md(plots.markdown_image(png, "ranks before and after"))})
    context.add_output_metadata({"held_out": ", ".join(held["pair"]), "still_top": int(held["still_top"].sum()),
                                 "of": len(held), "training_profiles_removed": int(table["training_profiles_removed"].max()) if len(table) else 0})
    return table


leave_moa_out_job = dg.define_asset_job("leave_moa_out_job", selection=[leave_moa_out.key], tags={TRAINS_TAG: "true"})
