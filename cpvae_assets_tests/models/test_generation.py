"""Embeddings of every profile (and their AnnData form) and the generation QC of a trained model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cpvae_assets_tests.support.model_data import LATENT, N_FEATURES, Data

# --------------------------------------------------------------------------------------------- embeddings, QC


def _splits_frame(data: Data) -> pd.DataFrame:
    x = data.all
    splits = ["train"] * len(data.train) + ["validation"] * len(data.val) + ["test"] * len(data.test)
    meta = pd.DataFrame({"profile_id": [f"p{i}" for i in range(len(x))], "compound": [f"c{i % 7}" for i in range(len(x))],
                         "dose": np.linspace(0.1, 10, len(x)), "split": splits})
    return pd.concat([meta, pd.DataFrame(x, columns=[f"Cells_Feature_{j}" for j in range(x.shape[1])])], axis=1)


def test_embed_and_anndata(trained, data: Data, tmp_path: Path) -> None:
    import anndata

    from cpvae_assets.models.embedding import embed
    from cpvae_assets.report.export import to_anndata

    model = trained("beta").model
    splits = _splits_frame(data)
    embeddings = embed(model, splits)
    z_cols = [f"z_{i}" for i in range(LATENT)]
    assert len(embeddings) == len(splits)
    assert list(embeddings.columns) == ["profile_id", "compound", "dose", "split", *z_cols]
    assert list(embeddings["profile_id"]) == list(splits["profile_id"])
    np.testing.assert_allclose(embeddings[z_cols].to_numpy(), model.encode(data.all), atol=1e-6)

    path = tmp_path / "embeddings.h5ad"
    to_anndata(embeddings).write_h5ad(path)
    back = anndata.read_h5ad(path)
    assert back.shape == (len(splits), LATENT)
    assert list(back.obs_names) == list(splits["profile_id"])
    assert list(back.var_names) == z_cols
    assert list(back.obs["split"]) == list(splits["split"])
    np.testing.assert_allclose(np.asarray(back.X), embeddings[z_cols].to_numpy(np.float32), atol=1e-6)


def test_generation_qc(trained, data: Data) -> None:
    from cpvae_assets.models.generation import generation_qc

    ids = [f"t{i}" for i in range(len(data.test))]
    qc = generation_qc(trained("beta").model, data.test, ids, seed=0)
    assert {"reconstruction_mse", "reconstruction_sse_per_profile", "simulated_hausdorff",
            "simulated_mean_nn_distance", "reconstructed_mean_nn_distance", "test_profiles"} <= set(qc.scores)
    assert all(math.isfinite(v) for v in qc.scores.values())
    assert qc.scores["test_profiles"] == len(data.test)
    assert qc.scores["reconstruction_sse_per_profile"] == pytest.approx(qc.scores["reconstruction_mse"] * N_FEATURES, rel=1e-4)
    assert qc.scores["simulated_hausdorff"] >= qc.scores["simulated_mean_nn_distance"] > 0
    assert qc.coords["kind"].value_counts().to_dict() == {k: len(data.test) for k in ("real", "reconstructed", "simulated")}
    assert list(qc.coords.loc[qc.coords["kind"] == "real", "profile_id"]) == ids
    assert np.isfinite(qc.coords[["umap_1", "umap_2"]].to_numpy()).all()
    with pytest.raises(ValueError, match="too few"):
        generation_qc(trained("beta").model, data.test[:4], ids[:4], seed=0)


def test_umap_compiled_code_is_cached_on_disk(trained, data: Data) -> None:
    """Each Dagster run is a new process: without numba's disk cache it compiled UMAP again (27 s)."""
    from numba.core.caching import FunctionCache

    from cpvae_assets.models.generation import cached_umap, generation_qc

    generation_qc(trained("beta").model, data.test, [f"t{i}" for i in range(len(data.test))], seed=0)
    layouts = cached_umap().layouts
    epoch = layouts._nb_optimize_layout_euclidean_single_epoch  # the numba function of every layout epoch
    assert isinstance(epoch._cache, FunctionCache)
    index = Path(epoch._cache._cache_path)
    assert any(p.name.startswith("layouts._optimize_layout_euclidean_single_epoch") and p.suffix == ".nbi"
               for p in index.iterdir())


FRESH_QC = """
import json, numpy as np
from cpvae_assets.models import generation
from cpvae_assets.models.latent import PcaModel
test = np.random.default_rng(5).standard_normal((70, 9)).astype(np.float32)
generation.generation_qc(PcaModel.fit(test, 4, seed=1), test, [str(i) for i in range(70)], seed=2)
umap = generation.cached_umap()
kernels = {"layout epoch": umap.layouts._nb_optimize_layout_euclidean_single_epoch,
           "membership": umap.umap_.compute_membership_strengths, "sigmas": umap.umap_.smooth_knn_dist,
           "distances": generation._distances()}
print(json.dumps({k: [sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())] for k, f in kernels.items()}))
"""


def test_after_make_install_a_run_process_compiles_none_of_the_umap_code() -> None:
    """make install runs fill_numba_cache: a later process (a Dagster run, a demo worker), with other data
    and seeds, loads each UMAP kernel from numba's cache (a hit) instead of compiling it (a miss)."""
    import json
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "from cpvae_assets.models.generation import fill_numba_cache; fill_numba_cache()"],
                   check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", FRESH_QC], check=True, capture_output=True, text=True).stdout
    counts = json.loads(out.strip().splitlines()[-1])
    assert all(hits >= 1 and misses == 0 for hits, misses in counts.values()), counts


def test_umap_without_a_writable_cache_folder_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    from numba.core.dispatcher import Dispatcher

    from cpvae_assets.models.generation import cached_umap

    def no_locator(self) -> None:
        raise RuntimeError("cannot cache function 'f': no locator available for file '/ro/umap/layouts.py'")

    monkeypatch.setattr(Dispatcher, "enable_caching", no_locator)
    assert hasattr(cached_umap.__wrapped__(), "UMAP")


def test_umap_on_precomputed_distances_is_umap_on_the_profiles(trained, data: Data) -> None:
    """generation_qc hands umap the distances it would compute itself (its per-pair loop was most of
    the QC's time): the coordinates must stay those of metric="euclidean", bit for bit."""
    from sklearn.metrics import pairwise_distances
    from umap.distances import euclidean

    from cpvae_assets.models.generation import _distances, cached_umap, generation_qc, simulate

    model = trained("beta").model
    test = data.test
    np.testing.assert_array_equal(_distances()(test, test), pairwise_distances(test, metric=euclidean))
    qc = generation_qc(model, test, [f"t{i}" for i in range(len(test))], seed=3)
    reducer = cached_umap().UMAP(n_neighbors=min(15, len(test) - 1), random_state=3, n_jobs=1).fit(test)
    expected = {"real": reducer.embedding_, "reconstructed": reducer.transform(model.decode(model.encode(test))),
                "simulated": reducer.transform(simulate(model, len(test), 3))}
    for kind, xy in expected.items():
        got = qc.coords.loc[qc.coords["kind"] == kind, ["umap_1", "umap_2"]].to_numpy()
        np.testing.assert_array_equal(got, xy, err_msg=kind)
