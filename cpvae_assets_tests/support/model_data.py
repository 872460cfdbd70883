"""Small synthetic data for the model tests: a low-rank structure squashed into [0, 1], so a VAE beats
the column-shuffled control within a few epochs, and the hyperparameters the model tests train with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cpvae_assets.models.hyperparameters import Hyperparameters, paper_defaults

N_PROFILES, N_FEATURES, RANK, LATENT, HIDDEN = 480, 48, 3, 3, 16
OBJECTIVES = ("vanilla", "beta", "mmd")
# vanilla without batch norm, beta and MMD with it: both encoder variants are trained and exported
BATCH_NORM = {"vanilla": False, "beta": True, "mmd": True}
HP = paper_defaults("cp5", N_FEATURES, latent_dim=LATENT, hidden_dim=HIDDEN, batch_size=32, learning_rate=3e-3,
                    epochs=8, patience=8)
STACK_EPOCHS = 4


def low_rank(n: int = N_PROFILES, f: int = N_FEATURES, rank: int = RANK, seed: int = 0) -> np.ndarray:
    """Profiles in [0, 1] driven by ``rank`` hidden factors: strongly correlated features."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, rank))
    w = rng.standard_normal((rank, f)) * 1.5
    return (1.0 / (1.0 + np.exp(-(z @ w + 0.1 * rng.standard_normal((n, f)))))).astype(np.float32)


@dataclass(frozen=True)
class Data:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def all(self) -> np.ndarray:
        return np.concatenate([self.train, self.val, self.test])


def hp_for(model_type: str) -> Hyperparameters:
    return HP.replace(encoder_batch_norm=BATCH_NORM.get(model_type, True))
