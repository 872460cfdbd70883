"""The VAE family's maths for K models at once, weights on a leading axis. The trainer keeps one
``Stack`` of 1 per model (K independent chains run side by side; a batched matmul of K models measured
2x slower on 2 cores), and a ``Stack`` of K holds the K models' weights where they are stacked.

Loss per sample, averaged over the batch (the paper's scale, e.g. CP5 total ~2.4): reconstruction
is the squared error *summed over features*; plus kl_weight x KL(q(z|x) || N(0, I)); plus
mmd_weight x MMD^2 between the batch's codes and a fresh N(0, I) sample, Gaussian kernel
exp(-||a - b||^2 / d^2) with d the latent dimension (the InfoVAE reference implementation). Each
model has its own loss; their sum is minimised, so gradients and Adam's element-wise updates stay
independent per model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from cpvae_assets.schema import MATMUL_DTYPES

BN_EPSILON = 1e-3  # keras.layers.BatchNormalization defaults
BN_MOMENTUM = 0.99  # only for the exported layer; statistics are set exactly (``Stack.calibrate``)
LEAKY_SLOPE = 0.3  # keras.layers.LeakyReLU default
CALIBRATION_ROWS = 4096  # batch-norm statistics: all rows of a small dataset, a fixed sample of a large one (standard error of the mean ~ sd / 64)


def glorot(rng: np.random.Generator, k: int, fan_in: int, fan_out: int) -> np.ndarray:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (k, fan_in, fan_out)).astype(np.float32)


class Stack(tf.Module):
    def __init__(self, k: int, n_in: int, hidden: int, latent: int, batch_norm: bool, seeds: Sequence[int] | None = None,
                 matmul_dtype: str = "float32", open_widths: bool = False):
        super().__init__()
        if matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"matmul_dtype {matmul_dtype!r}; expected one of {MATMUL_DTYPES}")
        self.matmul_dtype = matmul_dtype
        self.k, self.n_in, self.hidden, self.latent = k, n_in, hidden, latent
        self.batch_norm = batch_norm
        # ``open_widths``: variables of any width (``resize``), so one trainer's compiled functions serve
        # every tuning trial and dataset of its layout instead of tracing again for each width
        self.open_widths = open_widths
        shape = tf.TensorShape([k, None, None]) if open_widths else None
        for name, value in self._initial().items():
            setattr(self, name, tf.Variable(value, shape=shape, trainable=name not in ("bn_mean", "bn_var")))
        if seeds is not None:
            self.reset(seeds)

    def _initial(self) -> dict[str, np.ndarray]:
        """Every variable at the current widths: kernels zero (``reset`` draws them), biases zero, BN at identity."""
        d, h, l = self.n_in, self.hidden, self.latent
        shapes = {"enc_w": (d, h), "enc_b": (1, h), "bn_gamma": (1, h), "bn_beta": (1, h), "bn_mean": (1, h),
                  "bn_var": (1, h), "mean_w": (h, l), "mean_b": (1, l), "logvar_w": (h, l), "logvar_b": (1, l),
                  "dec_w": (l, h), "dec_b": (1, h), "out_w": (h, d), "out_b": (1, d)}
        return {name: np.full((self.k, *shape), 1.0 if name in ("bn_gamma", "bn_var") else 0.0, np.float32)
                for name, shape in shapes.items()}

    def resize(self, n_in: int, hidden: int, latent: int) -> None:
        """The widths of the next ``reset`` (a stack with ``open_widths``)."""
        if (n_in, hidden, latent) != (self.n_in, self.hidden, self.latent) and not self.open_widths:
            raise ValueError("a stack without open_widths keeps its widths")
        self.n_in, self.hidden, self.latent = n_in, hidden, latent

    def reset(self, seeds: Sequence[int]) -> None:
        """Fresh weights: Glorot-uniform kernels from each member's own seed, zero biases, BN at identity."""
        if len(seeds) != self.k:
            raise ValueError(f"{len(seeds)} seeds for a stack of {self.k}")
        init = [np.random.default_rng(s) for s in seeds]

        def stacked(fan_in: int, fan_out: int) -> np.ndarray:
            return np.concatenate([glorot(r, 1, fan_in, fan_out) for r in init], axis=0)

        initial = self._initial()
        # the draw order (per kernel, member after member) fixes the initial weights of a seed
        for name in ("enc_w", "mean_w", "logvar_w", "dec_w", "out_w"):
            initial[name] = stacked(*initial[name].shape[1:])
        for name, value in initial.items():
            getattr(self, name).assign(value)

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
            # Keras' formula: h x s + (beta - mean x s) with s = gamma / sqrt(var + eps), two passes over h
            h = tf.nn.batch_normalization(h, mean, var, self.bn_beta, self.bn_gamma, BN_EPSILON)
        h = tf.nn.leaky_relu(h, LEAKY_SLOPE)
        return self.matmul(h, self.mean_w) + self.mean_b, self.matmul(h, self.logvar_w) + self.logvar_b

    def calibrate(self, mean_x: tf.Tensor, cov_x: tf.Tensor) -> None:
        """Set the inference statistics of batch norm to the exact mean and variance, over the calibration
        rows, of the pre-activation h = x W + b, from the rows' mean (K, 1, D) and covariance (K, D, D)
        (``input_moments``): mean(h) = mean(x) W + b and var(h) = diag(W' cov(x) W).

        Keras' moving averages (momentum 0.99) need thousands of steps to settle; a plate of a few
        hundred profiles gets a few hundred, and its validation loss would measure stale statistics
        instead of the model ("precise batch norm"). The rows are at most ``CALIBRATION_ROWS``; the
        covariance form costs D/rows of a pass over them (588/4096 at Cell Painting level 5) and has no
        E[h^2] - E[h]^2 cancellation. It is float32 whatever ``matmul_dtype``.
        """
        if not self.batch_norm:
            return
        self.bn_mean.assign(tf.matmul(mean_x, self.enc_w) + self.enc_b)
        self.bn_var.assign(tf.maximum(tf.reduce_sum(tf.matmul(cov_x, self.enc_w) * self.enc_w, 1, keepdims=True), 0.0))

    def decode(self, z: tf.Tensor) -> tf.Tensor:
        h = tf.nn.leaky_relu(self.matmul(z, self.dec_w) + self.dec_b, LEAKY_SLOPE)
        return tf.sigmoid(self.matmul(h, self.out_w) + self.out_b)


def input_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (1, D) and covariance (D, D, divided by the row count) of rows ``x`` (R, D), in float64 then
    rounded to float32: what ``Stack.calibrate`` needs, computed once per dataset and training run."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0, keepdims=True)
    centred = x - mean
    return mean.astype(np.float32), (centred.T @ centred / len(x)).astype(np.float32)


def reciprocal(n: tf.Tensor) -> tf.Tensor:
    """1 / n in float32. Means multiply by it: TF's graph optimiser turns a division by a constant into
    this product, so the results stay bit-identical to the loop that had the counts as constants."""
    return tf.math.reciprocal(tf.cast(n, tf.float32))


def mmd_squared(z: tf.Tensor, prior: tf.Tensor) -> tf.Tensor:
    """MMD^2 per model between codes (K, B, L) and prior samples, InfoVAE kernel."""
    dim = tf.cast(tf.shape(z)[-1], z.dtype)

    def kernel(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        sq = tf.reduce_sum(a * a, -1)[:, :, None] + tf.reduce_sum(b * b, -1)[:, None, :] - 2 * tf.matmul(a, b, transpose_b=True)
        return tf.exp(-tf.maximum(sq, 0.0) / (dim * dim))

    return (tf.reduce_mean(kernel(z, z), [1, 2]) + tf.reduce_mean(kernel(prior, prior), [1, 2])
            - 2 * tf.reduce_mean(kernel(z, prior), [1, 2]))


def losses(stack: Stack, x: tf.Tensor, kl_w: tf.Tensor, mmd_w: tf.Tensor, noise: tf.Tensor, prior: tf.Tensor,
            training: bool, use_mmd: bool = True):
    """Per-model loss parts; ``noise`` (reparameterisation) and ``prior`` samples are (K, B, L)."""
    z_mean, z_log_var = stack.encode(x, training)
    z = z_mean + tf.exp(0.5 * z_log_var) * noise
    recon = tf.reduce_mean(tf.reduce_sum(tf.square(x - stack.decode(z)), -1), -1)
    kl = tf.reduce_mean(-0.5 * tf.reduce_sum(1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), -1), -1)
    mmd = mmd_squared(z, prior) if use_mmd else tf.zeros_like(kl)
    return recon + kl_w * kl + mmd_w * mmd, recon, kl, mmd


def epoch_noise(seeds: tf.Tensor, epoch: int, rows: int, latent: int | tf.Tensor, stream: int) -> tf.Tensor:
    """(2, K, rows, L) standard normal draws for one epoch, each model from its own seed: drawn once
    per epoch rather than per step (two random ops per model per step cost ~10% of a small model's
    step), and a model's draws do not depend on which other models share its stack."""
    return tf.stack([tf.random.stateless_normal((2, rows, latent), seed=tf.stack([seeds[j], epoch * 2 + stream]))
                     for j in range(seeds.shape[0])], axis=1)
