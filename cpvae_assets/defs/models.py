"""Model assets per dataset x model_type: tuning, training (real + column-shuffled control),
training curves, latent embeddings and generation QC. TensorFlow is imported only when they run."""

import json

import dagster as dg
import numpy as np
import pandas as pd

from cpvae_assets.defs.execution import TRAINING_OP_TAGS, TRAINING_POOL
from cpvae_assets.fetch import sha256_of
from cpvae_assets.generation import embed, to_anndata
from cpvae_assets.generation import generation_qc as run_generation_qc
from cpvae_assets.ingest import feature_columns
from cpvae_assets.io_manager import LakeTables
from cpvae_assets.lake import atomic_path
from cpvae_assets.models.hyperparameters import (
    BETA_GRID,
    LAMBDA_GRID,
    Hyperparameters,
    paper_defaults,
)
from cpvae_assets.models.latent import load_model
from cpvae_assets.models.tuning import tune
from cpvae_assets.partitions import dataset_model_partitions, partition_dimensions
from cpvae_assets.paths import partition_dir
from cpvae_assets.plots import markdown_image, training_curves_figure, umap_figure
from cpvae_assets.registry import dataset_spec
from cpvae_assets.resources import LakeResource

EAGER = dg.AutomationCondition.eager()
MIN_STEPS = 10


class TuningConfig(dg.Config):
    trials: int = 0
    """Bayesian-optimisation trials; 0 uses the paper's hyperparameters (recorded as such)."""
    epochs_per_trial: int = 20
    seed: int = 0
    beta_grid: list[float] = list(BETA_GRID)
    lambda_grid: list[float] = list(LAMBDA_GRID)


class TrainingConfig(dg.Config):
    seed: int = 0
    n_seeds: int = 3
    """Real and shuffled models are trained with this many seeds each, in one stack; the best real one
    is the partition's model, every real seed is kept under ``seeds/`` for the spread of LSA distances."""
    epochs: int = 50
    patience: int = 10


class EmbeddingConfig(dg.Config):
    export_h5ad: bool = False
    """Also write ``embeddings.h5ad`` (AnnData) beside the Parquet table."""


class QCConfig(dg.Config):
    seed: int = 0


def _dims(context: dg.AssetExecutionContext) -> tuple[str, str]:
    dims = partition_dimensions(context.partition_key)
    return dims["dataset"], dims["model_type"]


def _split(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame.loc[frame["split"] == name, feature_columns(frame)].to_numpy(np.float32)


def _defaults(context, lake: LakeResource, dataset: str, model_type: str, splits: pd.DataFrame) -> Hyperparameters:
    spec = dataset_spec(dataset, lake.landing(dataset))
    n_features, n_train = len(feature_columns(splits)), int((splits["split"] == "train").sum())
    hp = paper_defaults(spec.model_preset, n_features)  # type: ignore[arg-type]
    ceiling = min(n_features, n_train) - 1 if model_type == "pca" else n_features - 1
    if hp.latent_dim > ceiling:
        context.log.warning(f"{dataset}: latent dimension {hp.latent_dim} is too large for {n_features} features "
                            f"and {n_train} training profiles; using {ceiling}")
        hp = hp.replace(latent_dim=ceiling)
    # a few hundred profiles (a single real plate): keep at least MIN_STEPS optimiser steps per epoch
    small = max(8, n_train // MIN_STEPS)
    if hp.batch_size > small:
        context.log.warning(f"{dataset}: {n_train} training profiles are too few for batch size {hp.batch_size} "
                            f"(fewer than {MIN_STEPS} steps per epoch); using {small}")
        hp = hp.replace(batch_size=small)
    return hp


@dg.asset(partitions_def=dataset_model_partitions, group_name="models", kinds={"keras", "parquet"},
          automation_condition=EAGER, pool=TRAINING_POOL, op_tags=TRAINING_OP_TAGS)
def tuned_hyperparameters(context: dg.AssetExecutionContext, config: TuningConfig, lake: LakeResource,
                          normalised_splits: pd.DataFrame) -> pd.DataFrame:
    """Every tuning trial as a row; the ``chosen`` row holds the hyperparameters ``trained_models`` uses."""
    dataset, model_type = _dims(context)
    defaults = _defaults(context, lake, dataset, model_type, normalised_splits)
    result = tune(_split(normalised_splits, "train"), _split(normalised_splits, "validation"), model_type, defaults,
                  config.trials, config.seed, config.epochs_per_trial, tuple(config.beta_grid), tuple(config.lambda_grid))
    trials = result.trials.assign(source=result.source, hidden_dim=result.chosen.hidden_dim)
    context.add_output_metadata({"source": result.source, "trials": len(trials), "seed": config.seed,
                                 "chosen": json.dumps(result.chosen.as_dict())})
    return trials


def save_seed_models(folder, seed_models) -> None:
    """Every real seed's model under ``seeds/seed=<s>/``; seeds of an earlier run are removed."""
    import shutil

    keep = {f"seed={seed}" for seed, _ in seed_models}
    if (folder / "seeds").is_dir():
        for old in (folder / "seeds").iterdir():
            if old.name not in keep:
                shutil.rmtree(old)
    for seed, model in seed_models:
        model.save(folder / "seeds" / f"seed={seed}")


def chosen_hyperparameters(trials: pd.DataFrame, training: TrainingConfig) -> Hyperparameters:
    row = trials.loc[trials["chosen"]].iloc[0]
    return Hyperparameters(latent_dim=int(row["latent_dim"]), learning_rate=float(row["learning_rate"]),
                           batch_size=int(row["batch_size"]), encoder_batch_norm=bool(row["encoder_batch_norm"]),
                           beta=float(row["beta"]), lam=float(row["lam"]), hidden_dim=int(row["hidden_dim"]),
                           epochs=training.epochs, patience=training.patience)


@dg.multi_asset(
    outs={
        "trained_models": dg.AssetOut(kinds={"tensorflow", "keras"}, automation_condition=EAGER,
                                      description="Best real-data model (encoder.keras + decoder.keras, or pca.npz) "
                                                  "and one summary row per trained member, real and shuffled."),
        "training_curves": dg.AssetOut(kinds={"parquet"}, automation_condition=EAGER,
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
def trained_models(context: dg.AssetExecutionContext, config: TrainingConfig, lake: LakeResource,
                   normalised_splits: pd.DataFrame, tuned_hyperparameters: pd.DataFrame):
    from cpvae_assets.models.training import train_model

    dataset, model_type = _dims(context)
    hp = chosen_hyperparameters(tuned_hyperparameters, config)

    def log_epoch(epoch: int, rows: list[dict]) -> None:
        parts = ", ".join(f"{r['model']} {r['loss']:.3f}/{r['val_loss']:.3f}" for r in rows)
        context.log.info(f"epoch {epoch}: train/validation loss {parts}")

    run = train_model(_split(normalised_splits, "train"), _split(normalised_splits, "validation"), model_type, hp,
                      seed=config.seed, n_seeds=config.n_seeds, on_epoch=log_epoch)
    for note in run.notes:
        context.log.warning(note)
    folder = partition_dir(lake.path, "trained_models", dataset, model_type)
    run.model.save(folder)
    save_seed_models(folder, run.seed_models)
    # the model files are renamed into place before this table: their hashes tie the two together
    model_files = {p.name: sha256_of(p) for p in sorted(folder.iterdir()) if p.suffix in (".keras", ".npz")}
    summary = run.summary.assign(seconds=run.seconds, **{k: v for k, v in run.hyperparameters.as_dict().items()},
                                 scaler=str(partition_dir(lake.path, "normalised_splits", dataset) / "scaler.parquet"),
                                 model_files_sha256=json.dumps(model_files, sort_keys=True))
    real = summary.loc[summary["chosen"], "val_loss"].iloc[0]
    shuffled = summary.loc[summary["role"] == "shuffled", "val_loss"].min()
    png = training_curves_figure(run.curves, f"{dataset} / {model_type}")
    yield dg.Output(summary, output_name="trained_models", metadata={
        "model_files": dg.MetadataValue.path(str(folder)), "seed": config.seed, "epochs_run": int(summary["epochs_run"].max()),
        "val_loss_real": float(real), "val_loss_shuffled": float(shuffled), "seconds": round(run.seconds, 2),
        "hyperparameters": json.dumps(run.hyperparameters.as_dict())})
    yield dg.Output(run.curves, output_name="training_curves",
                    metadata={"curves": dg.MetadataValue.md(markdown_image(png, "training curves"))})
    yield dg.AssetCheckResult(asset_key="trained_models", check_name="real_beats_shuffled", passed=bool(real < shuffled),
                              metadata={"val_loss_real": float(real), "val_loss_shuffled": float(shuffled)})
    losses = run.curves[[c for c in run.curves.columns if "loss" in c or c in ("kl", "mmd", "reconstruction")]]
    yield dg.AssetCheckResult(asset_key="training_curves", check_name="finite_losses",
                              passed=bool(np.isfinite(losses.to_numpy(dtype=float)).all()))


@dg.asset(partitions_def=dataset_model_partitions, group_name="models", kinds={"parquet"},
          deps=["trained_models"], automation_condition=EAGER,
          check_specs=[dg.AssetCheckSpec("one_row_per_profile", asset="latent_embeddings", blocking=True)])
def latent_embeddings(context: dg.AssetExecutionContext, config: EmbeddingConfig, lake: LakeResource,
                      normalised_splits: pd.DataFrame):
    """z_mean of every profile (all splits) with its metadata; optionally also as AnnData (.h5ad)."""
    dataset, model_type = _dims(context)
    model = load_model(partition_dir(lake.path, "trained_models", dataset, model_type), model_type)
    embeddings = embed(model, normalised_splits)
    folder = partition_dir(lake.path, "latent_embeddings", dataset, model_type)
    if config.export_h5ad:
        with atomic_path(folder / "embeddings.h5ad") as tmp:
            to_anndata(embeddings).write_h5ad(tmp)
    yield dg.Output(embeddings, metadata={"profiles": len(embeddings), "latent_dim": model.latent_dim,
                                          "h5ad": str(folder / "embeddings.h5ad") if config.export_h5ad else "not exported"})
    same = len(embeddings) == len(normalised_splits) and embeddings["profile_id"].is_unique
    yield dg.AssetCheckResult(check_name="one_row_per_profile", passed=bool(same),
                              metadata={"embeddings": len(embeddings), "profiles": len(normalised_splits)})


@dg.asset(partitions_def=dataset_model_partitions, group_name="models", kinds={"umap", "parquet"},
          deps=["trained_models"], automation_condition=EAGER)
def generation_qc(context: dg.AssetExecutionContext, config: QCConfig, lake: LakeResource,
                  normalised_splits: pd.DataFrame) -> LakeTables:
    """Reconstruction error on the test split, distance of simulated to real profiles, and a UMAP of
    real, reconstructed and simulated test profiles (view ``generation_qc_umap``)."""
    dataset, model_type = _dims(context)
    model = load_model(partition_dir(lake.path, "trained_models", dataset, model_type), model_type)
    test = normalised_splits[normalised_splits["split"] == "test"]
    qc = run_generation_qc(model, _split(normalised_splits, "test"), test["profile_id"].astype(str).tolist(), config.seed)
    png = umap_figure(qc.coords, f"{dataset} / {model_type}: test split")
    context.add_output_metadata({**{k: round(v, 5) for k, v in qc.scores.items()}, "seed": config.seed,
                                 "umap": dg.MetadataValue.md(markdown_image(png, "UMAP"))})
    return LakeTables(data=pd.DataFrame([qc.scores]), umap=qc.coords)
