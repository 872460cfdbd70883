"""Interpretation and reporting end to end: a small demo dataset materialised through every asset
(beta-VAE and PCA; PCA on the L1000 demo), then the report in a real headless browser, the CLI, the
AnnData export and the Dagster UI's GraphQL endpoint, all on one materialised lake."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from cpvae_assets_tests.support.helpers import failure_text

CP, L1000 = "demo_cp_level5", "demo_l1000"
FAST = {"ops": {"tuned_hyperparameters": {"config": {"trials": 0}},
                "trained_models": {"config": {"epochs": 6, "patience": 6, "n_seeds": 1}},
                "shuffled_null": {"config": {"permutations": 50}}}}
MODEL_TYPES = {CP: ("beta", "pca"), L1000: ("pca",)}
PER_MODEL = ["tuned_hyperparameters", "trained_models", "training_curves", "latent_embeddings", "generation_qc",
             "latent_traversal", "feature_group_contributions", "latent_correlation", "moa_means", "lsa_predictions",
             "lsa_distances", "shuffled_null", "lsa_zscores", "method_comparison"]
FIGURES_PER_MODEL = 5  # training curves, UMAP, heatmap (or traversal), active features, correlation
FIGURES_PER_DATASET = 1  # the forest plot of LSA against the baselines


@dataclass
class Materialised:
    lake: Path
    home: Path
    results: dict


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Materialised:
    import dagster as dg

    from cpvae_assets.definitions import defs
    from cpvae_assets.ingestion.demo_data import DemoConfig, generate_demo
    from cpvae_assets.orchestration.io_manager import LakeIOManager
    from cpvae_assets.orchestration.partitions import dataset_partitions
    from cpvae_assets.orchestration.resources import LakeResource, LincsRemoteResource

    root = tmp_path_factory.mktemp("reporting")
    lake, home = root / "lake", root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    generate_demo(lake / "landing", DemoConfig(n_single_moas=8, n_pairs=3, n_synergistic=1, compounds_per_moa=3,
                                               plate_maps=2, dmso_per_plate_map=10, replicates=2, n_features=60))
    resources = {"io_manager": LakeIOManager(root=str(lake)), "lake": LakeResource(root=str(lake)),
                 "lincs_remote": LincsRemoteResource()}
    assets, results = list(defs.assets), {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(dataset_partitions.name, list(MODEL_TYPES))
        for dataset, model_types in MODEL_TYPES.items():
            run = dg.materialize(assets, selection=["raw_profiles", "normalised_splits", "moa_groups"],
                                 partition_key=dataset, instance=instance, resources=resources, raise_on_error=False)
            assert run.success, failure_text(run)
            for model_type in model_types:
                key = dg.MultiPartitionKey({"dataset": dataset, "model_type": model_type})
                run = dg.materialize(assets, selection=PER_MODEL, partition_key=key, instance=instance,
                                     resources=resources, run_config=FAST, raise_on_error=False)
                assert run.success, failure_text(run)
                results[(dataset, model_type)] = run
            run = dg.materialize(assets, selection=["report"], partition_key=dataset, instance=instance,
                                 resources=resources, raise_on_error=False)
            assert run.success, failure_text(run)
            results[(dataset, "report")] = run
        run = dg.materialize(assets, selection=["lsa_summary"], instance=instance, resources=resources,
                             run_config={"ops": {"lsa_summary": {"config": {"cell_painting": CP, "l1000": L1000,
                                                                            "model_type": "pca"}}}}, raise_on_error=False)
        assert run.success, failure_text(run)
        results["lsa_summary"] = run
    return Materialised(lake, home, results)


def _metadata(run, asset: str) -> dict:
    """Metadata of the materialisation of ``asset`` in ``run``."""
    for event in run.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return materialization.metadata
    raise KeyError(f"{asset} was not materialised in run {run.run_id}")


def test_interpretation_assets_store_tables_and_plots(pipeline: Materialised) -> None:
    from cpvae_assets.storage.sql import query

    run = pipeline.results[(CP, "beta")]
    for asset, key in (("latent_traversal", "traversal"), ("feature_group_contributions", "heatmap"),
                       ("feature_group_contributions", "active"), ("latent_correlation", "heatmap"),
                       ("training_curves", "curves"), ("generation_qc", "umap"), ("lsa_zscores", "pairs")):
        meta = _metadata(run, asset)
        assert "data:image/png;base64," in meta[key].value, (asset, key)
        assert meta["dagster/row_count"].value > 0 and "|" in meta["preview"].value, asset
        png = pipeline.lake / asset / f"dataset={CP}" / "model_type=beta" / f"{key}.png"
        if asset != "lsa_zscores":  # stored beside the tables: the figure the UI shows is the report's
            assert base64.b64encode(png.read_bytes()).decode() in meta[key].value, (asset, key)
    traversal = query(pipeline.lake, "SELECT dataset, model_type, count(*) AS n, count(DISTINCT latent_feature) AS k "
                                     "FROM latent_traversal GROUP BY ALL ORDER BY ALL")
    # every latent feature x every input feature, CP: 60 features; L1000: 978 genes
    assert {(r.dataset, r.model_type): r.n // r.k for r in traversal.itertuples()} == {
        (CP, "beta"): 60, (CP, "pca"): 60, (L1000, "pca"): 978}
    groups = query(pipeline.lake, "SELECT dataset, model_type, latent_feature, sum(share) AS s "
                                  "FROM feature_group_contributions GROUP BY ALL")
    assert set(groups["dataset"]) == {CP} and np.allclose(groups["s"], 1.0)  # no feature groups for genes
    active = query(pipeline.lake, "SELECT dataset, model_type, count(*) FILTER (WHERE active) AS active, count(*) AS k "
                                  "FROM feature_group_contributions_active GROUP BY ALL")
    assert len(active) == 3 and (active["active"] <= active["k"]).all() and (active["active"] > 0).all()
    # Supplementary Figure 5 in one query: reconstruction vs latent correlation per model
    trade_off = query(pipeline.lake, "SELECT c.dataset, c.model_type, c.mean_abs_correlation, q.reconstruction_mse "
                                     "FROM latent_correlation_summary c JOIN generation_qc q USING (dataset, model_type)")
    assert len(trade_off) == 3 and trade_off["mean_abs_correlation"].between(0, 1).all()
    from cpvae_assets.storage.hashing import sha256_of

    # the stored summary names the exact model files it describes
    stored = query(pipeline.lake, f"SELECT DISTINCT model_files_sha256 FROM trained_models WHERE dataset = '{CP}' "
                                  "AND model_type = 'beta'")["model_files_sha256"]
    folder = pipeline.lake / "trained_models" / f"dataset={CP}" / "model_type=beta"
    assert json.loads(stored.item()) == {n: sha256_of(folder / n) for n in ("decoder.keras", "encoder.keras")}
    top = query(pipeline.lake, f"SELECT latent_feature, count(*) AS n FROM latent_traversal_top "
                               f"WHERE dataset = '{L1000}' GROUP BY ALL")
    assert (top["n"] == 10).all()


def test_lsa_summary_has_distinctness_vs_z(pipeline: Materialised) -> None:
    from cpvae_assets.storage.sql import query

    pairs = query(pipeline.lake, "SELECT dataset, model_type, pair, distinctness, z FROM lsa_summary_distinctness")
    assert set(zip(pairs["dataset"], pairs["model_type"])) == {(CP, "beta"), (CP, "pca"), (L1000, "pca")}
    assert (pairs["distinctness"] > 0).all() and np.isfinite(pairs["z"]).all()
    stats = query(pipeline.lake, "SELECT * FROM lsa_summary_distinctness_spearman")
    assert len(stats) == 3 and stats["spearman_rho"].dropna().between(-1, 1).all()
    meta = _metadata(pipeline.results["lsa_summary"], "lsa_summary")
    assert "data:image/png;base64," in meta["supplementary_figure8"].value
    # every partition's comparison with the baselines, over datasets, with its forest plot
    assert "data:image/png;base64," in meta["method_comparison"].value
    comparison = query(pipeline.lake, "SELECT dataset, model_type, baseline, metric, n FROM lsa_summary_method_comparison")
    assert len(comparison) == 3 * 4 * 3
    assert set(zip(comparison["dataset"], comparison["model_type"])) == {(CP, "beta"), (CP, "pca"), (L1000, "pca")}
    forest = _metadata(pipeline.results[(CP, "beta")], "method_comparison")
    assert "data:image/png;base64," in forest["forest"].value and forest["seed"].value == 0


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("no chromium on PATH: .ci/run installs Debian's chromium (apt-get install chromium)")


def render_in_browser(html: Path, tmp: Path) -> tuple[str, str]:
    """The DOM after the page's load event, and the browser's log, from headless Chromium."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=10000", "--dump-dom", html.as_uri()]
    done = subprocess.run([_chromium(), *flags], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


@pytest.mark.parametrize("dataset", [CP, L1000])
def test_report_renders_every_figure_in_a_browser(pipeline: Materialised, tmp_path: Path, dataset: str) -> None:
    html = pipeline.lake / "report" / f"dataset={dataset}" / "report.html"
    text = html.read_text()
    assert "http://" not in text and "https://" not in text  # nothing to fetch: self-contained
    for section in ("Data", "Training", "Generation QC", "Latent interpretation", "Latent space arithmetic",
                    "How these numbers were produced"):
        assert f"<h2>{section}</h2>" in text
    assert "<h3>Does LSA beat the baselines?</h3>" in text and "copairs, cosine distance" in text
    # PCA is fitted in one step: the report shows no (empty) training curve for it
    expected = FIGURES_PER_MODEL * len(MODEL_TYPES[dataset]) - MODEL_TYPES[dataset].count("pca") + FIGURES_PER_DATASET
    assert text.count('<img class="figure"') == expected
    assert "landing_sha256" in text and "ingestion run" in text  # provenance from the Dagster instance
    run_id = pipeline.results[(dataset, MODEL_TYPES[dataset][0])].run_id
    assert text.count(run_id) >= len(PER_MODEL) - 2  # the run of each table it read
    dom, log = render_in_browser(html, tmp_path)
    check = re.search(r'id="render-check" data-rendered="(\d+)" data-figures="(\d+)"', dom)
    assert check, "the page's load handler did not run"
    assert (int(check.group(1)), int(check.group(2))) == (expected, expected)
    console = [line for line in log.splitlines() if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)]
    assert console == []


def test_the_report_embeds_the_figures_the_assets_stored(pipeline: Materialised, tmp_path: Path) -> None:
    """Drawn once, by the asset; a partition stored without its figures (an older version) gets them
    drawn from its tables."""
    from cpvae_assets.ingestion.registry import dataset_spec
    from cpvae_assets.report import collect, render
    from cpvae_assets.storage.lake import Lake

    text = (pipeline.lake / "report" / f"dataset={CP}" / "report.html").read_text()
    stored = sorted(pipeline.lake.glob(f"*/dataset={CP}/model_type=*/*.png"))
    # beta: curves, UMAP, traversal, feature-group heatmap, active features, correlation; PCA: no curves
    assert len(stored) == 6 + 5
    embedded = [p for p in stored if base64.b64encode(p.read_bytes()).decode() in text]
    assert len(embedded) == FIGURES_PER_MODEL * 2 - 1, [p.relative_to(pipeline.lake) for p in stored]
    assert not any(p.parts[-3] == "latent_traversal" for p in embedded)  # Cell Painting: the heatmap instead
    from cpvae_assets.storage.sql import query

    read = query(pipeline.lake, f"SELECT f.asset, f.model_type, f.sha256, f.code_version, t.code_version AS tables "
                                f"FROM report f JOIN report t USING (dataset, asset, model_type) WHERE f.dataset = '{CP}' "
                                "AND f.\"table\" LIKE '%.png' AND t.\"table\" NOT LIKE '%.png'").drop_duplicates()
    assert len(read) == len(stored) and (read["code_version"] == read["tables"]).all() and read["code_version"].str.len().min() > 0
    copy = tmp_path / "lake"
    shutil.copytree(pipeline.lake, copy, ignore=shutil.ignore_patterns("*.png", "dagster_home"))
    kind = dataset_spec(CP, copy / "landing" / CP).kind
    drawn = render(collect(Lake.at(copy), CP, kind))
    assert drawn.count('<img class="figure"') == text.count('<img class="figure"') == FIGURES_PER_MODEL * 2 - 1 + 1


def test_report_cli_writes_one_file_and_refuses_to_overwrite(pipeline: Materialised, tmp_path: Path) -> None:
    env = {**os.environ, "CPVAE_LAKE": str(pipeline.lake), "DAGSTER_HOME": str(pipeline.home)}
    target = tmp_path / "cp.html"
    cmd = [sys.executable, "-m", "cpvae_assets.cli", "report", CP, "-o", str(target)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert f"wrote {target}" in done.stdout and target.stat().st_size > 50_000
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False)
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr
    assert [p for p in tmp_path.iterdir() if p.name != "dagster_home"] == [target]  # no temporary file left


def test_export_of_a_materialised_partition(pipeline: Materialised, tmp_path: Path) -> None:
    import anndata

    from cpvae_assets.report.export import export
    from cpvae_assets.storage.lake import Lake

    emb_path, lsa_path = export(Lake(pipeline.lake), CP, "beta", "h5ad", tmp_path)
    adata = anndata.read_h5ad(emb_path)
    stored = Lake(pipeline.lake).table("latent_embeddings", CP, "beta")
    z_cols = [c for c in stored.columns if c.startswith("z_")]
    np.testing.assert_array_equal(adata.obsm["X_latent"], stored[z_cols].to_numpy(np.float32))
    assert list(adata.obs_names) == stored["profile_id"].astype(str).tolist()
    lsa = anndata.read_h5ad(lsa_path)
    assert set(lsa.obs["kind"]) == {"predicted", "real"} and lsa.n_vars == 60
    assert (lsa.obs["kind"] == "real").sum() == 3  # the three planted pairs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


ASSET_NODES = "{ assetNodes { assetKey { path } isPartitioned partitionKeysByDimension { name partitionKeys } } }"
LAST_MATERIALISATION = """{ assetOrError(assetKey: {path: ["%s"]}) { ... on Asset {
  assetMaterializations(partitions: ["%s"], limit: 1) {
  partition metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } } } } }"""


def test_dagster_ui_lists_every_asset_with_partitions_and_plots(pipeline: Materialised, tmp_path: Path) -> None:
    from cpvae_assets.definitions import defs

    port = _free_port()
    env = {**os.environ, "CPVAE_LAKE": str(pipeline.lake), "DAGSTER_HOME": str(pipeline.home)}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    log = (tmp_path / "webserver.log").open("w")
    server = subprocess.Popen([str(webserver), "-h", "127.0.0.1", "-p", str(port), "-m", "cpvae_assets.definitions"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"webserver did not start: {(tmp_path / 'webserver.log').read_text()[-3000:]}")
                time.sleep(1)
        for _ in range(60):  # the code location loads after the server answers
            nodes = _graphql(port, ASSET_NODES).get("assetNodes") or []
            if nodes:
                break
            time.sleep(1)
        listed = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        expected = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
        assert set(listed) == expected
        dims = {d["name"]: set(d["partitionKeys"]) for d in listed["latent_correlation"]["partitionKeysByDimension"]}
        assert dims == {"dataset": set(MODEL_TYPES), "model_type": {"vanilla", "beta", "mmd", "pca"}}
        assert listed["lsa_summary"]["isPartitioned"] is False
        for asset, label in (("feature_group_contributions", "heatmap"), ("latent_correlation", "heatmap"),
                             ("training_curves", "curves")):
            data = _graphql(port, LAST_MATERIALISATION % (asset, f"{CP}|beta"))["assetOrError"]["assetMaterializations"]
            assert data[0]["partition"] == f"{CP}|beta"
            entries = {e["label"]: e.get("mdStr") for e in data[0]["metadataEntries"]}
            assert "data:image/png;base64," in (entries.get(label) or ""), (asset, sorted(entries))
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()
        log.close()
    assert server.poll() is not None


def test_cli_predict_prints_no_cuda_noise_and_names_every_group(pipeline: Materialised) -> None:
    """On a machine without a GPU TensorFlow's CUDA probe would log "failed call to cuInit"; the
    nearest groups never include an unnamed group of unannotated compounds."""
    from cpvae_assets.storage.lake import Lake

    groups = Lake(pipeline.lake).table("moa_groups", CP)
    a, b = groups.loc[groups["kind"] == "pair", ["moa_a", "moa_b"]].iloc[0]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env |= {"CPVAE_LAKE": str(pipeline.lake), "DAGSTER_HOME": str(pipeline.home)}
    done = subprocess.run([sys.executable, "-m", "cpvae_assets.cli", "predict", a, b, "--dataset", CP,
                           "--model-type", "beta", "--top", "50"], capture_output=True, text=True, env=env,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    if not Path("/proc/driver/nvidia/version").exists():
        assert "cuInit" not in done.stderr and "CUDA" not in done.stderr
    out = done.stdout
    assert "observed in the dataset" in out and "nearest MOA groups" in out
    table = out.split("nearest MOA groups", 1)[1].splitlines()[2:]
    # each row: a group name (one or more words) and its L2; an unnamed group would leave the L2 alone
    assert table and all(len(line.split()) >= 2 for line in table), table
    assert "without an MOA annotation are in no group" in out  # the demo has two unannotated compounds
