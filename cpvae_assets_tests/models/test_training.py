"""train_model: the real model beats its column-shuffled control, the same seed gives the same model,
and bad input (latent size, mismatched members, unknown type, too few profiles, divergence, corrupt
model files). Trained models are cached per package (``models/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.storage.lake import Lake
from cpvae_assets_tests.support.model_data import HIDDEN, HP, LATENT, N_FEATURES, OBJECTIVES, Data, hp_for

# --------------------------------------------------------------------------------------------- train_model


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_train_model_real_beats_shuffled(trained, objective: str) -> None:
    run = trained(objective)
    summary = run.summary
    assert sorted(summary["role"]) == ["real", "real", "shuffled", "shuffled"]
    assert summary["chosen"].sum() == 1
    chosen = summary.loc[summary["chosen"]].iloc[0]
    assert chosen["role"] == "real"
    real, shuffled = summary[summary["role"] == "real"], summary[summary["role"] == "shuffled"]
    assert chosen["val_loss"] == real["val_loss"].min()
    assert real["val_loss"].min() < shuffled["val_loss"].min()
    assert np.isfinite(summary["val_loss"]).all()
    assert set(run.curves["role"]) == {"real", "shuffled"}
    assert len(run.curves) == 4 * int(summary["epochs_run"].max())
    assert run.hyperparameters == hp_for(objective)
    assert run.model.latent_dim == LATENT
    assert run.notes == []


def test_column_shuffled_keeps_marginals_and_destroys_correlation(data: Data) -> None:
    from cpvae_assets.models.training import column_shuffled

    x = data.train
    shuffled = column_shuffled(x, seed=3)
    assert shuffled.shape == x.shape
    np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(x, axis=0))
    assert not np.array_equal(shuffled, x)
    off_diagonal = ~np.eye(x.shape[1], dtype=bool)
    assert np.abs(np.corrcoef(x, rowvar=False)[off_diagonal]).max() > 0.8
    assert np.abs(np.corrcoef(shuffled, rowvar=False)[off_diagonal]).max() < 0.3
    np.testing.assert_array_equal(column_shuffled(x, seed=3), shuffled)
    assert not np.array_equal(column_shuffled(x, seed=4), shuffled)


# --------------------------------------------------------------------------------------------- reproducibility


def test_same_seed_same_model_other_seed_differs(trained, data: Data) -> None:
    from cpvae_assets.models.training import train_model

    first = trained("beta")
    again = train_model(data.train, data.val, "beta", hp_for("beta"), seed=0, n_seeds=2)
    # seeds 7 and 8: no member in common with seeds 0 and 1 (a member trains as it would alone)
    other = train_model(data.train, data.val, "beta", hp_for("beta"), seed=7, n_seeds=2)
    z = first.model.encode(data.all)
    assert np.array_equal(again.model.encode(data.all), z)
    pd.testing.assert_frame_equal(again.curves, first.curves)
    pd.testing.assert_frame_equal(again.summary, first.summary)
    assert np.abs(other.model.encode(data.all) - z).max() > 1e-3
    assert sorted(other.summary["seed"].unique()) == [7, 8]


# --------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("model_type", ["beta", "pca"])
def test_latent_dim_not_below_feature_count(data: Data, model_type: str) -> None:
    from cpvae_assets.models.training import train_model

    with pytest.raises(ValueError, match=rf"latent dimension {N_FEATURES} is not smaller than the {N_FEATURES} features"):
        train_model(data.train, data.val, model_type, HP.replace(latent_dim=N_FEATURES))


def test_train_stack_refuses_latent_dim_and_mismatched_members(data: Data) -> None:
    from cpvae_assets.models.trainer import StackMember, train_stack

    member = StackMember("a", 1.0, 0.0, data.train, data.val, 0)
    with pytest.raises(ValueError, match=f"latent dimension 60 is not smaller than the feature count {N_FEATURES}"):
        train_stack([member], 60, HIDDEN, 1e-3, 32, True, 1, 1)
    short = StackMember("b", 1.0, 0.0, data.train[:100], data.val, 0)
    with pytest.raises(ValueError, match="same shape"):
        train_stack([member, short], LATENT, HIDDEN, 1e-3, 32, True, 1, 1)
    with pytest.raises(ValueError, match="no models"):
        train_stack([], LATENT, HIDDEN, 1e-3, 32, True, 1, 1)


def test_unknown_model_type(data: Data) -> None:
    from cpvae_assets.models.training import train_model

    with pytest.raises(ValueError, match="unknown model type 'gan'"):
        train_model(data.train, data.val, "gan", HP)


def test_fewer_profiles_than_a_batch(data: Data) -> None:
    from cpvae_assets.models.training import train_model

    run = train_model(data.train[:20], data.val[:10], "beta", HP.replace(epochs=2, patience=2), n_seeds=1)
    assert run.hyperparameters.batch_size == 20
    assert any("batch size 32" in note and "20 training profiles" in note for note in run.notes)
    assert len(run.curves) == 2 * 2 and np.isfinite(run.summary["val_loss"]).all()
    assert run.model.encode(data.test).shape == (len(data.test), LATENT)


def test_too_few_profiles_are_refused(data: Data) -> None:
    from cpvae_assets.models.training import train_model

    with pytest.raises(ValueError, match="too few"):
        train_model(data.train[:1], data.val, "beta", HP)


def test_training_divergence_raises_and_stores_nothing(data: Data, tmp_path: Path) -> None:
    """A huge value in the data (a learning rate of 1e6 is covered by the Dagster test below)."""
    from cpvae_assets.models.trainer import TrainingDiverged
    from cpvae_assets.models.training import train_model

    train, hp = data.train.copy(), HP.replace(epochs=3, patience=3)
    train[5, 3] = 1e30
    folder = tmp_path / "trained_models"
    with pytest.raises(TrainingDiverged, match=r"at epoch \d+") as caught:
        run = train_model(train, data.val, "beta", hp, n_seeds=1)
        run.model.save(folder)  # what the asset does after training: never reached
    message = str(caught.value)
    assert "nothing was stored" in message and "'real:0'" in message
    assert not folder.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_model_files_raise_model_file_error(trained, tmp_path: Path, damage: str) -> None:
    from cpvae_assets.models.latent import ModelFileError
    from cpvae_assets.models.store import ModelStore

    store = ModelStore(Lake(tmp_path))

    def corrupt(path: Path) -> None:
        raw = path.read_bytes()
        path.write_bytes({"garbage": b"\x00garbage, not a zip archive" * 10, "truncated": raw[: len(raw) // 3],
                          "empty": b""}[damage])

    for model_type, file_name in (("beta", "encoder.keras"), ("beta", "decoder.keras"), ("pca", "pca.npz")):
        dataset = f"{model_type}-{file_name}"
        store.save(dataset, model_type, trained(model_type).model)
        corrupt(store.folder(dataset, model_type) / file_name)
        with pytest.raises(ModelFileError, match="re-materialise") as caught:
            store.load(dataset, model_type)
        assert file_name in str(caught.value)

    with pytest.raises(ModelFileError, match="re-materialise"):
        store.load("missing", "mmd")
    with pytest.raises(ModelFileError, match="re-materialise"):
        store.load("missing", "pca")
