"""The trainer's fused pieces compute what they replace: ``FusedAdam`` follows ``keras.optimizers.Adam``
step for step, and ``Stack.calibrate`` (from the rows' mean and covariance) gives the mean and variance
of the encoder's pre-activation over the rows."""

from __future__ import annotations

import numpy as np

# TensorFlow is imported inside the tests, never at collection: importing it then binds its logging to
# the capture stream of whichever test runs first, and a later Dagster run writing to it crashes pytest


def test_fused_adam_follows_keras_adam() -> None:
    import keras
    import tensorflow as tf

    from cpvae_assets.models.adam import FusedAdam

    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 40, 7)).astype(np.float32)
    mine, theirs = tf.Variable(start), tf.Variable(start)
    fused, reference = FusedAdam([mine], learning_rate=0.01), keras.optimizers.Adam(0.01)
    reference.build([theirs])
    fused.reset(0.01)
    for _ in range(20):
        grad = tf.constant(rng.normal(size=start.shape).astype(np.float32))
        fused.apply([grad])
        reference.apply_gradients([(grad, theirs)])
    assert int(fused.iterations.numpy()) == 20
    assert not np.allclose(mine.numpy(), start, atol=0.05)  # it moved
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)


def test_calibration_is_the_exact_mean_and_variance() -> None:
    import tensorflow as tf

    from cpvae_assets.models.stack import Stack, input_moments

    rng = np.random.default_rng(1)
    x = (rng.random((500, 30)) * rng.random(30) * 4 + 2).astype(np.float32)  # offsets: E[h^2] - E[h]^2 would cancel
    stack = Stack(2, 30, 12, 3, batch_norm=True, seeds=[1, 2])
    stack.enc_b.assign(tf.random.stateless_normal((2, 1, 12), seed=[0, 1]))
    mean, cov = input_moments(x)
    stack.calibrate(tf.constant(np.stack([mean, mean])), tf.constant(np.stack([cov, cov])))
    h = np.einsum("rd,kdh->krh", x.astype(np.float64), stack.enc_w.numpy().astype(np.float64)) + stack.enc_b.numpy()
    np.testing.assert_allclose(stack.bn_mean.numpy(), h.mean(1, keepdims=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stack.bn_var.numpy(), h.var(1, keepdims=True), rtol=1e-5)
