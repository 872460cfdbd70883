"""Hyperparameters, the paper's defaults per data type, and the search space of the tuner."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

from cpvae_assets.schema import MatmulDtype, Objective

Preset = Literal["cp5", "cp4", "l1000"]

LEARNING_RATES = (1e-2, 1e-3, 1e-4, 1e-5)
BATCH_SIZES = tuple(range(32, 513, 32))
LATENT_DIMS = tuple(range(5, 151, 5))
BETA_GRID = (0.01, 0.06, 0.1, 0.3, 1.0, 3.0, 10.0, 40.0)
LAMBDA_GRID = (1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7)
# a few hundred profiles (a single real plate) still get this many optimiser steps per epoch
MIN_STEPS = 10
SEARCHED = ("learning_rate", "batch_size", "latent_dim", "encoder_batch_norm")
# what a model type's training does not use: left empty (NULL) in the stored tables rather than showing
# a value that changed nothing (a lambda of 1e7 for a beta-VAE, a learning rate for PCA)
NOT_USED: dict[str, frozenset[str]] = {
    "vanilla": frozenset({"beta", "lam"}),
    "beta": frozenset({"lam"}),
    "mmd": frozenset({"beta"}),
    "pca": frozenset({"learning_rate", "batch_size", "encoder_batch_norm", "beta", "lam", "hidden_dim", "epochs",
                      "patience", "matmul_dtype"}),
}


@dataclass(frozen=True)
class Hyperparameters:
    latent_dim: int
    learning_rate: float
    batch_size: int
    encoder_batch_norm: bool
    beta: float
    lam: float
    hidden_dim: int
    epochs: int = 50
    patience: int = 10
    matmul_dtype: MatmulDtype = "float32"  # bfloat16 operands train faster where the CPU has bf16 units

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def replace(self, **changes: object) -> Hyperparameters:
        return replace(self, **changes)


# Table 1 and section 5.4 of the paper; hidden width about half the input
PAPER: dict[Preset, dict[str, object]] = {
    "cp5": dict(latent_dim=10, learning_rate=1e-3, batch_size=96, encoder_batch_norm=True, beta=0.3, lam=1e3, hidden_dim=250),
    "cp4": dict(latent_dim=90, learning_rate=1e-4, batch_size=32, encoder_batch_norm=True, beta=0.06, lam=1e4, hidden_dim=250),
    "l1000": dict(latent_dim=65, learning_rate=1e-3, batch_size=512, encoder_batch_norm=True, beta=40.0, lam=1e7, hidden_dim=500),
}


def paper_defaults(preset: Preset, n_features: int | None = None, **overrides: object) -> Hyperparameters:
    """The paper's hyperparameters; the hidden width follows the input (about half) when given."""
    if preset not in PAPER:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PAPER)}")
    values = dict(PAPER[preset])
    if n_features is not None:
        values["hidden_dim"] = max(2, round(n_features / 2.35)) if preset != "l1000" else max(2, round(n_features / 1.956))
    values.update(overrides)
    return Hyperparameters(**values)


def loss_weights(objective: Objective, hp: Hyperparameters) -> tuple[float, float]:
    """(KL weight, MMD weight) of the objective: vanilla 1/0, beta beta/0, MMD 0/lambda."""
    if objective == "vanilla":
        return 1.0, 0.0
    if objective == "beta":
        return hp.beta, 0.0
    if objective == "mmd":
        return 0.0, hp.lam
    raise ValueError(f"unknown objective {objective!r}; expected vanilla, beta or mmd")


def fit_to_data(hp: Hyperparameters, model_type: str, n_features: int, n_train: int) -> tuple[Hyperparameters, list[str]]:
    """The paper's values where the data allow them: a latent dimension below the feature count (and,
    for PCA, the profile count), and a batch small enough for ``MIN_STEPS`` steps per epoch. Returns
    the hyperparameters and a note for every change."""
    notes = []
    ceiling = min(n_features, n_train) - 1 if model_type == "pca" else n_features - 1
    if hp.latent_dim > ceiling:
        notes.append(f"latent dimension {hp.latent_dim} is too large for {n_features} features and {n_train} "
                     f"training profiles; using {ceiling}")
        hp = hp.replace(latent_dim=ceiling)
    small = max(8, n_train // MIN_STEPS)
    if hp.batch_size > small:
        notes.append(f"{n_train} training profiles are too few for batch size {hp.batch_size} (fewer than "
                     f"{MIN_STEPS} steps per epoch); using {small}")
        hp = hp.replace(batch_size=small)
    return hp, notes


def recorded(hp: Hyperparameters, model_type: str) -> dict[str, object]:
    """The hyperparameters as stored for ``model_type``: the ones it does not use are None."""
    return {name: None if name in NOT_USED[model_type] else value for name, value in hp.as_dict().items()}


def from_trial(row: dict, epochs: int, patience: int, matmul_dtype: MatmulDtype = "float32") -> Hyperparameters:
    """The hyperparameters of one stored tuning trial (a row of ``tuned_hyperparameters``); a value left
    empty because the model type does not use it becomes 0 (it changes nothing)."""

    def value(name: str) -> float:
        raw = row.get(name)
        return 0.0 if raw is None or raw != raw else float(raw)

    return Hyperparameters(latent_dim=int(row["latent_dim"]), learning_rate=value("learning_rate"),
                           batch_size=int(value("batch_size")), encoder_batch_norm=bool(value("encoder_batch_norm")),
                           beta=value("beta"), lam=value("lam"), hidden_dim=int(value("hidden_dim")),
                           epochs=epochs, patience=patience, matmul_dtype=matmul_dtype)
