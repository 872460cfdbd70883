"""The AnnData export (``cpvae export``: round trip, no overwrite unless asked, unknown format, missing
partition) and the report CLI naming what is not materialised yet, on a small hand-written lake."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def _write_lsa_lake(lake: Path, dataset: str = "toy", model_type: str = "pca") -> dict[str, pd.DataFrame]:
    from cpvae_assets.storage.paths import partition_dir
    from cpvae_assets.storage.tables import write_table

    rng = np.random.default_rng(0)
    features = ["Cells_AreaShape_Area", "Nuclei_Intensity_MeanIntensity_DNA"]
    embeddings = pd.DataFrame({"profile_id": [f"p{i}" for i in range(6)], "compound": list("aabbcc"),
                               "moa": ["A", "A", "B", "B", "A|B", "A|B"], "split": ["train"] * 6,
                               "z_0": rng.normal(size=6), "z_1": rng.normal(size=6)})
    pairs = ["A|B"] * 2
    predictions = pd.DataFrame({"pair": pairs, "method": ["lsa", "mean_of_singles"], "expression": ["x", "y"],
                                features[0]: [0.1, 0.2], features[1]: [0.3, 0.4]})
    means = pd.DataFrame({"group": ["A", "B", "A|B"], "profiles": [2, 2, 2], features[0]: [0.0, 0.5, 0.9],
                          features[1]: [1.0, 0.5, 0.7]})
    zscores = pd.DataFrame({"pair": pairs, "method": ["lsa", "mean_of_singles"], "l2": [1.0, 2.0], "z": [-3.0, 1.0],
                            "q": [0.01, 0.9]})
    tables = {("latent_embeddings", "data"): embeddings, ("lsa_predictions", "data"): predictions,
              ("moa_means", "features"): means, ("lsa_zscores", "data"): zscores}
    for (asset, name), frame in tables.items():
        write_table(frame, partition_dir(lake, asset, dataset, model_type) / f"{name}.parquet")
    return {"embeddings": embeddings, "predictions": predictions, "means": means}


def test_export_h5ad_round_trip_and_refuses_to_overwrite(lake: Path, tmp_path: Path) -> None:
    import anndata

    from cpvae_assets.cli import main
    from cpvae_assets.report.export import export
    from cpvae_assets.storage.lake import Lake

    frames = _write_lsa_lake(lake)
    out = tmp_path / "out"
    assert main(["--lake", str(lake), "export", "toy", "pca", "--format", "h5ad", "-o", str(out)]) == 0
    emb = anndata.read_h5ad(out / "toy_pca_embeddings.h5ad")
    np.testing.assert_allclose(emb.obsm["X_latent"], frames["embeddings"][["z_0", "z_1"]].to_numpy(np.float32))
    assert list(emb.var_names) == ["z_0", "z_1"] and list(emb.obs_names) == [f"p{i}" for i in range(6)]
    assert emb.obs["moa"].tolist() == frames["embeddings"]["moa"].tolist() and emb.uns["cpvae"]["model_type"] == "pca"
    lsa = anndata.read_h5ad(out / "toy_pca_lsa_predictions.h5ad")
    assert lsa.obs["kind"].tolist() == ["predicted", "predicted", "real"]
    assert lsa.obs["method"].tolist() == ["lsa", "mean_of_singles", "observed"]
    np.testing.assert_allclose(lsa.X, [[0.1, 0.3], [0.2, 0.4], [0.9, 0.7]], rtol=1e-6)
    assert lsa.obs["z"].iloc[0] == -3.0 and np.isnan(lsa.obs["z"].iloc[2])

    before = (out / "toy_pca_embeddings.h5ad").read_bytes()
    with pytest.raises(FileExistsError, match="toy_pca_lsa_predictions.h5ad: already exists; pass --overwrite"):
        export(Lake(lake), "toy", "pca", "h5ad", out)
    assert (out / "toy_pca_embeddings.h5ad").read_bytes() == before
    assert main(["--lake", str(lake), "export", "toy", "pca", "-o", str(out), "--overwrite"]) == 0
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        export(Lake(lake), "toy", "pca", "csv", out)
    with pytest.raises(FileNotFoundError, match="toy / beta: not materialised yet"):
        export(Lake(lake), "toy", "beta", "h5ad", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_report_of_an_unmaterialised_dataset_names_what_is_missing(lake: Path, tmp_path: Path, capsys) -> None:
    from cpvae_assets.cli import main

    _write_lsa_lake(lake, dataset="demo_cp_level5")
    target = tmp_path / "r.html"
    assert main(["--lake", str(lake), "report", "demo_cp_level5", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "demo_cp_level5: cannot write a report, these assets are not materialised yet" in err
    assert "normalised_splits" in err and "trained_models (vanilla)" in err and "lsa_zscores_summary (pca)" in err
    assert not target.exists() and not list(tmp_path.glob(".r.html*"))
