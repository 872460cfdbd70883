"""The VAE family trained as a stack: K models (objectives, real vs shuffled data, seeds) in one graph.

Why a stack: on a 2-core CPU a 588-250-10 VAE runs far below the matmul peak; K models whose weights
sit on a leading axis turn K small matmuls into one batched matmul, and a whole epoch runs inside a
single ``tf.function`` with the data held as a tensor. Measured (``bench/results.md``, quiet machine,
against the mean of two plain ``model.fit`` runs): at the Cell Painting level-5 shape 1.5x for one
model and 3.5x with four or six (real and shuffled, two or three seeds); at the L1000 shape 1.9-2.0x
at any K: the loop reaches 63% of the machine's float32 matmul peak there (``model.fit`` 28-36%), so
3x (over 100% of the peak) is out of reach in float32; opt-in bfloat16 matmuls give 2.6-2.8x.
The compiled functions are cached per shape signature (``_Trainer``): a repeat call traces nothing.
Each model has its own loss; their sum is minimised, so gradients and Adam's
element-wise updates stay independent per model.

Loss per sample, averaged over the batch (the paper's scale, e.g. CP5 total ~2.4): reconstruction
is the squared error *summed over features*; plus kl_weight x KL(q(z|x) || N(0, I)); plus
mmd_weight x MMD^2 between the batch's codes and a fresh N(0, I) sample, Gaussian kernel
exp(-||a - b||^2 / d^2) with d the latent dimension (the InfoVAE reference implementation).
Trained models are exported as plain Keras functional encoder and decoder models (Dense,
BatchNormalization, LeakyReLU) that ``keras.models.load_model`` opens with no custom objects.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras  # noqa: E402

BN_EPSILON = 1e-3  # keras.layers.BatchNormalization defaults
BN_MOMENTUM = 0.99  # only for the exported layer; statistics are set exactly (``_Stack.calibrate``)
LEAKY_SLOPE = 0.3  # keras.layers.LeakyReLU default
MATMUL_DTYPES = ("float32", "bfloat16")
CALIBRATION_ROWS = 4096  # batch-norm statistics: all rows of a small dataset, a fixed sample of a large one (standard error of the mean ~ sd / 64)


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


def _glorot(rng: np.random.Generator, k: int, fan_in: int, fan_out: int) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (k, fan_in, fan_out)).astype(np.float32)


class _Stack(tf.Module):
    def __init__(self, k: int, n_in: int, hidden: int, latent: int, batch_norm: bool, seeds: Sequence[int] | None = None,
                 matmul_dtype: str = "float32"):
        super().__init__()
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype {matmul_dtype!r}; expected one of {MATMUL_DTYPES}")
        self.matmul_dtype = matmul_dtype
        zeros = lambda *s: tf.Variable(tf.zeros((k, *s)))  # noqa: E731
        self.k, self.n_in, self.hidden, self.latent = k, n_in, hidden, latent
        self.batch_norm = batch_norm
        self.enc_w = zeros(n_in, hidden)
        self.enc_b = zeros(1, hidden)
        self.bn_gamma = tf.Variable(tf.ones((k, 1, hidden)))
        self.bn_beta = zeros(1, hidden)
        self.bn_mean = tf.Variable(tf.zeros((k, 1, hidden)), trainable=False)
        self.bn_var = tf.Variable(tf.ones((k, 1, hidden)), trainable=False)
        self.mean_w = zeros(hidden, latent)
        self.mean_b = zeros(1, latent)
        self.logvar_w = zeros(hidden, latent)
        self.logvar_b = zeros(1, latent)
        self.dec_w = zeros(latent, hidden)
        self.dec_b = zeros(1, hidden)
        self.out_w = zeros(hidden, n_in)
        self.out_b = zeros(1, n_in)
        if seeds is not None:
            self.reset(seeds)

    def reset(self, seeds: Sequence[int]) -> None:
        """Fresh weights: Glorot-uniform kernels from each member's own seed, zero biases, BN at identity."""
        if len(seeds) != self.k:
            raise ValueError(f"{len(seeds)} seeds for a stack of {self.k}")
        init = [np.random.default_rng(s) for s in seeds]

        def stacked(fan_in: int, fan_out: int) -> np.ndarray:
            return np.concatenate([_glorot(r, 1, fan_in, fan_out) for r in init], axis=0)

        # the draw order (per kernel, member after member) fixes the initial weights of a seed
        self.enc_w.assign(stacked(self.n_in, self.hidden))
        self.mean_w.assign(stacked(self.hidden, self.latent))
        self.logvar_w.assign(stacked(self.hidden, self.latent))
        self.dec_w.assign(stacked(self.latent, self.hidden))
        self.out_w.assign(stacked(self.hidden, self.n_in))
        for var in (self.enc_b, self.bn_beta, self.bn_mean, self.mean_b, self.logvar_b, self.dec_b, self.out_b):
            var.assign(tf.zeros_like(var))
        for var in (self.bn_gamma, self.bn_var):
            var.assign(tf.ones_like(var))

    @property
    def trainables(self) -> list[tf.Variable]:
        out = [self.enc_w, self.enc_b, self.mean_w, self.mean_b, self.logvar_w, self.logvar_b,
               self.dec_w, self.dec_b, self.out_w, self.out_b]
        return out + ([self.bn_gamma, self.bn_beta] if self.batch_norm else [])

    @property
    def state(self) -> dict[str, tf.Variable]:
        return {name: var for name, var in vars(self).items() if isinstance(var, tf.Variable)}

    def matmul(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """float32 (default); with ``matmul_dtype='bfloat16'`` both operands are rounded to bfloat16 (the
        weights stay float32; oneDNN accumulates in float32) and the product is returned as float32."""
        if self.matmul_dtype == "float32":
            return tf.matmul(a, b)
        return tf.cast(tf.matmul(tf.cast(a, tf.bfloat16), tf.cast(b, tf.bfloat16)), tf.float32)

    def encode(self, x: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        h = self.matmul(x, self.enc_w) + self.enc_b
        if self.batch_norm:
            if training:
                mean, var = tf.nn.moments(h, axes=[1], keepdims=True)
            else:
                mean, var = self.bn_mean, self.bn_var
            h = self.bn_gamma * (h - mean) / tf.sqrt(var + BN_EPSILON) + self.bn_beta
        h = tf.nn.leaky_relu(h, LEAKY_SLOPE)
        return self.matmul(h, self.mean_w) + self.mean_b, self.matmul(h, self.logvar_w) + self.logvar_b

    def calibrate(self, x: tf.Tensor) -> None:
        """Set the inference statistics of batch norm to the exact mean and variance over ``x`` (K, R, D).

        Keras' moving averages (momentum 0.99) need thousands of steps to settle; a plate of a few
        hundred profiles gets a few hundred, and its validation loss would measure stale statistics
        instead of the model ("precise batch norm"). ``x`` is at most ``CALIBRATION_ROWS`` rows.
        """
        if not self.batch_norm:
            return
        inverse_n = _reciprocal(tf.shape(x)[1])
        h = self.matmul(x, self.enc_w) + self.enc_b
        mean = tf.reduce_sum(h, 1, keepdims=True) * inverse_n
        self.bn_mean.assign(mean)
        self.bn_var.assign(tf.maximum(tf.reduce_sum(tf.square(h), 1, keepdims=True) * inverse_n - tf.square(mean), 0.0))

    def decode(self, z: tf.Tensor) -> tf.Tensor:
        h = tf.nn.leaky_relu(self.matmul(z, self.dec_w) + self.dec_b, LEAKY_SLOPE)
        return tf.sigmoid(self.matmul(h, self.out_w) + self.out_b)


def _reciprocal(n: tf.Tensor) -> tf.Tensor:
    """1 / n in float32. Means multiply by it: TF's graph optimiser turns a division by a constant into
    this product, so the results stay bit-identical to the loop that had the counts as constants."""
    return tf.math.reciprocal(tf.cast(n, tf.float32))


def _mmd(z: tf.Tensor, prior: tf.Tensor) -> tf.Tensor:
    """MMD^2 per model between codes (K, B, L) and prior samples, InfoVAE kernel."""
    dim = tf.cast(tf.shape(z)[-1], z.dtype)

    def kernel(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        sq = tf.reduce_sum(a * a, -1)[:, :, None] + tf.reduce_sum(b * b, -1)[:, None, :] - 2 * tf.matmul(a, b, transpose_b=True)
        return tf.exp(-tf.maximum(sq, 0.0) / (dim * dim))

    return (tf.reduce_mean(kernel(z, z), [1, 2]) + tf.reduce_mean(kernel(prior, prior), [1, 2])
            - 2 * tf.reduce_mean(kernel(z, prior), [1, 2]))


def _losses(stack: _Stack, x: tf.Tensor, kl_w: tf.Tensor, mmd_w: tf.Tensor, noise: tf.Tensor, prior: tf.Tensor,
            training: bool, use_mmd: bool = True):
    """Per-model loss parts; ``noise`` (reparameterisation) and ``prior`` samples are (K, B, L)."""
    z_mean, z_log_var = stack.encode(x, training)
    z = z_mean + tf.exp(0.5 * z_log_var) * noise
    recon = tf.reduce_mean(tf.reduce_sum(tf.square(x - stack.decode(z)), -1), -1)
    kl = tf.reduce_mean(-0.5 * tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), -1), -1)
    mmd = _mmd(z, prior) if use_mmd else tf.zeros_like(kl)
    return recon + kl_w * kl + mmd_w * mmd, recon, kl, mmd


def _epoch_noise(seeds: tf.Tensor, epoch: int, rows: int, latent: int, stream: int) -> tf.Tensor:
    """(2, K, rows, L) standard normal draws for one epoch, each model from its own seed: drawn once
    per epoch rather than per step (two random ops per model per step cost ~10% of a small model's
    step), and a model's draws do not depend on which other models share its stack."""
    return tf.stack([tf.random.stateless_normal((2, rows, latent), seed=tf.stack([seeds[j], epoch * 2 + stream]))
                     for j in range(seeds.shape[0])], axis=1)


@dataclass(frozen=True)
class _Signature:
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


# how often each compiled function was traced in this process (tests; the tracing cost is seconds)
TRACES: Counter[str] = Counter()
_TRAINER_CACHE_SIZE = 16


class _Trainer:
    """The variables (weights, Adam's state) and compiled epoch functions of one ``_Signature``.

    ``reset`` gives it fresh weights and optimizer state, so a reused trainer trains exactly as a
    new one (bit for bit: same ops, same inputs)."""

    def __init__(self, sig: _Signature):
        self.sig = sig
        self.stack = _Stack(sig.k, sig.n_in, sig.hidden, sig.latent, sig.batch_norm, matmul_dtype=sig.matmul_dtype)
        self.variables = self.stack.trainables
        self.optimizer = keras.optimizers.Adam(1e-3)
        self.optimizer.build(self.variables)
        k = sig.k
        data = tf.TensorSpec([None, None, sig.n_in], tf.float32)  # (distinct datasets, rows, features)
        ints, floats, scalar = tf.TensorSpec([k], tf.int32), tf.TensorSpec([k], tf.float32), tf.TensorSpec([], tf.int32)
        self.run_epoch = tf.function(self._run_epoch, input_signature=[
            data, ints, tf.TensorSpec([k, None], tf.int32), floats, floats, ints, scalar, scalar])
        self.evaluate = tf.function(self._evaluate, input_signature=[data, ints, floats, floats, ints, scalar, scalar])
        self.calibrate = tf.function(self._calibrate, input_signature=[data, tf.TensorSpec([None], tf.int32), ints])

    def reset(self, seeds: Sequence[int], learning_rate: float) -> None:
        self.stack.reset(seeds)
        for var in self.optimizer.variables:  # iteration count, learning rate, first and second moments
            var.assign(tf.zeros_like(var))
        self.optimizer.learning_rate = learning_rate

    def _run_epoch(self, x_train, data_idx, order, kl_w, mmd_w, seeds, epoch, batch_size):
        """One epoch: ``order`` (K, n_batches x batch) holds each member's shuffled row indices."""
        TRACES["run_epoch"] += 1  # Python: runs only while tracing
        stack, variables, sig = self.stack, self.variables, self.sig
        n_batches = tf.shape(order)[1] // batch_size
        sums = tf.zeros((4, sig.k))
        draws = _epoch_noise(seeds, epoch, n_batches * batch_size, sig.latent, 0)
        for i in tf.range(n_batches):
            rows = order[:, i * batch_size:(i + 1) * batch_size]
            # (K, B, D): member k's rows of its own dataset
            xb = tf.gather_nd(x_train, tf.stack([tf.broadcast_to(data_idx[:, None], tf.shape(rows)), rows], axis=-1))
            part = slice(None), slice(i * batch_size, (i + 1) * batch_size)
            with tf.GradientTape() as tape:
                parts = _losses(stack, xb, kl_w, mmd_w, draws[0][part], draws[1][part], training=True, use_mmd=sig.use_mmd)
                objective = tf.reduce_sum(parts[0])
            self.optimizer.apply_gradients(zip(tape.gradient(objective, variables), variables))
            sums += tf.stack(parts)
        return sums * _reciprocal(n_batches)

    def _evaluate(self, x_val, data_idx, kl_w, mmd_w, seeds, epoch, chunk):
        # every validation profile counts; chunks of the batch size keep the MMD on the training scale
        TRACES["evaluate"] += 1
        sig = self.sig
        n_val = tf.shape(x_val)[1]
        sums = tf.zeros((4, sig.k))
        draws = _epoch_noise(seeds, epoch, n_val, sig.latent, 1)
        for i in tf.range((n_val + chunk - 1) // chunk):
            xb = tf.gather(x_val[:, i * chunk:(i + 1) * chunk], data_idx)
            part = slice(None), slice(i * chunk, (i + 1) * chunk)
            parts = _losses(self.stack, xb, kl_w, mmd_w, draws[0][part], draws[1][part], training=False, use_mmd=sig.use_mmd)
            sums += tf.stack(parts) * tf.cast(tf.shape(xb)[1], tf.float32)
        return sums * _reciprocal(n_val)

    def _calibrate(self, x_train, rows, data_idx):
        TRACES["calibrate"] += 1
        self.stack.calibrate(tf.gather(tf.gather(x_train, rows, axis=1), data_idx))
        return tf.constant(0)


_TRAINERS: OrderedDict[_Signature, _Trainer] = OrderedDict()
_TRAINERS_LOCK = threading.Lock()


@contextmanager
def _trainer(sig: _Signature) -> Iterator[_Trainer]:
    """A cached trainer of this signature, held exclusively while in use (a concurrent call of the
    same signature builds its own), and cached again afterwards (least recently used dropped)."""
    with _TRAINERS_LOCK:
        trainer = _TRAINERS.pop(sig, None)
    trainer = trainer or _Trainer(sig)
    try:
        yield trainer
    finally:
        with _TRAINERS_LOCK:
            _TRAINERS[sig] = trainer
            while len(_TRAINERS) > _TRAINER_CACHE_SIZE:
                _TRAINERS.popitem(last=False)


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
) -> StackResult:
    """Train every member with early stopping on its own validation loss; keep its best weights.

    A member whose loss becomes NaN or inf raises ``TrainingDiverged`` (naming the epoch), unless
    ``raise_on_divergence`` is False (grid searches), where it just stops improving. The compiled
    functions are cached per (K, features, hidden, latent, batch norm, MMD used): a later call with
    the same shapes traces nothing, whatever its data, row count, batch size or learning rate.

    ``matmul_dtype='bfloat16'`` (opt-in, off everywhere in the pipeline) rounds the operands of every
    matrix product to bfloat16: on this AMD EPYC (AVX512-BF16) 1.3-1.5x faster at the L1000 shape, with
    validation losses within 1e-5 (relative) of float32 after 3 epochs (``bench/train_throughput.py``),
    but not bit-identical to float32.
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
    sig = _Signature(k, int(n_in), int(hidden_dim), int(latent_dim), bool(encoder_batch_norm), use_mmd, matmul_dtype)
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
    calibration_rows = tf.constant(np.sort(np.random.default_rng(members[0].seed).permutation(n_train)[:CALIBRATION_ROWS]), tf.int32)
    n_val = int(x_val.shape[1])
    val_chunk = tf.constant(max(1, min(batch_size, n_val)), tf.int32)
    batch = tf.constant(batch_size, tf.int32)

    with _trainer(sig) as trainer:
        trainer.reset([m.seed for m in members], learning_rate)
        stack = trainer.stack
        best = np.full(k, np.inf)
        best_epoch = [0] * k
        best_weights = {name: var.numpy() for name, var in stack.state.items()}
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
                trainer.calibrate(x_train, calibration_rows, data_idx)
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
                snapshot = {name: var.numpy() for name, var in stack.state.items()}
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


def decode_prior(result: StackResult, index: int, n: int, seed: int) -> np.ndarray:
    """Decode ``n`` samples of N(0, I) with member ``index``'s best weights (simulated profiles)."""
    w = {name: value[index] for name, value in result.weights.items()}
    z = np.random.default_rng(seed).standard_normal((n, w["dec_w"].shape[0])).astype(np.float32)
    h = tf.nn.leaky_relu(z @ w["dec_w"] + w["dec_b"][0], LEAKY_SLOPE)
    return tf.sigmoid(h @ w["out_w"] + w["out_b"][0]).numpy()


def keras_models(result: StackResult, index: int) -> tuple[keras.Model, keras.Model]:
    """Plain Keras encoder (x -> z_mean, z_log_var) and decoder (z -> x) of member ``index``."""
    w = {name: value[index] for name, value in result.weights.items()}
    n_in, hidden = w["enc_w"].shape
    latent = w["mean_w"].shape[1]
    batch_norm = result.encoder_batch_norm
    inputs = keras.Input((n_in,), name="profile")
    h = keras.layers.Dense(hidden, name="encoder_dense")(inputs)
    if batch_norm:
        h = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="encoder_batch_norm")(h)
    h = keras.layers.LeakyReLU(LEAKY_SLOPE)(h)
    z_mean = keras.layers.Dense(latent, name="z_mean")(h)
    z_log_var = keras.layers.Dense(latent, name="z_log_var")(h)
    encoder = keras.Model(inputs, [z_mean, z_log_var], name="encoder")
    z = keras.Input((latent,), name="z")
    h = keras.layers.LeakyReLU(LEAKY_SLOPE)(keras.layers.Dense(hidden, name="decoder_dense")(z))
    decoder = keras.Model(z, keras.layers.Dense(n_in, activation="sigmoid", name="reconstruction")(h), name="decoder")
    encoder.get_layer("encoder_dense").set_weights([w["enc_w"], w["enc_b"][0]])
    if batch_norm:
        encoder.get_layer("encoder_batch_norm").set_weights(
            [w["bn_gamma"][0], w["bn_beta"][0], w["bn_mean"][0], w["bn_var"][0]])
    encoder.get_layer("z_mean").set_weights([w["mean_w"], w["mean_b"][0]])
    encoder.get_layer("z_log_var").set_weights([w["logvar_w"], w["logvar_b"][0]])
    decoder.get_layer("decoder_dense").set_weights([w["dec_w"], w["dec_b"][0]])
    decoder.get_layer("reconstruction").set_weights([w["out_w"], w["out_b"][0]])
    return encoder, decoder
