"""Model assets per dataset x model_type: tuning, training (real + column-shuffled control),
training curves, latent embeddings and generation QC. TensorFlow is imported only when they run."""

import json

import dagster as dg
import numpy as np
import pandas as pd

from cpvae_assets import plots
from cpvae_assets.defs.runtime import TRAINING_OP_TAGS, TRAINING_POOL, take_core_share
from cpvae_assets.ingestion.registry import dataset_spec
from cpvae_assets.models.embedding import embed
from cpvae_assets.models.generation import generation_qc as run_generation_qc
from cpvae_assets.models.hyperparameters import (
    BETA_GRID,
    LAMBDA_GRID,
    Hyperparameters,
    fit_to_data,
    from_trial,
    paper_defaults,
    recorded,
)
from cpvae_assets.models.store import ModelStore
from cpvae_assets.models.tuning import tune
from cpvae_assets.orchestration.io_manager import LakeTables
from cpvae_assets.orchestration.partitions import dataset_and_model, dataset_model_partitions
from cpvae_assets.report.export import to_anndata
from cpvae_assets.schema import MatmulDtype, feature_columns
from cpvae_assets.storage.lake import Lake
from cpvae_assets.storage.tables import atomic_path


class TuningConfig(dg.Config):
    trials: int = 0
    """Bayesian-optimisation trials; 0 uses the paper's hyperparameters (recorded as such)."""
    epochs_per_trial: int = 20
    seed: int = 0
    beta_grid: list[float] = list(BETA_GRID)
    lambda_grid: list[float] = list(LAMBDA_GRID)
    matmul_dtype: MatmulDtype = "float32"
    """Operands of every matrix product in tuning: ``bfloat16`` is faster only on CPUs with bf16 units
    (bench/results.md has its effect on the results)."""


class TrainingConfig(dg.Config):
    seed: int = 0
    n_seeds: int = 3
    """Real and shuffled models are trained with this many seeds each, in one stack; the best real one
    is the partition's model, every real seed is kept under ``seeds/`` for the spread of LSA distances."""
    epochs: int = 50
    patience: int = 10
    matmul_dtype: MatmulDtype = "float32"
    """Operands of every matrix product in training (recorded in ``trained_models``)."""


class EmbeddingConfig(dg.Config):
    export_h5ad: bool = False
    """Also write ``embeddings.h5ad`` (AnnData) beside the Parquet table."""


class QCConfig(dg.Config):
    seed: int = 0


def _split(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame.loc[frame["split"] == name, feature_columns(frame)].to_numpy(np.float32)


def _defaults(context: dg.AssetExecutionContext, lake: Lake, dataset: str, model_type: str,
              splits: pd.DataFrame) -> Hyperparameters:
    spec = dataset_spec(dataset, lake.landing(dataset))
    n_features, n_train = len(feature_columns(splits)), int((splits["split"] == "train").sum())
    hp, notes = fit_to_data(paper_defaults(spec.model_preset, n_features), model_type, n_features, n_train)  # type: ignore[arg-type]
    for note in notes:
        context.log.warning(f"{dataset}: {note}")
    return hp


@dg.asset(partitions_def=dataset_model_partitions, group_name="models", kinds={"keras", "parquet"}, pool=TRAINING_POOL, op_tags=TRAINING_OP_TAGS)
def tuned_hyperparameters(context: dg.AssetExecutionContext, config: TuningConfig, lake: dg.ResourceParam[Lake],
                          normalised_splits: pd.DataFrame) -> pd.DataFrame:
    """Every tuning trial as a row; the ``chosen`` row holds the hyperparameters ``trained_models`` uses."""
    take_core_share(context)
    dataset, model_type = dataset_and_model(context)
    defaults = _defaults(context, lake, dataset, model_type, normalised_splits).replace(matmul_dtype=config.matmul_dtype)
    result = tune(_split(normalised_splits, "train"), _split(normalised_splits, "validation"), model_type, defaults,
                  config.trials, config.seed, config.epochs_per_trial, tuple(config.beta_grid), tuple(config.lambda_grid))
    trials = result.trials.assign(source=result.source, hidden_dim=result.chosen.hidden_dim)
    context.add_output_metadata({"source": result.source, "trials": len(trials), "seed": config.seed,
                                 "matmul_dtype": config.matmul_dtype,
                                 "chosen": json.dumps(recorded(result.chosen, model_type))})
    return trials


def chosen_hyperparameters(trials: pd.DataFrame, training: TrainingConfig) -> Hyperparameters:
    return from_trial(trials.loc[trials["chosen"]].iloc[0].to_dict(), training.epochs, training.patience,
                      training.matmul_dtype)


@dg.multi_asset(
    outs={
        "trained_models": dg.AssetOut(kinds={"tensorflow", "keras"},
                                      description="Best real-data model (encoder.keras + decoder.keras, or pca.npz) "
                                                  "and one summary row per trained member, real and shuffled."),
        "training_curves": dg.AssetOut(kinds={"parquet"},
                                       description="Per-epoch train/validation loss and its parts, real and shuffled."),
    },
    partitions_def=dataset_model_partitions,
    group_name="models",
    pool=TRAINING_POOL,
    op_tags=TRAINING_OP_TAGS,
    check_specs=[
        dg.AssetCheckSpec("real_beats_shuffled", asset="trained_models", blocking=True,
                          description="validation loss on real data is below that of the column-shuffled control"),
        dg.AssetCheckSpec("finite_losses", asset="training_curves", blocking=True,
                          description="no NaN or inf in any recorded loss"),
    ],
)
def trained_models(context: dg.AssetExecutionContext, config: TrainingConfig, lake: dg.ResourceParam[Lake],
                   normalised_splits: pd.DataFrame, tuned_hyperparameters: pd.DataFrame):
    take_core_share(context)
    from cpvae_assets.models import tensorflow_threads
    from cpvae_assets.models.precision import kernel_record
    from cpvae_assets.models.training import train_model

    dataset, model_type = dataset_and_model(context)
    hp = chosen_hyperparameters(tuned_hyperparameters, config)

    def log_epoch(epoch: int, rows: list[dict]) -> None:
        parts = ", ".join(f"{r['model']} {r['loss']:.3f}/{r['val_loss']:.3f}" for r in rows)
        context.log.info(f"epoch {epoch}: train/validation loss {parts}")

    run = train_model(_split(normalised_splits, "train"), _split(normalised_splits, "validation"), model_type, hp,
                      seed=config.seed, n_seeds=config.n_seeds, on_epoch=log_epoch)
    for note in run.notes:
        context.log.warning(note)
    store = ModelStore(lake)
    # the model files are renamed into place before this table: their hashes tie the two together
    model_files = store.save(dataset, model_type, run.model, run.seed_models)
    folder = store.folder(dataset, model_type)
    used = recorded(run.hyperparameters, model_type)
    summary = run.summary.assign(seconds=run.seconds, **used,
                                 scaler=str(lake.path("normalised_splits", dataset, table="scaler")),
                                 model_files_sha256=json.dumps(model_files, sort_keys=True))
    real = summary.loc[summary["chosen"], "val_loss"].iloc[0]
    shuffled = summary.loc[summary["role"] == "shuffled", "val_loss"].min()
    yield dg.Output(summary, output_name="trained_models", metadata={
        "model_files": dg.MetadataValue.path(str(folder)), "seed": config.seed, "epochs_run": int(summary["epochs_run"].max()),
        "val_loss_real": float(real), "val_loss_shuffled": float(shuffled), "seconds": round(run.seconds, 2),
        "hyperparameters": json.dumps(used), "tensorflow_threads": json.dumps(tensorflow_threads()),
        "tensorflow_kernels": json.dumps(kernel_record())})
    # PCA is fitted in one step: a curve of one point would show nothing
    png = plots.training_curves_figure(run.curves, f"{dataset} / {model_type}") if model_type != "pca" else None
    curves = (plots.markdown_image(png, "training curves") if png
              else "PCA is fitted in one step: no training curve (see explained_variance)")
    yield dg.Output(LakeTables(data=run.curves, figures={"curves": png} if png else None), output_name="training_curves",
                    metadata={"curves": dg.MetadataValue.md(curves)})
    yield dg.AssetCheckResult(asset_key="trained_models", check_name="real_beats_shuffled", passed=bool(real < shuffled),
                              metadata={"val_loss_real": float(real), "val_loss_shuffled": float(shuffled)})
    losses = run.curves[[c for c in run.curves.columns if "loss" in c or c in ("kl", "mmd", "reconstruction")]]
    yield dg.AssetCheckResult(asset_key="training_curves", check_name="finite_losses",
                              passed=bool(np.isfinite(losses.to_numpy(dtype=float)).all()))


@dg.asset(partitions_def=dataset_model_partitions, group_name="models", kinds={"parquet"},
          deps=["trained_models"],
          check_specs=[dg.AssetCheckSpec("one_row_per_profile", asset="latent_embeddings", blocking=True)])
def latent_embeddings(context: dg.AssetExecutionContext, config: EmbeddingConfig, lake: dg.ResourceParam[Lake],
                      normalised_splits: pd.DataFrame):
    """z_mean of every profile (all splits) with its metadata; optionally also as AnnData (.h5ad)."""
    dataset, model_type = dataset_and_model(context)
    model = ModelStore(lake).load(dataset, model_type)
    embeddings = embed(model, normalised_splits)
    folder = lake.folder("latent_embeddings", dataset, model_type)
    if config.export_h5ad:
        with atomic_path(folder / "embeddings.h5ad") as tmp:
            to_anndata(embeddings).write_h5ad(tmp)
    yield dg.Output(embeddings, metadata={"profiles": len(embeddings), "latent_dim": model.latent_dim,
                                          "h5ad": str(folder / "embeddings.h5ad") if config.export_h5ad else "not exported"})
    same = len(embeddings) == len(normalised_splits) and embeddings["profile_id"].is_unique
    yield dg.AssetCheckResult(check_name="one_row_per_profile", passed=bool(same),
                              metadata={"embeddings": len(embeddings), "profiles": len(normalised_splits)})


@dg.asset(partitions_def=dataset_model_partitions, group_name="models", kinds={"umap", "parquet"},
          deps=["trained_models"])
def generation_qc(context: dg.AssetExecutionContext, config: QCConfig, lake: dg.ResourceParam[Lake],
                  normalised_splits: pd.DataFrame) -> LakeTables:
    """Reconstruction error on the test split, distance of simulated to real profiles, and a UMAP of
    real, reconstructed and simulated test profiles (view ``generation_qc_umap``)."""
    dataset, model_type = dataset_and_model(context)
    model = ModelStore(lake).load(dataset, model_type)
    test = normalised_splits[normalised_splits["split"] == "test"]
    qc = run_generation_qc(model, _split(normalised_splits, "test"), test["profile_id"].astype(str).tolist(), config.seed)
    png = plots.umap_figure(qc.coords, f"{dataset} / {model_type}: test split")
    context.add_output_metadata({**{k: round(v, 5) for k, v in qc.scores.items()}, "seed": config.seed,
                                 "umap": dg.MetadataValue.md(plots.markdown_image(png, "UMAP"))})
    return LakeTables(data=pd.DataFrame([qc.scores]), umap=qc.coords, figures={"umap": png})
