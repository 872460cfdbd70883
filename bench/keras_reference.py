"""The reference of ``train_throughput.py``: the paper's VAE as a subclassed ``keras.Model`` trained with
``model.fit`` -- plain Keras, as a user of the paper's code trains it. Not project code: the project's
own loop is ``cpvae_assets.models.trainer.train_stack``, which this is compared with.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from cpvae_assets.models.stack import BN_EPSILON, BN_MOMENTUM, LEAKY_SLOPE


class Sampling(keras.layers.Layer):
    """z = mean + exp(log_var / 2) * eps, eps ~ N(0, I)."""

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps


class PaperVAE(keras.Model):
    """The paper's VAE as a subclassed Keras model: same layers as the project's exported models
    (Dense -> BatchNormalization -> LeakyReLU(0.3) -> z_mean / z_log_var; Dense -> LeakyReLU ->
    Dense sigmoid), loss = squared error summed over features + beta x KL, averaged over the batch."""

    def __init__(self, n_in: int, hidden: int, latent: int, beta: float, batch_norm: bool = True, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.beta = beta
        inputs = keras.Input((n_in,))
        h = keras.layers.Dense(hidden)(inputs)
        if batch_norm:
            h = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)(h)
        h = keras.layers.LeakyReLU(LEAKY_SLOPE)(h)
        self.encoder = keras.Model(inputs, [keras.layers.Dense(latent)(h), keras.layers.Dense(latent)(h)], name="encoder")
        z = keras.Input((latent,))
        h = keras.layers.LeakyReLU(LEAKY_SLOPE)(keras.layers.Dense(hidden)(z))
        self.decoder = keras.Model(z, keras.layers.Dense(n_in, activation="sigmoid")(h), name="decoder")
        self.sampling = Sampling(seed)
        self.trackers = [keras.metrics.Mean(name=n) for n in ("loss", "reconstruction", "kl")]

    def call(self, x, training=False):
        z_mean, z_log_var = self.encoder(x, training=training)
        return self.decoder(self.sampling([z_mean, z_log_var]), training=training), z_mean, z_log_var

    def _vae_losses(self, x, training):
        reconstruction, z_mean, z_log_var = self(x, training=training)
        recon = ops.mean(ops.sum(ops.square(x - reconstruction), axis=-1))
        kl = ops.mean(-0.5 * ops.sum(1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var), axis=-1))
        return recon + self.beta * kl, recon, kl

    def _record(self, parts):
        for tracker, value in zip(self.trackers, parts):
            tracker.update_state(value)
        return {t.name: t.result() for t in self.trackers}

    @property
    def metrics(self):
        return self.trackers

    def train_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            parts = self._vae_losses(x, training=True)
        grads = tape.gradient(parts[0], self.trainable_weights)
        self.optimizer.apply(grads, self.trainable_weights)
        return self._record(parts)

    def test_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._record(self._vae_losses(x, training=False))


class EpochStamps(keras.callbacks.Callback):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def on_epoch_end(self, epoch, logs=None):
        self.clock.stamp()
