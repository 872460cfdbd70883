"""Train one model type on one dataset: real data and the paper's column-shuffled control, together."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cpvae_assets.models.hyperparameters import Hyperparameters, loss_weights
from cpvae_assets.models.latent import LatentModel, PcaModel
from cpvae_assets.schema import check_model_type


@dataclass
class TrainedRun:
    model: LatentModel
    summary: pd.DataFrame  # one row per trained member (real / shuffled x seed)
    curves: pd.DataFrame  # one row per epoch x member
    hyperparameters: Hyperparameters
    seconds: float
    notes: list[str] = field(default_factory=list)
    seed_models: list[tuple[int, LatentModel]] = field(default_factory=list)  # every real seed, for the spread


def column_shuffled(x: np.ndarray, seed: int) -> np.ndarray:
    """Each column permuted independently: marginals kept, every correlation between features gone."""
    return np.random.default_rng(seed).permuted(x, axis=0)


def _reconstruction(model: LatentModel, x: np.ndarray) -> float:
    return float(np.mean(np.sum((x - model.decode(model.encode(x))) ** 2, axis=1)))


def _train_pca(train: np.ndarray, val: np.ndarray, hp: Hyperparameters, seed: int) -> TrainedRun:
    started = time.perf_counter()
    rows, curves, models = [], [], {}
    for role, (x_train, x_val) in {
        "real": (train, val),
        "shuffled": (column_shuffled(train, seed + 1000), column_shuffled(val, seed + 2000)),
    }.items():
        model = PcaModel.fit(x_train, hp.latent_dim, seed)
        models[role] = model
        loss, val_loss = _reconstruction(model, x_train), _reconstruction(model, x_val)
        rows.append({"role": role, "seed": seed, "epochs_run": 1, "best_epoch": 1, "val_loss": val_loss,
                     "loss": loss, "chosen": role == "real",
                     "explained_variance": float(model.pca.explained_variance_ratio_.sum())})
        curves.append({"role": role, "seed": seed, "epoch": 1, "loss": loss, "reconstruction": loss, "kl": 0.0,
                       "mmd": 0.0, "val_loss": val_loss, "val_reconstruction": val_loss, "val_kl": 0.0, "val_mmd": 0.0})
    return TrainedRun(models["real"], pd.DataFrame(rows), pd.DataFrame(curves), hp, time.perf_counter() - started)


def train_model(
    train: np.ndarray,
    val: np.ndarray,
    model_type: str,
    hp: Hyperparameters,
    seed: int = 0,
    n_seeds: int = 2,
    on_epoch: Callable[[int, list[dict]], None] | None = None,
) -> TrainedRun:
    """Train ``n_seeds`` real and ``n_seeds`` column-shuffled models in one stack; keep the best real one."""
    check_model_type(model_type)
    if hp.latent_dim >= train.shape[1]:
        raise ValueError(f"latent dimension {hp.latent_dim} is not smaller than the {train.shape[1]} features")
    if len(train) < 2 or len(val) < 1:
        raise ValueError(f"{len(train)} training and {len(val)} validation profiles are too few to train on")
    if model_type == "pca":
        return _train_pca(train, val, hp, seed)
    from cpvae_assets.models.keras_export import keras_models
    from cpvae_assets.models.trainer import StackMember, train_stack

    kl_w, mmd_w = loss_weights(model_type, hp)  # type: ignore[arg-type]
    members = [StackMember(f"real:{seed + i}", kl_w, mmd_w, train, val, seed + i) for i in range(n_seeds)]
    # one column-shuffled copy serves every shuffled seed (held once in memory by the stack)
    shuffled_train, shuffled_val = column_shuffled(train, seed + 1000), column_shuffled(val, seed + 2000)
    members += [StackMember(f"shuffled:{seed + i}", kl_w, mmd_w, shuffled_train, shuffled_val, seed + i)
                for i in range(n_seeds)]
    result = train_stack(members, hp.latent_dim, hp.hidden_dim, hp.learning_rate, hp.batch_size,
                         hp.encoder_batch_norm, hp.epochs, hp.patience, on_epoch, matmul_dtype=hp.matmul_dtype)
    real = [i for i, m in enumerate(members) if m.name.startswith("real")]
    chosen = min(real, key=lambda i: result.best_val_loss[i])
    last = {row["model"]: row for row in result.history}
    summary = pd.DataFrame([
        {"role": m.name.split(":")[0], "seed": m.seed, "epochs_run": result.epochs_run,
         "best_epoch": result.best_epoch[i], "val_loss": result.best_val_loss[i], "loss": last[m.name]["loss"],
         "chosen": i == chosen}
        for i, m in enumerate(members)
    ])
    curves = pd.DataFrame(result.history)
    curves.insert(0, "role", curves.pop("model").str.split(":").str[0])
    from cpvae_assets.models.latent import KerasModel

    seed_models = [(members[i].seed, KerasModel(*keras_models(result, i))) for i in real]
    best = dict(zip(real, seed_models))[chosen][1]
    hp_used = hp.replace(batch_size=result.batch_size)
    return TrainedRun(best, summary, curves, hp_used, result.seconds, result.notes, seed_models)
