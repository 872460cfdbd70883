"""Loss maths of the stacked VAE (MMD, KL, the weighted total per model), the loss weights of each
objective and the paper's default hyperparameters."""

from __future__ import annotations

import numpy as np
import pytest

from cpvae_assets.models.hyperparameters import PAPER, loss_weights, paper_defaults

# --------------------------------------------------------------------------------------------- loss maths


def test_mmd_is_zero_for_identical_samples_and_positive_for_shifted() -> None:
    import tensorflow as tf

    from cpvae_assets.models.stack import mmd_squared

    rng = np.random.default_rng(0)
    z = rng.standard_normal((1, 64, 4)).astype(np.float32)
    other = rng.standard_normal((1, 64, 4)).astype(np.float32)
    same = mmd_squared(tf.constant(z), tf.constant(z)).numpy()
    assert same.shape == (1,) and abs(same[0]) < 1e-6
    same_distribution = mmd_squared(tf.constant(z), tf.constant(other)).numpy()[0]
    shifted = mmd_squared(tf.constant(z), tf.constant(z + 3.0)).numpy()[0]
    assert shifted > 0.5
    assert 0 <= same_distribution < shifted / 10
    # one value per model of the stack: model 0 compares identical codes, model 1 shifted ones
    stacked = mmd_squared(tf.constant(np.concatenate([z, z])), tf.constant(np.concatenate([z, z + 3.0]))).numpy()
    assert abs(stacked[0]) < 1e-6
    assert stacked[1] == pytest.approx(shifted, rel=1e-5)


def _tiny_stack(k: int = 2):
    import tensorflow as tf

    from cpvae_assets.models.stack import Stack

    stack = Stack(k, n_in=6, hidden=5, latent=2, batch_norm=False, seeds=list(range(k)))
    for var in (stack.mean_w, stack.mean_b, stack.logvar_w, stack.logvar_b):
        var.assign(tf.zeros_like(var))
    x = tf.constant(np.random.default_rng(1).random((k, 16, 6)).astype(np.float32))
    return stack, x


def _draws(x, seed: int, latent: int = 2):
    """Reparameterisation noise and prior samples, (K, B, L) each, as the training loop passes them."""
    import tensorflow as tf

    generator = tf.random.Generator.from_seed(seed)
    shape = (x.shape[0], x.shape[1], latent)
    return generator.normal(shape), generator.normal(shape)


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form() -> None:
    import tensorflow as tf

    from cpvae_assets.models.stack import losses

    stack, x = _tiny_stack()
    kl_w, mmd_w = tf.constant([1.0, 1.0]), tf.constant([0.0, 0.0])
    total, recon, kl, _ = (t.numpy() for t in losses(stack, x, kl_w, mmd_w, *_draws(x, 0), False))
    np.testing.assert_array_equal(kl, [0.0, 0.0])  # z_mean = 0, z_log_var = 0: q(z|x) is the prior
    np.testing.assert_allclose(total, recon, rtol=1e-6)
    assert (recon > 0).all()

    # KL(N(mu, exp(v)) || N(0, 1)) = -0.5 * sum(1 + v - mu^2 - exp(v)); model 0 shifts mu, model 1 scales
    mu, v = np.array([0.5, -1.0], np.float32), np.array([0.7, -0.4], np.float32)
    stack.mean_b.assign(np.stack([mu, np.zeros(2, np.float32)])[:, None, :])
    stack.logvar_b.assign(np.stack([np.zeros(2, np.float32), v])[:, None, :])
    kl = losses(stack, x, kl_w, mmd_w, *_draws(x, 0), False)[2].numpy()
    np.testing.assert_allclose(kl, [0.5 * np.sum(mu**2), -0.5 * np.sum(1 + v - np.exp(v))], rtol=1e-5)


def test_total_loss_weights_each_part_per_model() -> None:
    import tensorflow as tf

    from cpvae_assets.models.stack import losses

    stack, x = _tiny_stack()
    stack.mean_b.assign(tf.fill(stack.mean_b.shape, 0.8))
    kl_w, mmd_w = tf.constant([0.5, 0.0]), tf.constant([0.0, 20.0])
    total, recon, kl, mmd = (t.numpy() for t in losses(stack, x, kl_w, mmd_w, *_draws(x, 3), True))
    assert (kl > 0).all() and (mmd > 0).all()
    np.testing.assert_allclose(total, recon + kl_w.numpy() * kl + mmd_w.numpy() * mmd, rtol=1e-6)


@pytest.mark.parametrize("objective, expected", [("vanilla", (1.0, 0.0)), ("beta", (0.3, 0.0)), ("mmd", (0.0, 1e3))])
def test_loss_weights(objective: str, expected: tuple[float, float]) -> None:
    hp = paper_defaults("cp5")
    assert loss_weights(objective, hp) == expected  # type: ignore[arg-type]
    other = hp.replace(beta=7.0, lam=42.0)
    assert loss_weights(objective, other) == {"vanilla": (1.0, 0.0), "beta": (7.0, 0.0), "mmd": (0.0, 42.0)}[objective]


def test_loss_weights_unknown_objective() -> None:
    with pytest.raises(ValueError, match="unknown objective 'gan'"):
        loss_weights("gan", paper_defaults("cp5"))  # type: ignore[arg-type]


def test_paper_defaults() -> None:
    cp5 = paper_defaults("cp5", 588)
    assert (cp5.latent_dim, cp5.learning_rate, cp5.batch_size, cp5.encoder_batch_norm) == (10, 1e-3, 96, True)
    assert (cp5.beta, cp5.lam, cp5.hidden_dim) == (0.3, 1e3, 250)
    assert paper_defaults("cp5") == cp5  # the paper's 588-250-10 network
    l1000 = paper_defaults("l1000", 978)
    assert (l1000.hidden_dim, l1000.latent_dim, l1000.batch_size, l1000.beta, l1000.lam) == (500, 65, 512, 40.0, 1e7)
    assert paper_defaults("cp4").latent_dim == 90
    assert paper_defaults("cp5", 60, latent_dim=4).latent_dim == 4
    assert set(PAPER) == {"cp5", "cp4", "l1000"}
    with pytest.raises(ValueError, match="unknown preset 'cp9'"):
        paper_defaults("cp9")  # type: ignore[arg-type]
