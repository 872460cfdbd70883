"""A trained stack member as plain Keras functional models (Dense, BatchNormalization, LeakyReLU)
that ``keras.models.load_model`` opens with no custom objects, and prior samples decoded with its
weights."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cpvae_assets.models.stack import BN_EPSILON, BN_MOMENTUM, LEAKY_SLOPE
from cpvae_assets.models.trainer import StackResult


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
