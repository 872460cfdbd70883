"""Keras export (round trip through the ModelStore; equal to the stack's inference forward, with and
without batch norm), the PCA model, and simulation from each model's prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cpvae_assets.storage.lake import Lake
from cpvae_assets_tests.support.model_data import BATCH_NORM, HIDDEN, LATENT, N_FEATURES, OBJECTIVES, Data

# --------------------------------------------------------------------------------------------- export


@pytest.mark.parametrize("objective", OBJECTIVES, ids=[f"{o}-bn_{BATCH_NORM[o]}" for o in OBJECTIVES])
def test_export_round_trip(trained, data: Data, tmp_path: Path, objective: str) -> None:
    import keras

    from cpvae_assets.models.latent import KerasModel
    from cpvae_assets.models.store import ModelStore

    run = trained(objective)
    store = ModelStore(Lake(tmp_path))
    store.save("d", objective, run.model)
    folder = store.folder("d", objective)
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.keras", "encoder.keras", "pair.json"]

    encoder = keras.models.load_model(folder / "encoder.keras")  # no custom objects needed
    decoder = keras.models.load_model(folder / "decoder.keras")
    layers = {layer.name for layer in encoder.layers}
    assert ("encoder_batch_norm" in layers) is BATCH_NORM[objective]

    x = data.all
    z = run.model.encode(x)
    assert z.shape == (len(x), LATENT) and np.isfinite(z).all()
    np.testing.assert_allclose(np.asarray(encoder(x, training=False)[0]), z, atol=1e-5)
    np.testing.assert_allclose(np.asarray(decoder(z, training=False)), run.model.decode(z), atol=1e-5)

    loaded = store.load("d", objective)
    assert isinstance(loaded, KerasModel) and loaded.latent_dim == LATENT
    np.testing.assert_allclose(loaded.encode(x), z, atol=1e-5)
    np.testing.assert_allclose(loaded.decode(z), run.model.decode(z), atol=1e-5)
    reconstructed = loaded.decode(loaded.encode(x))
    assert reconstructed.shape == x.shape and ((reconstructed >= 0) & (reconstructed <= 1)).all()


@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn_on", "bn_off"])
def test_exported_models_equal_the_stack_inference_forward(stack_runs: dict, data: Data, batch_norm: bool) -> None:
    """Each member's Keras export computes what the stack computes in inference mode. Without batch
    norm, the trained weights are reused with the batch-norm layer left out of both (no retraining)."""
    import dataclasses

    import tensorflow as tf

    from cpvae_assets.models.keras_export import decode_prior, keras_models
    from cpvae_assets.models.stack import Stack

    result = dataclasses.replace(stack_runs["ba"], encoder_batch_norm=batch_norm)
    k = len(result.members)
    stack = Stack(k, N_FEATURES, HIDDEN, LATENT, batch_norm, [m.seed for m in result.members])
    for name, var in stack.state.items():
        var.assign(result.weights[name])
    if batch_norm:  # calibrated statistics, not the initial 0 / 1
        assert np.abs(result.weights["bn_mean"]).max() > 1e-3
    x = data.all
    z_mean, z_log_var = (t.numpy() for t in stack.encode(tf.constant(np.stack([x] * k)), training=False))
    z = np.random.default_rng(0).standard_normal((5, LATENT)).astype(np.float32)
    decoded = stack.decode(tf.constant(np.stack([z] * k))).numpy()
    for i in range(k):
        encoder, decoder = keras_models(result, i)
        exported_mean, exported_log_var = (np.asarray(t) for t in encoder(x, training=False))
        np.testing.assert_allclose(exported_mean, z_mean[i], atol=1e-5)
        np.testing.assert_allclose(exported_log_var, z_log_var[i], atol=1e-5)
        np.testing.assert_allclose(np.asarray(decoder(z, training=False)), decoded[i], atol=1e-5)
        np.testing.assert_allclose(decode_prior(result, i, 5, seed=0), decoded[i], atol=1e-5)
    assert not np.allclose(z_mean[0], z_mean[1])


# --------------------------------------------------------------------------------------------- PCA


def test_pca_model(trained, data: Data, tmp_path: Path) -> None:
    from cpvae_assets.models.generation import simulate
    from cpvae_assets.models.latent import PcaModel
    from cpvae_assets.models.store import ModelStore

    run = trained("pca")
    summary = run.summary.set_index("role")
    assert list(summary.index) == ["real", "shuffled"]
    assert bool(summary.loc["real", "chosen"]) and not bool(summary.loc["shuffled", "chosen"])
    ev_real, ev_shuffled = summary.loc["real", "explained_variance"], summary.loc["shuffled", "explained_variance"]
    assert 0.8 < ev_real <= 1.0 and ev_shuffled < ev_real
    assert summary.loc["real", "val_loss"] < summary.loc["shuffled", "val_loss"]
    model = run.model
    assert isinstance(model, PcaModel) and model.latent_dim == LATENT
    assert ev_real == pytest.approx(model.pca.explained_variance_ratio_.sum())

    store = ModelStore(Lake(tmp_path))
    store.save("d", "pca", model)
    assert [p.name for p in store.folder("d", "pca").iterdir()] == ["pca.npz"]
    loaded = store.load("d", "pca")
    assert isinstance(loaded, PcaModel) and loaded.latent_dim == LATENT
    z = model.encode(data.all)
    np.testing.assert_allclose(loaded.encode(data.all), z, atol=1e-5)
    np.testing.assert_allclose(loaded.decode(z), model.decode(z), atol=1e-5)

    # the prior of PCA is N(0, diag(explained variance)): codes of simulated profiles have that spread
    sd = np.sqrt(model.pca.explained_variance_).astype(np.float32)
    expected = np.random.default_rng(7).standard_normal((50, LATENT)).astype(np.float32) * sd
    np.testing.assert_allclose(simulate(loaded, 50, seed=7), model.decode(expected), atol=1e-5)
    codes = model.encode(simulate(model, 4000, seed=1))
    np.testing.assert_allclose(codes.std(axis=0), sd, rtol=0.05)
    assert not np.allclose(sd, 1.0, rtol=0.05)


def test_vae_simulation_samples_the_standard_normal(trained) -> None:
    from cpvae_assets.models.generation import simulate

    model = trained("beta").model
    z = np.random.default_rng(7).standard_normal((20, LATENT)).astype(np.float32)
    np.testing.assert_allclose(simulate(model, 20, seed=7), model.decode(z), atol=1e-6)


def test_pca_is_the_same_whatever_blas_threads_the_process_has() -> None:
    """A worker of ``cpvae demo`` runs with fewer BLAS threads than one process: the model must not change."""
    from threadpoolctl import threadpool_limits

    from cpvae_assets.models.latent import PcaModel

    x = np.random.default_rng(3).random((1500, 400)).astype(np.float32)
    fitted = {}
    for threads in (1, 2):
        with threadpool_limits(threads):
            fitted[threads] = PcaModel.fit(x, 20, seed=0).pca
    np.testing.assert_array_equal(fitted[1].components_, fitted[2].components_)
    np.testing.assert_array_equal(fitted[1].explained_variance_, fitted[2].explained_variance_)
