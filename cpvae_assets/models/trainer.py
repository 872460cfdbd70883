"""Training a stack of models: early stopping per model, best weights, history. Each epoch is one
compiled TensorFlow function (``compiled``) with the data held as a tensor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from cpvae_assets.models.compiled import EVAL_CHUNK_ROWS, Signature, checked_out, use_chains, use_open_widths
from cpvae_assets.models.stack import CALIBRATION_ROWS, input_moments
from cpvae_assets.schema import MATMUL_DTYPES


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf; the message names the epoch and the model."""


@dataclass(frozen=True)
class StackMember:
    """One model of the stack: its loss weights, its training data and its seed."""

    name: str
    kl_weight: float
    mmd_weight: float
    train: np.ndarray
    validation: np.ndarray
    seed: int


@dataclass
class StackResult:
    members: list[StackMember]
    history: list[dict[str, float | int | str]]  # one row per epoch x member
    best_epoch: list[int]
    best_val_loss: list[float]
    epochs_run: int
    seconds: float
    weights: dict[str, np.ndarray]  # best weights, stacked on axis 0
    batch_size: int
    encoder_batch_norm: bool
    notes: list[str] = field(default_factory=list)


def enable_determinism(seed: int) -> None:
    """Same inputs, same seed -> the same weights (op determinism costs little on CPU)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_stack(
    members: Sequence[StackMember],
    latent_dim: int,
    hidden_dim: int,
    learning_rate: float,
    batch_size: int,
    encoder_batch_norm: bool,
    epochs: int,
    patience: int,
    on_epoch: Callable[[int, list[dict]], None] | None = None,
    raise_on_divergence: bool = True,
    matmul_dtype: str = "float32",
    chains: bool | None = None,
    open_widths: bool | None = None,
) -> StackResult:
    """Train every member with early stopping on its own validation loss; keep its best weights.

    A member whose loss becomes NaN or inf raises ``TrainingDiverged`` (naming the epoch), unless
    ``raise_on_divergence`` is False (grid searches), where it just stops improving. The compiled
    functions are cached per layout (K, batch norm, MMD used, dtype, chains, and the widths unless they
    are open): a later call with the same layout traces nothing, whatever its data, row count, batch
    size or learning rate (and widths, when open).

    ``matmul_dtype='bfloat16'`` (opt-in) rounds the operands of every matrix product to bfloat16: faster
    on CPUs with native bfloat16 units, not bit-identical to float32 (``bench/train_throughput.py``
    measures both; figures in ``bench/results.md``).

    ``chains`` (default: decided by the work, ``use_chains``) trains each model as its own chain of ops,
    faster per epoch but slower to trace than one batched chain; both give the same models up to rounding.
    ``open_widths`` (default: for small work, ``use_open_widths``) reuses one trainer's graphs for any
    widths, at a small cost per step; the models are bit-identical either way.
    """
    if not members:
        raise ValueError("no models to train")
    n_train, n_in = members[0].train.shape
    if any(m.train.shape != (n_train, n_in) or m.validation.shape[1] != n_in for m in members):
        raise ValueError("all members of a stack need training data of the same shape")
    if latent_dim >= n_in:
        raise ValueError(f"latent dimension {latent_dim} is not smaller than the feature count {n_in}")
    notes = []
    if batch_size > n_train:
        notes.append(f"batch size {batch_size} exceeds the {n_train} training profiles; using {n_train}")
        batch_size = n_train
    enable_determinism(members[0].seed)
    k = len(members)
    use_mmd = any(m.mmd_weight != 0 for m in members)  # the kernel matrices cost time; skip them when unused
    if matmul_dtype not in MATMUL_DTYPES:
        raise ValueError(f"matmul_dtype {matmul_dtype!r}; expected one of {MATMUL_DTYPES}")
    sig = Signature(k, int(n_in), int(hidden_dim), int(latent_dim), bool(encoder_batch_norm), use_mmd, matmul_dtype,
                    use_chains(k, n_train, epochs) if chains is None else bool(chains) and k > 1,
                    use_open_widths(k, n_train // batch_size * epochs) if open_widths is None else bool(open_widths))
    # members that share a dataset (real seeds; shuffled seeds) share one copy of it in memory
    unique: dict[int, int] = {}
    for m in members:
        unique.setdefault(id(m.train), len(unique))
    sources = {id(m.train): m for m in members}
    data_idx = tf.constant([unique[id(m.train)] for m in members], tf.int32)
    x_train = _stacked_tensor([sources[key].train for key in unique])  # (U, N, D)
    x_val = _stacked_tensor([sources[key].validation for key in unique])
    kl_w = tf.constant([m.kl_weight for m in members], tf.float32)
    mmd_w = tf.constant([m.mmd_weight for m in members], tf.float32)
    # per model: its own noise and batch order, so a model trains as it would alone
    seeds = tf.constant([m.seed for m in members], tf.int32)
    n_batches = n_train // batch_size
    # exact batch-norm statistics over (at most CALIBRATION_ROWS of) the training rows
    calibration_rows = np.sort(np.random.default_rng(members[0].seed).permutation(n_train)[:CALIBRATION_ROWS])
    if encoder_batch_norm:  # per distinct dataset: mean and covariance of its calibration rows
        moments = [input_moments(sources[key].train[calibration_rows]) for key in unique]
        mean_x, cov_x = (tf.constant(np.stack([m[i] for m in moments])) for i in (0, 1))
    n_val = int(x_val.shape[1])
    # the MMD of a chunk depends on its size (training-sized chunks); the other losses are per profile: large
    # chunks, fewer ops (bounded: L1000's 11,805 validation profiles in one chunk would add ~1 GB at K = 4)
    val_chunk = tf.constant(max(1, min(batch_size if use_mmd else EVAL_CHUNK_ROWS, n_val)), tf.int32)
    batch = tf.constant(batch_size, tf.int32)

    with checked_out(sig) as trainer:
        trainer.reset(sig, [m.seed for m in members], learning_rate)
        best = np.full(k, np.inf)
        best_epoch = [0] * k
        best_weights = trainer.snapshot()
        waited = np.zeros(k, dtype=int)
        history: list[dict] = []
        shufflers = [np.random.default_rng(m.seed) for m in members]
        started = time.perf_counter()
        epoch = 0
        for epoch in range(1, epochs + 1):
            order = np.stack([s.permutation(n_train)[: n_batches * batch_size] for s in shufflers])
            step = tf.constant(epoch, tf.int32)
            train_parts = trainer.run_epoch(x_train, data_idx, tf.constant(order, tf.int32), kl_w, mmd_w, seeds, step,
                                            batch).numpy()
            if sig.batch_norm:
                trainer.calibrate(mean_x, cov_x, data_idx)
            val_parts = trainer.evaluate(x_val, data_idx, kl_w, mmd_w, seeds, step, val_chunk).numpy()
            rows = []
            for j, member in enumerate(members):
                row = {"epoch": epoch, "model": member.name, "seed": member.seed,
                       "loss": float(train_parts[0, j]), "reconstruction": float(train_parts[1, j]),
                       "kl": float(train_parts[2, j]), "mmd": float(train_parts[3, j]),
                       "val_loss": float(val_parts[0, j]), "val_reconstruction": float(val_parts[1, j]),
                       "val_kl": float(val_parts[2, j]), "val_mmd": float(val_parts[3, j])}
                if raise_on_divergence and not all(math.isfinite(v) for v in (row["loss"], row["val_loss"])):
                    raise TrainingDiverged(f"model {member.name!r}: loss became {row['loss']} (validation "
                                           f"{row['val_loss']}) at epoch {epoch}; nothing was stored")
                rows.append(row)
            history += rows
            improved = np.isfinite(val_parts[0]) & (val_parts[0] < best)
            if improved.any():
                snapshot = trainer.snapshot()
                for name, kept in best_weights.items():
                    kept[improved] = snapshot[name][improved]
            for j in np.flatnonzero(improved):
                best[j], best_epoch[j] = val_parts[0, j], epoch
            waited = np.where(improved, 0, waited + 1)
            if on_epoch is not None:
                on_epoch(epoch, rows)
            if (waited >= patience).all():
                break
    return StackResult(list(members), history, best_epoch, [float(b) for b in best], epoch,
                       time.perf_counter() - started, best_weights, batch_size, encoder_batch_norm, notes)


def _stacked_tensor(arrays: Sequence[np.ndarray]) -> tf.Tensor:
    """(U, N, D) float32 tensor of the distinct datasets, with one copy made (not numpy's and TF's)."""
    if len(arrays) == 1:
        return tf.convert_to_tensor(np.asarray(arrays[0], dtype=np.float32)[None])
    return tf.stack([tf.convert_to_tensor(np.asarray(a, dtype=np.float32)) for a in arrays])
