"""The model store: where a partition's chosen model and its seeds live, and that they load back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cpvae_assets.models.latent import PcaModel
from cpvae_assets.models.store import ModelStore
from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.lake import Lake


def _pca(seed: int) -> PcaModel:
    rng = np.random.default_rng(seed)
    return PcaModel.fit(rng.normal(size=(40, 6)).astype(np.float32), 3, seed)


def test_save_load_and_seeds(lake: Path) -> None:
    store = ModelStore(Lake(lake))
    chosen, seeds = _pca(0), [(1, _pca(1)), (0, _pca(0))]
    files = store.save("ds", "pca", chosen, seeds)
    folder = store.folder("ds", "pca")
    assert folder == lake / "trained_models" / "dataset=ds" / "model_type=pca"
    assert files == {"pca.npz": sha256_of(folder / "pca.npz")}
    x = np.random.default_rng(5).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_allclose(store.load("ds", "pca").encode(x), chosen.encode(x), atol=1e-6)
    loaded = list(store.seeds("ds", "pca"))
    assert [s for s, _ in loaded] == [0, 1]
    np.testing.assert_allclose(loaded[1][1].encode(x), seeds[0][1].encode(x), atol=1e-6)

    # a new run with other seeds removes the old seeds' models
    store.save("ds", "pca", chosen, [(7, _pca(7))])
    assert [s for s, _ in store.seeds("ds", "pca")] == [7]
    assert sorted(p.name for p in (folder / "seeds").iterdir()) == ["seed=7"]


def test_unknown_model_type_is_refused(lake: Path) -> None:
    with pytest.raises(ValueError, match="unknown model type"):
        ModelStore(Lake(lake)).folder("ds", "gan")
