"""Hyperparameter choice as in the paper: beta by Hausdorff distance of prior samples to the training
data, lambda as the largest value whose training stays stable (and whose prior term does not take over
the loss: method.md leaves "stable" open, see ``PRIOR_LOSS_LIMIT``), then Bayesian optimisation (Keras
Tuner's Gaussian-process oracle) of learning rate, batch size, latent dimension and batch norm.

Every trial is a row (stage, parameters, validation loss, seconds), so tuning is queryable with SQL.
Grids are trained as one stack (one member per beta or lambda), which costs about one training run.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cpvae_assets.models.distances import hausdorff
from cpvae_assets.models.hyperparameters import (
    BATCH_SIZES,
    BETA_GRID,
    LAMBDA_GRID,
    LATENT_DIMS,
    LEARNING_RATES,
    NOT_USED,
    SEARCHED,
    Hyperparameters,
    loss_weights,
)


@dataclass
class TuningResult:
    chosen: Hyperparameters
    trials: pd.DataFrame
    source: str  # "paper" (defaults, nothing tuned) or "tuned"


def _grid_stack(train, val, hp: Hyperparameters, weights: list[tuple[float, float]], seed: int, epochs: int):
    from cpvae_assets.models.trainer import StackMember, train_stack

    members = [StackMember(f"grid:{i}", kl, mmd, train, val, seed) for i, (kl, mmd) in enumerate(weights)]
    return train_stack(members, hp.latent_dim, hp.hidden_dim, hp.learning_rate, hp.batch_size,
                       hp.encoder_batch_norm, epochs, patience=epochs, raise_on_divergence=False,
                       matmul_dtype=hp.matmul_dtype)


def choose_beta(train: np.ndarray, val: np.ndarray, hp: Hyperparameters, grid=BETA_GRID, seed: int = 0,
                epochs: int = 50) -> tuple[float, list[dict]]:
    """The paper's method: latent 50, lr 1e-3, BN on, batch 128; smallest prior-sample Hausdorff wins."""
    from cpvae_assets.models.keras_export import decode_prior

    probe = hp.replace(latent_dim=min(50, train.shape[1] - 1), learning_rate=1e-3, encoder_batch_norm=True,
                       batch_size=min(128, len(train)))
    started = time.perf_counter()
    result = _grid_stack(train, val, probe, [(b, 0.0) for b in grid], seed, epochs)
    rows = []
    for i, beta in enumerate(grid):
        simulated = decode_prior(result, i, len(train), seed)
        distance = hausdorff(simulated, train) if np.isfinite(simulated).all() else math.inf
        rows.append({"stage": "beta_grid", "beta": beta, "hausdorff": distance, "val_loss": result.best_val_loss[i],
                     "seconds": (time.perf_counter() - started) / len(grid), **_probe_columns(probe)})
    best = min(rows, key=lambda r: r["hausdorff"])
    return float(best["beta"]), rows


def stable(curve: list[float], reconstruction: list[float]) -> bool:
    """Finite throughout, ends below where it started, no late jump above 1.5x its running minimum,
    and the model still learns to reconstruct (validation reconstruction falls by at least 10%)."""
    if not curve or not all(math.isfinite(v) for v in curve + reconstruction):
        return False
    tail = curve[len(curve) // 2:]
    no_jumps = all(v <= 1.5 * min(curve[: len(curve) // 2 + i + 1]) for i, v in enumerate(tail))
    return curve[-1] <= curve[0] and no_jumps and min(reconstruction) <= 0.9 * reconstruction[0]


# lambda may cost the model at most as much as everything else: its total validation loss at most twice
# that at the grid's smallest lambda (where the prior term is negligible). A larger lambda can train
# "stably" while the prior term alone drives the fit: on l1000_consensus at the paper budget, 1e5 passed
# `stable` with a loss 19x that at lambda 1, and the model then did no better on real than on
# column-shuffled data.
PRIOR_LOSS_LIMIT = 2.0


def choose_lambda(train: np.ndarray, val: np.ndarray, hp: Hyperparameters, grid=LAMBDA_GRID, seed: int = 0,
                  epochs: int = 50) -> tuple[float, list[dict]]:
    """The largest lambda of ``grid`` below which every training was stable and not taken over by the
    prior term (``PRIOR_LOSS_LIMIT``); the first value that fails either ends the scan."""
    started = time.perf_counter()
    result = _grid_stack(train, val, hp, [(0.0, lam) for lam in grid], seed, epochs)
    rows = []
    for i, lam in enumerate(grid):
        mine = [r for r in result.history if r["model"] == f"grid:{i}"]
        is_stable = stable([r["val_loss"] for r in mine], [r["val_reconstruction"] for r in mine])
        rows.append({"stage": "lambda_grid", "lam": lam, "stable": is_stable, "val_loss": result.best_val_loss[i],
                     "seconds": (time.perf_counter() - started) / len(grid), **_probe_columns(hp)})
    return largest_usable_lambda(rows), rows


def largest_usable_lambda(rows: list[dict]) -> float:
    """Marks each grid row ``prior_dominates`` and returns the largest lambda reached, scanning up from the
    smallest, before a row that is unstable or dominated (the smallest lambda when the first one is)."""
    ordered = sorted(rows, key=lambda r: r["lam"])
    base = ordered[0]["val_loss"]
    for row in ordered:
        row["prior_dominates"] = bool(not math.isfinite(row["val_loss"]) or row["val_loss"] > PRIOR_LOSS_LIMIT * base)
    chosen = float(ordered[0]["lam"])
    for row in ordered:
        if not row["stable"] or row["prior_dominates"]:
            break
        chosen = float(row["lam"])
    return chosen


def _probe_columns(hp: Hyperparameters) -> dict[str, object]:
    return {"learning_rate": hp.learning_rate, "batch_size": hp.batch_size, "latent_dim": hp.latent_dim,
            "encoder_batch_norm": hp.encoder_batch_norm}


def bayesian_search(train: np.ndarray, val: np.ndarray, objective: str, hp: Hyperparameters, trials: int,
                    seed: int = 0, epochs: int = 50) -> tuple[Hyperparameters, list[dict]]:
    """Keras Tuner's Bayesian optimisation over the paper's space; each trial trains one model."""
    import keras_tuner as kt

    from cpvae_assets.models.trainer import StackMember, train_stack

    space = kt.HyperParameters()
    space.Choice("learning_rate", list(LEARNING_RATES))
    space.Choice("batch_size", [b for b in BATCH_SIZES if b <= len(train)] or [len(train)])
    space.Choice("latent_dim", [d for d in LATENT_DIMS if d < train.shape[1]])
    space.Boolean("encoder_batch_norm")
    # Keras Tuner takes a seed of 0 for none and draws one from Python's global random state, which
    # whatever ran before in the process had moved: the demo's first partition got other trials when
    # it ran in another order. seed + 1 is never 0.
    oracle = kt.oracles.BayesianOptimizationOracle(
        objective=kt.Objective("val_loss", "min"), max_trials=trials, hyperparameters=space, seed=seed + 1,
        num_initial_points=max(1, min(3, trials - 1)))
    kl_w, mmd_w = loss_weights(objective, hp)  # type: ignore[arg-type]

    def evaluate(candidate: Hyperparameters, number: int, stage: str) -> dict:
        started = time.perf_counter()
        result = train_stack([StackMember("trial", kl_w, mmd_w, train, val, seed)], candidate.latent_dim,
                             candidate.hidden_dim, candidate.learning_rate, candidate.batch_size,
                             candidate.encoder_batch_norm, epochs, candidate.patience, raise_on_divergence=False,
                             matmul_dtype=candidate.matmul_dtype)
        return {"stage": stage, "trial": number, **_probe_columns(candidate), "val_loss": result.best_val_loss[0],
                "epochs_run": result.epochs_run, "seconds": time.perf_counter() - started}

    # the paper's configuration is the reference trial: tuning never returns something worse than it
    rows = [evaluate(hp, -1, "paper_reference")]
    candidates = {-1: hp}
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
        oracle._set_project_dir(folder, "cpvae")
        for number in range(trials):
            trial = oracle.create_trial("cpvae")
            if trial.status == "STOPPED":
                break
            values = trial.hyperparameters.values
            candidates[number] = hp.replace(**{k: values[k] for k in SEARCHED})
            rows.append(evaluate(candidates[number], number, "bayesian"))
            score = rows[-1]["val_loss"] if math.isfinite(rows[-1]["val_loss"]) else 1e30
            oracle.update_trial(trial.trial_id, {"val_loss": score})
            trial.status = "COMPLETED"
            oracle.end_trial(trial)
    finite = [r for r in rows if math.isfinite(r["val_loss"])] or rows[:1]
    best = min(finite, key=lambda r: r["val_loss"])
    return candidates[best["trial"]], rows


def search_rows_chosen(rows: list[dict], chosen: Hyperparameters) -> int:
    """The trial number whose parameters are the chosen ones (the reference trial wins ties)."""
    for row in rows:
        if all(row[k] == getattr(chosen, k) for k in SEARCHED):
            return int(row["trial"])
    raise ValueError("chosen hyperparameters are not among the trials")


def tune(train: np.ndarray, val: np.ndarray, model_type: str, defaults: Hyperparameters, trials: int,
         seed: int = 0, epochs: int = 50, beta_grid=BETA_GRID, lambda_grid=LAMBDA_GRID) -> TuningResult:
    """Paper defaults when ``trials`` is 0; otherwise the grids (beta / lambda) then ``trials`` BO trials."""
    if trials <= 0 or model_type == "pca":
        row = {"stage": "paper_defaults", **_probe_columns(defaults), "beta": defaults.beta, "lam": defaults.lam,
               "val_loss": math.nan, "seconds": 0.0}
        return TuningResult(defaults, _blank_unused(pd.DataFrame([row]).assign(chosen=True), model_type), "paper")
    rows: list[dict] = []
    hp = defaults
    if model_type == "beta":
        beta, grid_rows = choose_beta(train, val, hp, beta_grid, seed, epochs)
        hp, rows = hp.replace(beta=beta), rows + grid_rows
    elif model_type == "mmd":
        lam, grid_rows = choose_lambda(train, val, hp, lambda_grid, seed, epochs)
        hp, rows = hp.replace(lam=lam), rows + grid_rows
    chosen, search_rows = bayesian_search(train, val, model_type, hp, trials, seed, epochs)
    rows += search_rows
    frame = pd.DataFrame(rows)
    # rows of stages that did not vary beta / lambda (and every row, when no grid ran) used the chosen value
    for name in ("beta", "lam"):
        frame[name] = frame[name].fillna(getattr(chosen, name)) if name in frame else getattr(chosen, name)
    searched = frame["stage"].isin(["paper_reference", "bayesian"])
    frame["chosen"] = searched & (frame["trial"] == search_rows_chosen(search_rows, chosen))
    return TuningResult(chosen, _blank_unused(frame, model_type), "tuned")


def _blank_unused(trials: pd.DataFrame, model_type: str) -> pd.DataFrame:
    """Empty the columns of hyperparameters ``model_type`` does not use (NULL in SQL, blank in the report)."""
    return trials.assign(**{name: np.nan for name in NOT_USED[model_type] if name in trials.columns})
