"""The compiled epoch functions of a stack of models, cached per layout (``Signature.layout``: K, batch norm,
MMD, dtype, chains; the widths only when they are fixed), so tuning trials, seeds, other datasets and the next partition reuse
the traced graphs instead of paying 0.4-1.7 s of tracing and graph optimisation each time. Inside
an epoch the K models are independent chains of ops (where the work pays for their tracing), which
TensorFlow runs side by side, one thread per op (``cpvae_assets.models`` sets the thread pools).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import tensorflow as tf

from cpvae_assets.models.adam import FusedAdam
from cpvae_assets.models.stack import Stack, epoch_noise, losses, reciprocal


@dataclass(frozen=True)
class Signature:
    """A stack's shapes and switches. The compiled functions depend on its ``layout`` only.

    Everything else (row counts, batch size, learning rate, loss weights, seeds, the data; and with
    ``open_widths`` the features, hidden units and latent dimensions) is an argument of the compiled
    functions or a variable's value, so a later ``train_stack`` call with the same layout (a tuning
    trial, the next partition or dataset, the shuffled control of a grid) reuses the traced graphs.
    """

    k: int
    n_in: int
    hidden: int
    latent: int
    batch_norm: bool
    use_mmd: bool
    matmul_dtype: str = "float32"
    chains: bool = False  # one chain of ops per model (``Trainer``), else one batched chain of K
    open_widths: bool = True  # graphs for any widths (``use_open_widths``), else for these widths only

    @property
    def layout(self) -> Signature:
        """What a traced graph is specific to: the signature, without its widths when they are open."""
        return replace(self, n_in=0, hidden=0, latent=0) if self.open_widths else self


EVAL_CHUNK_ROWS = 2048
# K chains trace in ~K times the ops: 2-3 s more than one batched chain at K = 4 on 2 cores, while an
# epoch of CP5 (9,331 rows) runs 1.1 s instead of 2.4 s. Chains pay from ~100,000 model x row x epochs
# (measured when each width traced anew; now a process traces a layout once, so this is conservative).
CHAINS_MIN_WORK = 100_000


def use_chains(k: int, rows: int, epochs: int) -> bool:
    return k > 1 and k * rows * epochs >= CHAINS_MIN_WORK


# Open widths save the 0.4-1.7 s of tracing a new width, and cost ~0.14 ms per model and step (shapes
# computed at run time, not folded into the graph: demo_cp_level4's batch-32 epoch 2.40 s against 2.20-2.28 s
# on one core, K = 4). Fixed widths pay from ~10,000 model x steps: the demo's level-4 training, the
# paper budget's trainings and trials; both give the same weights bit for bit.
OPEN_WIDTHS_MAX_STEPS = 10_000


def use_open_widths(k: int, steps: int) -> bool:
    return k * steps < OPEN_WIDTHS_MAX_STEPS

# trainers kept per process (one per layout in use; least recently used dropped)
_TRAINER_CACHE_SIZE = 16


class Trainer:
    """The variables (weights, Adam's state) and compiled epoch functions of one ``Signature.layout``.

    ``reset`` gives it the widths of a signature, fresh weights and optimizer state, so a reused trainer
    trains exactly as a new one (bit for bit: same ops, same inputs)."""

    def __init__(self, sig: Signature):
        self.sig = sig.layout
        # chains: one Stack of 1 per member, K independent chains of ops that TensorFlow's executor runs
        # side by side on its inter-op threads. Measured at the Cell Painting level-5 shape with K = 6,
        # 2 cores: 1.5 s per epoch, against 3.6 s for one Stack of 6 (batched matmuls), which traces faster.
        blocks = [(j, j + 1) for j in range(sig.k)] if sig.chains else [(0, sig.k)]
        self.blocks = [(a, b, Stack(b - a, sig.n_in, sig.hidden, sig.latent, sig.batch_norm,
                                    matmul_dtype=sig.matmul_dtype, open_widths=sig.open_widths)) for a, b in blocks]
        self.variables = [var for _, _, member in self.blocks for var in member.trainables]
        self.optimizer = FusedAdam(self.variables)
        k = sig.k
        # fixed widths: the features are part of the signature, so every shape folds into the graph
        n_in = None if sig.open_widths else sig.n_in
        data = tf.TensorSpec([None, None, n_in], tf.float32)  # (distinct datasets, rows, features)
        ints, floats, scalar = tf.TensorSpec([k], tf.int32), tf.TensorSpec([k], tf.float32), tf.TensorSpec([], tf.int32)
        self.run_epoch = tf.function(self._run_epoch, input_signature=[
            data, ints, tf.TensorSpec([k, None], tf.int32), floats, floats, ints, scalar, scalar])
        self.evaluate = tf.function(self._evaluate, input_signature=[data, ints, floats, floats, ints, scalar, scalar])
        self.calibrate = tf.function(self._calibrate, input_signature=[
            tf.TensorSpec([None, 1, n_in], tf.float32), tf.TensorSpec([None, n_in, n_in], tf.float32), ints])

    def reset(self, sig: Signature, seeds: Sequence[int], learning_rate: float) -> None:
        if sig.layout != self.sig:
            raise ValueError(f"a trainer of {self.sig} cannot train {sig}")
        for a, b, member in self.blocks:
            member.resize(sig.n_in, sig.hidden, sig.latent)
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
        x_flat = tf.reshape(x_train, [-1, self._width(x_train)])
        flat_order = order + data_idx[:, None] * n_rows  # member k's rows of its own dataset
        n_batches = tf.shape(order)[1] // batch_size
        sums = tf.zeros((4, self.sig.k))
        draws = epoch_noise(seeds, epoch, n_batches * batch_size, self._latent(), 0)
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
        x_flat = tf.reshape(x_val, [-1, self._width(x_val)])
        sums = tf.zeros((4, self.sig.k))
        draws = epoch_noise(seeds, epoch, n_val, self._latent(), 1)
        for i in tf.range((n_val + chunk - 1) // chunk):
            rows = tf.range(i * chunk, tf.minimum((i + 1) * chunk, n_val))
            span = slice(i * chunk, (i + 1) * chunk)
            parts = self._losses(x_flat, rows[None, :] + data_idx[:, None] * n_val, kl_w, mmd_w, draws, span, training=False)
            sums += tf.concat(parts, axis=1) * tf.cast(tf.size(rows), tf.float32)
        return sums * reciprocal(n_val)

    def _width(self, x: tf.Tensor) -> int | tf.Tensor:
        return tf.shape(x)[2] if self.sig.open_widths else self.sig.n_in

    def _latent(self) -> int | tf.Tensor:
        return tf.shape(self.blocks[0][2].mean_w)[2] if self.sig.open_widths else self.sig.latent

    def _calibrate(self, mean_x, cov_x, data_idx):
        for a, b, member in self.blocks:
            member.calibrate(tf.gather(mean_x, data_idx[a:b]), tf.gather(cov_x, data_idx[a:b]))
        return tf.constant(0)


_TRAINERS: OrderedDict[Signature, Trainer] = OrderedDict()
_TRAINERS_LOCK = threading.Lock()


@contextmanager
def checked_out(sig: Signature) -> Iterator[Trainer]:
    """A cached trainer of this signature's layout, held exclusively while in use (a concurrent call of
    the same layout builds its own), and cached again afterwards (least recently used dropped)."""
    with _TRAINERS_LOCK:
        trainer = _TRAINERS.pop(sig.layout, None)
    trainer = trainer or Trainer(sig)
    try:
        yield trainer
    finally:
        with _TRAINERS_LOCK:
            _TRAINERS[sig.layout] = trainer
            while len(_TRAINERS) > _TRAINER_CACHE_SIZE:
                _TRAINERS.popitem(last=False)


def compiled_traces() -> dict[Signature, dict[str, int]]:
    """Per cached layout, how often each compiled function was traced (TensorFlow's own count): a
    call with a known layout adds nothing (tracing costs seconds on a 2-core machine)."""
    with _TRAINERS_LOCK:
        trainers = list(_TRAINERS.items())
    return {sig: {name: getattr(t, name).experimental_get_tracing_count() for name in ("run_epoch", "evaluate", "calibrate")}
            for sig, t in trainers}
