"""Hyperparameter tuning: the paper's values without trials, the beta grid and the Bayesian search, the
stability rule for a training curve, and the Hausdorff distance the grid ranks by."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cpvae_assets_tests.support.model_data import HP, LATENT, Data

# --------------------------------------------------------------------------------------------- tuning


def _stored(row, name: str, hp, model_type: str):
    """What the trials table should hold: the value, or empty where the model type does not use it."""
    from cpvae_assets.models.hyperparameters import NOT_USED

    return None if name in NOT_USED[model_type] else getattr(hp, name)


def _same(stored, expected) -> bool:
    return (expected is None and bool(np.isnan(stored))) or stored == expected


def test_tune_without_trials_uses_the_paper(data: Data) -> None:
    from cpvae_assets.models.tuning import tune

    for model_type in ("beta", "pca"):
        result = tune(data.train, data.val, model_type, HP, trials=0 if model_type == "beta" else 5)
        assert result.source == "paper"
        assert result.chosen == HP
        assert len(result.trials) == 1 and result.trials["chosen"].sum() == 1
        row = result.trials.iloc[0]
        assert row["stage"] == "paper_defaults"
        assert row["latent_dim"] == LATENT
        for name in ("batch_size", "beta", "lam"):
            assert _same(row[name], _stored(row, name, HP, model_type)), (model_type, name, row[name])


def test_tune_beta_grid_and_bayesian_search(data: Data) -> None:
    from cpvae_assets.models.tuning import tune

    result = tune(data.train, data.val, "beta", HP, trials=1, epochs=2, beta_grid=(0.1, 1.0))
    trials = result.trials
    assert result.source == "tuned"
    assert trials["stage"].value_counts().to_dict() == {"beta_grid": 2, "paper_reference": 1, "bayesian": 1}
    grid = trials[trials["stage"] == "beta_grid"]
    assert sorted(grid["beta"]) == [0.1, 1.0]
    assert np.isfinite(grid["hausdorff"]).all() and (grid["hausdorff"] > 0).all()
    best_beta = grid.loc[grid["hausdorff"].idxmin(), "beta"]
    assert result.chosen.beta == best_beta

    assert trials["chosen"].sum() == 1
    chosen = trials.loc[trials["chosen"]].iloc[0]
    assert chosen["stage"] in ("paper_reference", "bayesian")
    for name in ("learning_rate", "batch_size", "latent_dim", "encoder_batch_norm", "beta", "lam"):
        assert _same(chosen[name], _stored(chosen, name, result.chosen, "beta")), name
    assert np.isnan(chosen["lam"])  # the beta-VAE has no MMD weight: stored empty, not a made-up value
    searched = trials[trials["stage"].isin(["paper_reference", "bayesian"])]
    assert chosen["val_loss"] == searched["val_loss"].min()
    reference = searched[searched["stage"] == "paper_reference"].iloc[0]
    assert (reference["learning_rate"], reference["batch_size"], reference["latent_dim"]) == (
        HP.learning_rate, HP.batch_size, HP.latent_dim)
    assert result.chosen.hidden_dim == HP.hidden_dim and result.chosen.lam == HP.lam


DOWN = [5.0, 4.0, 3.0, 2.5, 2.2, 2.0]


@pytest.mark.parametrize("curve, reconstruction, expected", [
    (DOWN, [4.0, 3.0, 2.5, 2.0, 1.8, 1.7], True),
    ([5.0, 4.0, math.nan, 2.5, 2.2, 2.0], [4.0, 3.0, 2.5, 2.0, 1.8, 1.7], False),
    (DOWN, [4.0, 3.0, 2.5, math.inf, 1.8, 1.7], False),
    ([10.0, 5.0, 3.0, 2.0, 1.5, 4.0], [4.0, 3.0, 2.5, 2.0, 1.8, 1.7], False),  # late jump, still below start
    (DOWN, [4.0, 4.0, 3.9, 3.9, 3.8, 3.8], False),  # reconstruction never falls by 10 %
    ([2.0, 3.0, 4.0, 5.0], [4.0, 3.0, 2.0, 1.0], False),  # ends above its start
    ([], [], False),
], ids=["decreasing", "nan", "inf_reconstruction", "late_jump", "flat_reconstruction", "rising", "empty"])
def test_stable(curve: list[float], reconstruction: list[float], expected: bool) -> None:
    from cpvae_assets.models.tuning import stable

    assert stable(curve, reconstruction) is expected


PAPER_L1000 = [5.73, 5.77, 5.95, 7.49, 18.26, 110.2, 996.9, 9671.9]  # l1000_consensus, paper budget


@pytest.mark.parametrize("losses, stable, expected", [
    (PAPER_L1000, [True] * 6 + [False] * 2, 1e3),  # 1e4 and 1e5 train stably, but the prior term rules
    ([2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7], [True] * 8, 1e7),
    ([2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7], [True, True, False] + [True] * 5, 10.0),  # one unstable ends it
    ([2.0, 4.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7], [True] * 8, 1.0),  # dominated at once: the smallest
    ([2.0, 2.1, math.nan, 2.3, 2.4, 2.5, 2.6, 2.7], [True] * 8, 10.0),
], ids=["paper_l1000", "all_usable", "unstable", "dominated_first", "nan"])
def test_largest_usable_lambda(losses: list[float], stable: list[bool], expected: float) -> None:
    from cpvae_assets.models.hyperparameters import LAMBDA_GRID
    from cpvae_assets.models.tuning import largest_usable_lambda

    rows = [{"lam": lam, "stable": ok, "val_loss": loss}
            for lam, ok, loss in reversed(list(zip(LAMBDA_GRID, stable, losses)))]  # any order
    assert largest_usable_lambda(rows) == expected
    assert [r["prior_dominates"] for r in sorted(rows, key=lambda r: r["lam"])] == [
        not (loss <= 2 * losses[0]) for loss in losses]


def test_hausdorff() -> None:
    from scipy.spatial.distance import cdist

    from cpvae_assets.models.distances import hausdorff

    rng = np.random.default_rng(0)
    a, b = rng.random((30, 5)), rng.random((20, 5)) + 0.5
    assert hausdorff(a, a) == 0.0
    assert hausdorff(a, b) == hausdorff(b, a) > 0
    d = cdist(a, b)
    assert hausdorff(a, b) == pytest.approx(max(d.min(axis=1).max(), d.min(axis=0).max()))
    assert hausdorff(a, np.concatenate([a, a[:3]])) == 0.0
