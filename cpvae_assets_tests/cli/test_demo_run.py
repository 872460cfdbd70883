"""``cpvae demo`` / ``cpvae run``: the plan of runs comes from defs/jobs.py, launches on the instance,
and the console shows progress, a table and grouped warnings instead of every Dagster event."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas.testing
import pytest

from cpvae_assets.cli.demo import execute
from cpvae_assets.cli.main import main
from cpvae_assets.definitions import defs
from cpvae_assets.defs.jobs import DATASET_ASSETS, MODEL_ASSETS, MODEL_CONFIG, REPORT_ASSETS, SUMMARY_ASSETS, plan
from cpvae_assets.orchestration.partitions import dataset_model_partitions, dataset_partitions
from cpvae_assets.orchestration.tags import LAUNCHED_BY_TAG
from cpvae_assets.schema import MODEL_TYPES, PRESETS
from cpvae_assets_tests.support.real_data import REAL_L1000


def test_every_partitioned_asset_is_in_exactly_one_job_of_the_plan() -> None:
    graph = defs.resolve_asset_graph()
    partitioned = {k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    in_jobs = [*DATASET_ASSETS, *MODEL_ASSETS, *REPORT_ASSETS]
    assert sorted(in_jobs) == sorted(set(in_jobs)) and set(in_jobs) == partitioned - {"leave_moa_out"}
    unpartitioned = {k.to_user_string() for k in graph.materializable_asset_keys if graph.get(k).partitions_def is None}
    assert set(SUMMARY_ASSETS) == unpartitioned  # refresh_failures is observed by a sensor, not materialised
    for preset in PRESETS:
        job = defs.resolve_job_def(f"models_{preset}")
        assert job.partitions_def == dataset_model_partitions
        # the Launchpad opens with the preset's budget for every partition
        assert job.get_run_config_for_partition_key("any|beta") == {"ops": MODEL_CONFIG[preset]}
    assert defs.resolve_job_def("dataset_inputs").partitions_def == dataset_partitions


def test_plan_order_and_config() -> None:
    runs = plan(["demo_cp_level5", "other"], "paper")
    jobs = [r.job for r in runs]
    assert jobs == (["dataset_inputs"] + ["models_paper"] * 4 + ["dataset_report"]) * 2 + ["leave_moa_out_job", "summaries"]
    assert [str(r.partition) for r in runs[1:5]] == [f"demo_cp_level5|{m}" for m in MODEL_TYPES]
    assert all(r.ops == MODEL_CONFIG["paper"] for r in runs if r.job == "models_paper")
    assert [r.job for r in plan(["other"], "demo", ("pca",))] == ["dataset_inputs", "models_demo", "dataset_report",
                                                                "summaries"]
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        plan(["x"], "huge")  # type: ignore[arg-type]


def test_plan_with_bfloat16_matmuls() -> None:
    """``cpvae run --matmul-dtype bfloat16``: tuning and training of every model run, a config the job accepts."""
    runs = [r for r in plan(["x"], "demo", matmul_dtype="bfloat16") if r.job == "models_demo"]
    assert len(runs) == len(MODEL_TYPES)
    for run in runs:
        assert {op: c["config"]["matmul_dtype"] for op, c in run.ops.items()} == {
            "tuned_hyperparameters": "bfloat16", "trained_models": "bfloat16"}
        assert dg.validate_run_config(defs.resolve_job_def("models_demo"), {"ops": run.ops})
    assert "matmul_dtype" not in str(plan(["x"], "demo")[1].ops)  # float32: the stored config as before
    with pytest.raises(ValueError, match="unknown matmul dtype 'float16'"):
        plan(["x"], "demo", matmul_dtype="float16")  # type: ignore[arg-type]
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(defs.resolve_job_def("models_demo"),
                               {"ops": {"trained_models": {"config": {"matmul_dtype": "float16"}}}})


def test_every_run_waits_only_for_the_earlier_runs_it_reads() -> None:
    runs = plan(["demo_cp_level5", "other"], "demo")
    position = {r.label: i for i, r in enumerate(runs)}
    assert all(all(j < i for j in r.after) for i, r in enumerate(runs))
    after = {r.label: {runs[j].label for j in r.after} for r in runs}
    assert after["other inputs"] == set()  # a dataset's inputs need no other run: they may start at once
    assert after["other beta"] == {"other inputs"}  # model types of a dataset may run side by side
    assert after["other report"] == {"other inputs", *(f"other {m}" for m in MODEL_TYPES)}
    assert after["demo_cp_level5|beta leave MOAs out"] == {"demo_cp_level5 inputs", "demo_cp_level5 beta"}
    assert runs[position["summaries"]].after == tuple(range(len(runs) - 1))


def _tables(lake: Path, names: tuple[str, ...]) -> dict[str, object]:
    import pandas as pd

    found = {}
    for name in names:
        for data in sorted((lake / name).rglob("*.parquet")):
            found[str(data.relative_to(lake))] = pd.read_parquet(data)
    assert found, names
    return found


def test_workers_run_side_by_side_and_write_what_one_process_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two real plates with PCA: in two worker processes their runs overlap, and every table equals the
    one-process run's (fixed seeds, the same code)."""
    from cpvae_assets_tests.support.real_data import REAL_CP

    runs = plan(["l1000_ljp005", "lincs_cp_plate"], "demo", ("pca",), leave_out=False)
    lakes = {}
    for workers in (2, 1):
        lake = lakes[workers] = tmp_path / f"lake{workers}"
        for dataset, source in (("l1000_ljp005", REAL_L1000), ("lincs_cp_plate", REAL_CP)):
            (lake / "landing" / dataset).mkdir(parents=True)
            shutil.copyfile(source, lake / "landing" / dataset / source.name)
        assert execute(runs, lake, f"run {workers}", workers=workers) == []
        assert f"{len(runs)} runs, {workers} at a time" in capsys.readouterr().out
    instance = dg.DagsterInstance.get()
    spans = sorted((instance.get_run_stats(r.run_id).start_time, instance.get_run_stats(r.run_id).end_time)
                   for r in instance.get_runs(dg.RunsFilter(tags={LAUNCHED_BY_TAG: "cpvae run 2"})))
    assert len(spans) == len(runs)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans  # some runs overlapped
    names = ("normalised_splits", "latent_embeddings", "generation_qc", "lsa_distances", "lsa_zscores",
             "method_comparison", "lsa_summary")
    parallel, serial = _tables(lakes[2], names), _tables(lakes[1], names)
    assert parallel.keys() == serial.keys()
    for key, frame in parallel.items():
        pandas.testing.assert_frame_equal(frame, serial[key], obj=key)


def test_execute_shows_progress_not_events(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real L1000 plate through every asset with PCA: a short console, a full log, runs in the UI."""
    landing = lake / "landing" / "l1000_ljp005"
    landing.mkdir(parents=True)
    shutil.copyfile(REAL_L1000, landing / REAL_L1000.name)
    runs = plan(["l1000_ljp005"], "demo", ("pca",), leave_out=False)
    failed = execute(runs, lake, "demo")
    out = capsys.readouterr().out
    assert failed == []
    lines = out.splitlines()
    assert len(lines) < 30, out
    assert "STEP_START" not in out and "LOADED_INPUT" not in out  # no Dagster events on the console
    assert any(line.split()[:2] == ["done", "l1000_ljp005"] for line in lines)
    assert any(line.split()[:2] == ["l1000_ljp005", "pca"] for line in lines)  # the summary table's row
    log = next((lake / "logs").glob("cpvae-demo-*.log"))
    assert f"full log: {log}" in out
    text = log.read_text()
    assert "STEP_START" in text and "raw_profiles" in text and "report" in text
    instance = dg.DagsterInstance.get()
    launched = instance.get_runs(dg.RunsFilter(tags={LAUNCHED_BY_TAG: "cpvae demo"}))
    assert sorted(r.job_name for r in launched) == sorted(r.job for r in runs)
    assert all(r.is_success for r in launched)


def test_run_refuses_a_dataset_without_landing(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lake", str(lake), "run", "nowhere", "--preset", "paper"]) == 2
    assert "no landing folder for nowhere" in capsys.readouterr().err


def test_the_demo_lands_every_shipped_real_file_under_a_registered_name() -> None:
    from cpvae_assets.cli.demo import DEMO_DATASETS, REAL_PLATES
    from cpvae_assets.ingestion.registry import load_registry
    from cpvae_assets.storage.paths import PACKAGE_DATA

    registry = load_registry()
    assert set(REAL_PLATES) <= set(DEMO_DATASETS) <= set(registry)
    assert "l1000_consensus" in REAL_PLATES
    shipped = {p.name for p in (PACKAGE_DATA / "real").iterdir() if not p.name.endswith((".md", "_moa.tsv"))}
    assert set(REAL_PLATES.values()) == shipped
