"""Jobs: the runs that materialise a dataset, and the budgets (presets) they run with, defined once.

A Dagster run covers one partition, so a dataset is materialised by a plan of runs: its per-dataset
assets, one run per model type, then its report; after every dataset, the cross-dataset summaries
and one leave-MOA-out retraining. ``cpvae demo`` and ``cpvae run`` launch exactly these jobs with
these run configs; a UI user launches the same from the Launchpad (job ``models_demo`` or
``models_paper``, a ``dataset|model_type`` partition, the config already filled in).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from cpvae_assets.orchestration.tags import TRAINS_TAG
from cpvae_assets.schema import MATMUL_DTYPES, MODEL_TYPES, PRESETS, MatmulDtype, Preset

# per dataset, before any model; per dataset x model type; per dataset, after every model type;
# across datasets, at the end. Every partitioned asset but the on-demand leave_moa_out is in one.
DATASET_ASSETS = ("raw_profiles", "normalised_splits", "moa_groups")
MODEL_ASSETS = ("tuned_hyperparameters", "trained_models", "training_curves", "latent_embeddings",
                "generation_qc", "moa_means", "lsa_predictions", "lsa_distances", "shuffled_null",
                "lsa_zscores", "method_comparison", "latent_traversal", "feature_group_contributions", "latent_correlation")
REPORT_ASSETS = ("report",)
SUMMARY_ASSETS = ("lsa_summary", "remote_files")

# op config of the model assets per preset. demo: a small tuning budget that shows every stage in
# minutes. paper: the paper's method at the budget of the reference repository's search per trial
# (Keras Tuner, 10-15 epochs a trial), the paper's 50 training epochs, three seeds.
MODEL_CONFIG: dict[str, dict[str, dict]] = {
    "demo": {
        "tuned_hyperparameters": {"config": {"trials": 1, "epochs_per_trial": 4,
                                             "beta_grid": [0.06, 0.3, 1.0, 10.0], "lambda_grid": [1.0, 1e1, 1e2, 1e3]}},
        "trained_models": {"config": {"epochs": 20, "patience": 6, "n_seeds": 2}},
    },
    "paper": {
        "tuned_hyperparameters": {"config": {"trials": 30, "epochs_per_trial": 15}},
        "trained_models": {"config": {"epochs": 50, "patience": 10, "n_seeds": 3}},
    },
}
# the demo retrains one model without its best-predicted pairs (Supplementary Figure 9)
LEAVE_OUT_PARTITION = {"dataset": "demo_cp_level5", "model_type": "beta"}
LEAVE_OUT_JOB = "leave_moa_out_job"  # defined beside its asset, in defs/lsa.py

# the longest a run may take before run monitoring fails it (hung, not just slow): minutes for a
# dataset's inputs and report on 2 cores, an hour for a demo-budget model, a day for the paper's tuning
MAX_RUNTIME_SECONDS = {"dataset_inputs": 1800, "models_demo": 3600, "models_paper": 86400, "dataset_report": 1800,
                       "summaries": 1800}


def _runtime(job: str) -> dict[str, str]:
    return {"dagster/max_runtime": str(MAX_RUNTIME_SECONDS[job])}


dataset_inputs = dg.define_asset_job(
    "dataset_inputs", selection=list(DATASET_ASSETS), tags=_runtime("dataset_inputs"),
    description="A dataset's profiles, splits and MOA groups (one dataset partition).")
model_jobs = {
    preset: dg.define_asset_job(
        f"models_{preset}", selection=list(MODEL_ASSETS), tags={**_runtime(f"models_{preset}"), TRAINS_TAG: "true"},
        config={"ops": MODEL_CONFIG[preset]},
        description=f"Tuning, training, embeddings, QC, LSA and interpretation of one dataset x model type, "
                    f"at the {preset} budget.")
    for preset in PRESETS
}
dataset_report = dg.define_asset_job(
    "dataset_report", selection=list(REPORT_ASSETS), tags=_runtime("dataset_report"),
    description="A dataset's HTML report, once its model types are done.")
summaries = dg.define_asset_job(
    "summaries", selection=list(SUMMARY_ASSETS), tags=_runtime("summaries"),
    description="Figures 6 and 7 over every dataset, and the status of the remote LINCS files.")


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan: a job, the partition it covers, the op config it runs with, and the runs of
    the plan (their positions) whose outputs it reads, so a launcher may run the others side by side."""

    job: str
    partition: str | dg.MultiPartitionKey | None
    ops: dict[str, dict]
    label: str
    after: tuple[int, ...] = ()


def model_config(preset: Preset, matmul_dtype: MatmulDtype = "float32") -> dict[str, dict]:
    """The op config of the model assets at ``preset``; a non-default ``matmul_dtype`` for tuning and training."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"unknown matmul dtype {matmul_dtype!r}; expected one of {', '.join(MATMUL_DTYPES)}")
    if matmul_dtype == "float32":  # the default: the stored config (and so the files) stay as they were
        return MODEL_CONFIG[preset]
    return {op: {"config": {**value["config"], "matmul_dtype": matmul_dtype}} for op, value in MODEL_CONFIG[preset].items()}


def plan(datasets: list[str], preset: Preset = "demo", model_types: tuple[str, ...] = MODEL_TYPES,
         leave_out: bool = True, matmul_dtype: MatmulDtype = "float32") -> list[PlannedRun]:
    """Every run, in order, that materialises ``datasets`` at ``preset``."""
    ops = model_config(preset, matmul_dtype)
    runs: list[PlannedRun] = []
    inputs_run: dict[str, int] = {}
    model_run: dict[tuple[str, str], int] = {}
    for dataset in datasets:
        inputs = inputs_run[dataset] = len(runs)
        runs.append(PlannedRun(dataset_inputs.name, dataset, {}, f"{dataset} inputs"))
        for model_type in model_types:
            key = dg.MultiPartitionKey({"dataset": dataset, "model_type": model_type})
            model_run[dataset, model_type] = len(runs)
            runs.append(PlannedRun(model_jobs[preset].name, key, ops, f"{dataset} {model_type}", (inputs,)))
        # the report reads every model type's tables
        runs.append(PlannedRun(dataset_report.name, dataset, {}, f"{dataset} report", tuple(range(inputs, len(runs)))))
    if leave_out and LEAVE_OUT_PARTITION["dataset"] in datasets and LEAVE_OUT_PARTITION["model_type"] in model_types:
        key = dg.MultiPartitionKey(LEAVE_OUT_PARTITION)
        reads = (inputs_run[LEAVE_OUT_PARTITION["dataset"]], model_run[LEAVE_OUT_PARTITION["dataset"], LEAVE_OUT_PARTITION["model_type"]])
        runs.append(PlannedRun(LEAVE_OUT_JOB, key, {}, f"{key} leave MOAs out", reads))
    runs.append(PlannedRun(summaries.name, None, {}, "summaries", tuple(range(len(runs)))))  # reads every dataset
    return runs


@dg.definitions
def jobs() -> dg.Definitions:
    return dg.Definitions(jobs=[dataset_inputs, *model_jobs.values(), dataset_report, summaries])
