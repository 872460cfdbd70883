"""Generation QC: how well a model reconstructs test profiles and how close its simulated profiles
(decoded prior samples) come to real ones."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from cpvae_assets.models.distances import hausdorff
from cpvae_assets.models.latent import LatentModel, PcaModel

UMAP_SMALL_DATA = 4096  # umap-learn computes all distances (no nearest-neighbour descent) below this


@cache
def cached_umap():
    """``umap`` with numba's on-disk cache on for its compiled functions. umap-learn marks one of them
    ``cache=True``, so every process (each Dagster run) compiled the rest again: 27 s for the first fit
    and transform on this machine, 0.9 s once the cache (beside umap's sources, keyed by CPU) exists.
    The cached code is the same, so are the embeddings. Where numba finds no writable cache folder
    (a read-only image without ``NUMBA_CACHE_DIR``) it compiles as before."""
    import umap
    from numba.core.dispatcher import Dispatcher

    _cache_on_disk([value for name, module in list(sys.modules.items()) if name.partition(".")[0] in ("umap", "pynndescent")
                    for value in list(vars(module).values()) if isinstance(value, Dispatcher)])
    return umap


def _cache_on_disk(dispatchers) -> None:
    """numba's disk cache for these compiled functions, where numba finds a writable cache folder."""
    try:
        for dispatcher in dispatchers:
            dispatcher.enable_caching()
    except RuntimeError:  # "cannot cache function ...: no locator available": compile in each process
        pass


@cache
def _distances():
    """Every row of ``x`` to every row of ``y`` with umap's own euclidean kernel, in one numba loop.
    For fewer than 4096 profiles umap hands its numba metric to scikit-learn's ``pairwise_distances``,
    which calls it once per pair from Python: 0.6 s for 800 x 800 profiles against 0.05 s here, with
    bit-identical distances (same kernel, same float32 result), so the embeddings do not change. The
    kernel is a module's function: numba cached a closure anew in each process (a miss, and one more
    file beside the sources each time)."""
    from cpvae_assets.models.umap_distances import pairwise

    _cache_on_disk([pairwise])
    return pairwise


def simulate(model: LatentModel, n: int, seed: int) -> np.ndarray:
    """Decode samples of the prior: N(0, I) for a VAE; for PCA the matching Gaussian, N(0, diag(var))."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, model.latent_dim)).astype(np.float32)
    if isinstance(model, PcaModel):
        z = z * np.sqrt(model.pca.explained_variance_).astype(np.float32)
    return model.decode(z)


@dataclass
class GenerationQC:
    scores: dict[str, float]
    coords: pd.DataFrame  # kind (real / reconstructed / simulated), profile_id, umap_1, umap_2


def generation_qc(model: LatentModel, test: np.ndarray, profile_ids: list[str], seed: int) -> GenerationQC:
    """Reconstruct the test split, simulate as many profiles, and place all three in one UMAP fitted
    on the real test profiles only."""
    if len(test) < 5:
        raise ValueError(f"{len(test)} test profiles are too few for generation QC (need at least 5)")
    umap = cached_umap()
    reconstructed = model.decode(model.encode(test))
    simulated = simulate(model, len(test), seed)
    nn = NearestNeighbors(n_neighbors=1).fit(test)
    scores = {
        "reconstruction_mse": float(np.mean((test - reconstructed) ** 2)),
        "reconstruction_sse_per_profile": float(np.mean(np.sum((test - reconstructed) ** 2, axis=1))),
        "simulated_hausdorff": hausdorff(simulated, test),
        "simulated_mean_nn_distance": float(nn.kneighbors(simulated)[0].mean()),
        "reconstructed_mean_nn_distance": float(nn.kneighbors(reconstructed)[0].mean()),
        "test_profiles": float(len(test)),
    }
    # below umap's small-data size its metric="euclidean" computes every distance too; precomputed
    # distances give the same graph, layout and transform without its per-pair loop
    exact = len(test) < UMAP_SMALL_DATA

    def umap_input(data: np.ndarray) -> np.ndarray:  # the profiles, or their distances to the test split
        return _distances()(data, test) if exact else data

    reducer = umap.UMAP(n_neighbors=min(15, len(test) - 1), random_state=seed, n_jobs=1,
                        metric="precomputed" if exact else "euclidean")
    frames = []
    with warnings.catch_warnings():  # "transforming new data with precomputed metric": distances to the test split
        warnings.filterwarnings("ignore", message=".*precomputed.*", category=UserWarning)
        reducer.fit(umap_input(test))
        for kind, data, ids in (("real", test, profile_ids), ("reconstructed", reconstructed, profile_ids),
                                ("simulated", simulated, [f"simulated:{i}" for i in range(len(simulated))])):
            xy = reducer.embedding_ if kind == "real" else reducer.transform(umap_input(data))
            frames.append(pd.DataFrame({"kind": kind, "profile_id": ids, "umap_1": xy[:, 0], "umap_2": xy[:, 1]}))
    return GenerationQC(scores, pd.concat(frames, ignore_index=True))


def fill_numba_cache() -> None:
    """Generation QC once on a small synthetic set, so numba writes the compiled UMAP code (the functions
    and argument types a run uses) to its disk cache: ``make install`` runs it, and each run process,
    ``cpvae demo``'s two workers included, then loads that code instead of compiling it at once."""
    rng = np.random.default_rng(0)
    test = rng.standard_normal((40, 12)).astype(np.float32)
    generation_qc(PcaModel.fit(test, 3, seed=0), test, [str(i) for i in range(len(test))], seed=0)
