"""Training a stack: each epoch is one compiled TensorFlow function with the data held as a tensor, and
the compiled functions are cached per shape signature, so tuning trials, seeds and the next partition
reuse the traced graphs instead of paying seconds of tracing each time. Inside an epoch the K models
are independent chains of ops, which TensorFlow runs side by side, one thread per op
(``cpvae_assets.models`` sets the thread pools).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from cpvae_assets.models.adam import FusedAdam
from cpvae_assets.models.stack import (
    CALIBRATION_ROWS,
    Stack,
    epoch_noise,
    input_moments,
    losses,
    reciprocal,
)
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


@dataclass(frozen=True)
class Signature:
    """What a compiled training function depends on: the shapes of the variables and two switches.

    Everything else (row counts, batch size, learning rate, loss weights, seeds, the data) is an
    argument of the compiled functions, so a second ``train_stack`` call with the same signature
    (a tuning trial, the next partition, the shuffled control of a grid) reuses the traced graphs.
    """

    k: int
    n_in: int
    hidden: int
    latent: int
    batch_norm: bool
    use_mmd: bool
    matmul_dtype: str = "float32"
    chains: bool = False  # one chain of ops per model (``Trainer``), else one batched chain of K


EVAL_CHUNK_ROWS = 2048
# K chains trace in ~K times the ops: 2-3 s more than one batched chain at K = 4 on 2 cores, while an
# epoch of CP5 (9,331 rows) runs 1.1 s instead of 2.4 s. Chains pay from ~100,000 model x row x epochs.
CHAINS_MIN_WORK = 100_000


def use_chains(k: int, rows: int, epochs: int) -> bool:
    return k > 1 and k * rows * epochs >= CHAINS_MIN_WORK

# how often each compiled function was traced in this process (tests; the tracing cost is seconds)
_TRAINER_CACHE_SIZE = 16


class Trainer:
    """The variables (weights, Adam's state) and compiled epoch functions of one ``Signature``.

    ``reset`` gives it fresh weights and optimizer state, so a reused trainer trains exactly as a
    new one (bit for bit: same ops, same inputs)."""

    def __init__(self, sig: Signature):
        self.sig = sig
        # chains: one Stack of 1 per member, K independent chains of ops that TensorFlow's executor runs
        # side by side on its inter-op threads. Measured at the Cell Painting level-5 shape with K = 6,
        # 2 cores: 1.5 s per epoch, against 3.6 s for one Stack of 6 (batched matmuls), which traces faster.
        blocks = [(j, j + 1) for j in range(sig.k)] if sig.chains else [(0, sig.k)]
        self.blocks = [(a, b, Stack(b - a, sig.n_in, sig.hidden, sig.latent, sig.batch_norm, matmul_dtype=sig.matmul_dtype))
                        for a, b in blocks]
        self.variables = [var for _, _, member in self.blocks for var in member.trainables]
        self.optimizer = FusedAdam(self.variables)
        k = sig.k
        data = tf.TensorSpec([None, None, sig.n_in], tf.float32)  # (distinct datasets, rows, features)
        ints, floats, scalar = tf.TensorSpec([k], tf.int32), tf.TensorSpec([k], tf.float32), tf.TensorSpec([], tf.int32)
        self.run_epoch = tf.function(self._run_epoch, input_signature=[
            data, ints, tf.TensorSpec([k, None], tf.int32), floats, floats, ints, scalar, scalar])
        self.evaluate = tf.function(self._evaluate, input_signature=[data, ints, floats, floats, ints, scalar, scalar])
        self.calibrate = tf.function(self._calibrate, input_signature=[
            tf.TensorSpec([None, 1, sig.n_in], tf.float32), tf.TensorSpec([None, sig.n_in, sig.n_in], tf.float32), ints])

    def reset(self, seeds: Sequence[int], learning_rate: float) -> None:
        for a, b, member in self.blocks:
            member.reset(list(seeds[a:b]))
        self.optimizer.reset(learning_rate)

    def snapshot(self) -> dict[str, np.ndarray]:
        """Every member's variables, stacked on axis 0 (K, ...) as a ``Stack`` of K holds them."""
        states = [member.state for _, _, member in self.blocks]
        return {name: np.concatenate([state[name].numpy() for state in states]) for name in states[0]}

    def _losses(self, x, rows, kl_w, mmd_w, draws, span, training):
        """Per block of members a..b: their loss parts (4, b - a), member j on rows ``rows[j]`` of the flattened data ``x``."""
        return [tf.stack(losses(member, tf.gather(x, rows[a:b]), kl_w[a:b], mmd_w[a:b], draws[0][a:b, span],
                                draws[1][a:b, span], training=training, use_mmd=self.sig.use_mmd))
                for a, b, member in self.blocks]

    def _run_epoch(self, x_train, data_idx, order, kl_w, mmd_w, seeds, epoch, batch_size):
        """One epoch: ``order`` (K, n_batches x batch) holds each member's shuffled row indices."""
        n_rows = tf.shape(x_train)[1]
        x_flat = tf.reshape(x_train, [-1, self.sig.n_in])
        flat_order = order + data_idx[:, None] * n_rows  # member k's rows of its own dataset
        n_batches = tf.shape(order)[1] // batch_size
        sums = tf.zeros((4, self.sig.k))
        draws = epoch_noise(seeds, epoch, n_batches * batch_size, self.sig.latent, 0)
        for i in tf.range(n_batches):
            span = slice(i * batch_size, (i + 1) * batch_size)
            with tf.GradientTape() as tape:
                parts = self._losses(x_flat, flat_order[:, span], kl_w, mmd_w, draws, span, training=True)
                objectives = [p[0] for p in parts]
            # one target per member with a constant seed gradient: no member's backward pass waits for another's forward
            self.optimizer.apply(tape.gradient(objectives, self.variables,
                                               output_gradients=[tf.ones((b - a,)) for a, b, _ in self.blocks]))
            sums += tf.concat(parts, axis=1)
        return sums * reciprocal(n_batches)

    def _evaluate(self, x_val, data_idx, kl_w, mmd_w, seeds, epoch, chunk):
        # every validation profile counts; chunks of the batch size keep the MMD on the training scale
        n_val = tf.shape(x_val)[1]
        x_flat = tf.reshape(x_val, [-1, self.sig.n_in])
        sums = tf.zeros((4, self.sig.k))
        draws = epoch_noise(seeds, epoch, n_val, self.sig.latent, 1)
        for i in tf.range((n_val + chunk - 1) // chunk):
            rows = tf.range(i * chunk, tf.minimum((i + 1) * chunk, n_val))
            span = slice(i * chunk, (i + 1) * chunk)
            parts = self._losses(x_flat, rows[None, :] + data_idx[:, None] * n_val, kl_w, mmd_w, draws, span, training=False)
            sums += tf.concat(parts, axis=1) * tf.cast(tf.size(rows), tf.float32)
        return sums * reciprocal(n_val)

    def _calibrate(self, mean_x, cov_x, data_idx):
        for a, b, member in self.blocks:
            member.calibrate(tf.gather(mean_x, data_idx[a:b]), tf.gather(cov_x, data_idx[a:b]))
        return tf.constant(0)


_TRAINERS: OrderedDict[Signature, Trainer] = OrderedDict()
_TRAINERS_LOCK = threading.Lock()


@contextmanager
def _trainer(sig: Signature) -> Iterator[Trainer]:
    """A cached trainer of this signature, held exclusively while in use (a concurrent call of the
    same signature builds its own), and cached again afterwards (least recently used dropped)."""
    with _TRAINERS_LOCK:
        trainer = _TRAINERS.pop(sig, None)
    trainer = trainer or Trainer(sig)
    try:
        yield trainer
    finally:
        with _TRAINERS_LOCK:
            _TRAINERS[sig] = trainer
            while len(_TRAINERS) > _TRAINER_CACHE_SIZE:
                _TRAINERS.popitem(last=False)


def compiled_traces() -> dict[Signature, dict[str, int]]:
    """Per cached signature, how often each compiled function was traced (TensorFlow's own count): a
    call with a known signature adds nothing (tracing costs seconds on a 2-core machine)."""
    with _TRAINERS_LOCK:
        trainers = list(_TRAINERS.items())
    return {sig: {name: getattr(t, name).experimental_get_tracing_count() for name in ("run_epoch", "evaluate", "calibrate")}
            for sig, t in trainers}


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
) -> StackResult:
    """Train every member with early stopping on its own validation loss; keep its best weights.

    A member whose loss becomes NaN or inf raises ``TrainingDiverged`` (naming the epoch), unless
    ``raise_on_divergence`` is False (grid searches), where it just stops improving. The compiled
    functions are cached per (K, features, hidden, latent, batch norm, MMD used): a later call with
    the same shapes traces nothing, whatever its data, row count, batch size or learning rate.

    ``matmul_dtype='bfloat16'`` (opt-in) rounds the operands of every matrix product to bfloat16: faster
    on CPUs with native bfloat16 units, not bit-identical to float32 (``bench/train_throughput.py``
    measures both; figures in ``bench/results.md``).

    ``chains`` (default: decided by the work, ``use_chains``) trains each model as its own chain of ops,
    faster per epoch but slower to trace than one batched chain; both give the same models up to rounding.
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
                    use_chains(k, n_train, epochs) if chains is None else bool(chains) and k > 1)
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

    with _trainer(sig) as trainer:
        trainer.reset([m.seed for m in members], learning_rate)
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
