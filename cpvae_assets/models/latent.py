"""One interface for every model: ``encode`` (profiles -> latent means) and ``decode``.

Later stages (embeddings, LSA, traversal) only see this, so PCA is treated exactly like a VAE.
Files: VAEs as ``encoder.keras`` + ``decoder.keras`` (plain functional Keras models), PCA as
``pca.npz`` (components, mean); no pickles. Where they live in the lake: ``models.store``.
"""

from __future__ import annotations

import json
import zipfile
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
from sklearn.decomposition import PCA
from threadpoolctl import ThreadpoolController

from cpvae_assets.storage.hashing import sha256_of
from cpvae_assets.storage.tables import atomic_path

KERAS_FILES = ("encoder.keras", "decoder.keras")
PAIR_FILE = "pair.json"


class ModelFileError(RuntimeError):
    """A stored model that cannot be loaded; re-materialise its ``trained_models`` partition."""


class LatentModel(Protocol):
    latent_dim: int

    def encode(self, x: np.ndarray) -> np.ndarray: ...

    def decode(self, z: np.ndarray) -> np.ndarray: ...

    def save(self, folder: Path) -> None: ...


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread():
    """PCA's fit, transform and inverse on one BLAS thread: BLAS and LAPACK round differently with another
    thread count, and UMAP (generation QC) turns those last bits into other coordinates. So a PCA model
    and its embeddings do not depend on the cores of the process (a worker of ``cpvae demo`` has fewer
    than one process); PCA is a fraction of a second of a run."""
    return _blas().limit(limits=1)


class PcaModel:
    def __init__(self, pca: PCA):
        self.pca = pca
        self.latent_dim = int(pca.n_components_)

    @classmethod
    def fit(cls, x: np.ndarray, latent_dim: int, seed: int) -> PcaModel:
        if latent_dim > min(x.shape):
            raise ValueError(f"latent dimension {latent_dim} exceeds min(profiles, features) = {min(x.shape)}")
        with one_blas_thread():
            return cls(PCA(n_components=latent_dim, random_state=seed).fit(x))

    def encode(self, x: np.ndarray) -> np.ndarray:
        with one_blas_thread():
            return self.pca.transform(x).astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        with one_blas_thread():
            return self.pca.inverse_transform(z).astype(np.float32)

    def save(self, folder: Path) -> None:
        p = self.pca
        with atomic_path(folder / "pca.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, components=p.components_, mean=p.mean_,
                     explained_variance=p.explained_variance_, explained_variance_ratio=p.explained_variance_ratio_)

    @classmethod
    def load(cls, folder: Path) -> PcaModel:
        path = folder / "pca.npz"
        try:
            with np.load(path) as data:
                pca = PCA(n_components=data["components"].shape[0])
                pca.components_, pca.mean_ = data["components"], data["mean"]
                pca.explained_variance_ = data["explained_variance"]
                pca.explained_variance_ratio_ = data["explained_variance_ratio"]
                pca.n_components_ = data["components"].shape[0]
                pca.n_features_in_ = data["components"].shape[1]
                pca.whiten = False
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # empty / truncated too
            raise ModelFileError(f"{path}: cannot load the PCA model ({exc}); re-materialise this partition") from exc
        return cls(pca)


class KerasModel:
    def __init__(self, encoder, decoder):
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim = int(decoder.inputs[0].shape[-1])

    def encode(self, x: np.ndarray) -> np.ndarray:
        return _in_chunks(lambda part: self.encoder(part, training=False)[0], x)

    def decode(self, z: np.ndarray) -> np.ndarray:
        return _in_chunks(lambda part: self.decoder(part, training=False), z)

    def save(self, folder: Path) -> None:
        """Both files are written before either is renamed (encoder first), then ``pair.json`` with
        their SHA-256: a crash between the two renames leaves a pair that ``load`` refuses, never
        one it silently mixes."""
        with atomic_path(folder / "decoder.keras") as decoder, atomic_path(folder / "encoder.keras") as encoder:
            self.encoder.save(str(encoder))
            self.decoder.save(str(decoder))
        with atomic_path(folder / PAIR_FILE) as tmp:
            tmp.write_text(json.dumps({n: sha256_of(folder / n) for n in KERAS_FILES}, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> KerasModel:
        import keras

        pair = folder / PAIR_FILE
        if pair.is_file():  # absent in lakes written before pair.json existed
            expected = json.loads(pair.read_text())
            found = {n: sha256_of(folder / n) for n in KERAS_FILES if (folder / n).is_file()}
            if found != expected:
                raise ModelFileError(f"{folder}: encoder.keras and decoder.keras are not the pair {PAIR_FILE} names "
                                     "(an interrupted save?); re-materialise this trained_models partition")
        parts = []
        for name in KERAS_FILES:
            path = folder / name
            try:
                # safe_mode: a .keras file may not deserialise code (Lambda layers, pickled functions)
                parts.append(keras.models.load_model(path, compile=False, safe_mode=True))
            except Exception as exc:  # keras raises ValueError, OSError, zipfile errors...
                raise ModelFileError(f"{path}: cannot load the Keras model ({type(exc).__name__}: {exc}); "
                                     "re-materialise this trained_models partition") from exc
        return cls(*parts)


def _in_chunks(fn, x: np.ndarray, size: int = 8192) -> np.ndarray:
    """Call a Keras model directly (no ``predict``: no tf.data pipeline for in-memory arrays)."""
    x = np.asarray(x, np.float32)
    return np.concatenate([np.asarray(fn(x[i:i + size])) for i in range(0, max(len(x), 1), size)])
