"""Scale-out configuration: executor and training pool, the local and production instance files, the
code-location image and the Helm values. Static checks and one tiny materialisation; no cluster."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import dagster as dg
import pytest
import yaml

from cpvae_assets.definitions import defs
from cpvae_assets.defs import runtime
from cpvae_assets.defs.runtime import EXECUTOR_ENV, MAX_CONCURRENT_ENV, TRAINING_POOL
from cpvae_assets.orchestration.tags import TRAINS_TAG
from cpvae_assets.storage.paths import project_root

PROJECT = project_root()
DEPLOY = PROJECT / "deploy"
PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())
MODULE = PYPROJECT["tool"]["dg"]["project"]["code_location_target_module"]
TRAINING = {"tuned_hyperparameters", "trained_models", "training_curves", "leave_moa_out"}
PG_ENV = {"DAGSTER_PG_HOST": "db.example", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_DB": "dagster",
          "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "secret"}


def load_yaml(path: Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def instance_config(tmp_path: Path, source: Path) -> dict:
    """``source`` as an instance's dagster.yaml, validated by Dagster itself."""
    from dagster._core.instance.config import dagster_instance_config

    home = tmp_path / f"home_{source.stem}"
    home.mkdir()
    shutil.copyfile(source, home / "dagster.yaml")
    config, _ = dagster_instance_config(str(home))
    return config


# ------------------------------------------------------------------------------------- one machine


def test_training_assets_are_in_the_training_pool_and_request_a_gpu_on_kubernetes() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        node = graph.assets_def_for_key(key).op
        name = key.to_user_string()
        if name in TRAINING:
            assert node.pool == TRAINING_POOL, name
            k8s = node.tags["dagster-k8s/config"]
            k8s = k8s if isinstance(k8s, dict) else yaml.safe_load(k8s)
            assert k8s["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
            assert k8s["pod_spec_config"]["tolerations"][0]["key"] == "nvidia.com/gpu"
            assert k8s["pod_spec_config"]["node_selector"]
        else:  # light assets run freely
            assert node.pool is None, name
            assert "dagster-k8s/config" not in node.tags, name


def test_runs_execute_in_process_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """One run is one partition: its steps in its own process, TensorFlow imported once per run."""
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def is dg.in_process_executor
    assert all(defs.resolve_job_def(name).executor_def is dg.in_process_executor
               for name in ("dataset_inputs", "models_demo", "models_paper", "dataset_report", "summaries"))
    monkeypatch.setenv(EXECUTOR_ENV, "multiprocess")
    assert runtime.executor().name == "multiprocess"
    monkeypatch.setenv(MAX_CONCURRENT_ENV, "3")
    assert runtime.max_concurrent() == 3
    monkeypatch.setenv(MAX_CONCURRENT_ENV, "0")
    with pytest.raises(ValueError, match=MAX_CONCURRENT_ENV):
        runtime.max_concurrent()
    monkeypatch.delenv(MAX_CONCURRENT_ENV)
    assert runtime.max_concurrent() >= 2
    monkeypatch.setenv(EXECUTOR_ENV, "in_process")
    assert runtime.executor() is dg.in_process_executor
    monkeypatch.setenv(EXECUTOR_ENV, "threads")
    with pytest.raises(ValueError, match="in_process, multiprocess or k8s"):
        runtime.executor()


def test_k8s_executor_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """dagster-k8s is in the image (extra ``cluster``), not in the dev environment: a stand-in module."""
    stand_in = types.ModuleType("dagster_k8s")
    stand_in.k8s_job_executor = dg.executor(name="k8s")(lambda _: None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dagster_k8s", stand_in)
    monkeypatch.setenv(EXECUTOR_ENV, "k8s")
    assert runtime.executor() is stand_in.k8s_job_executor


def test_local_instance_limits_the_training_pool(tmp_path: Path) -> None:
    config = instance_config(tmp_path, DEPLOY / "dagster.local.yaml")
    assert config["telemetry"]["enabled"] is False
    assert config["concurrency"]["pools"]["default_limit"] == 2
    # a run takes its training slot before it starts (no process waits for one), three runs at once
    assert config["concurrency"]["pools"]["granularity"] == "run"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 3
    # and two runs that train at a time, counted from their dequeue: every job with a training step says so
    assert {"key": TRAINS_TAG, "value": "true", "limit": 2} in config["concurrency"]["runs"]["tag_concurrency_limits"]
    for job in (j for j in defs.resolve_all_job_defs() if not j.name.startswith("__")):  # not the UI's asset job
        pools = {node.definition.pool for node in job.graph.node_dict.values()}
        assert (TRAINING_POOL in pools) == (job.tags.get(TRAINS_TAG) == "true"), job.name

    # the limit reaches the pool (with run granularity, slots are claimed per run by the run queue)
    @dg.asset(pool=TRAINING_POOL)
    def toy_training() -> int:
        return 1

    home = tmp_path / "home_dagster.local"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert dg.materialize([toy_training], instance=instance).success
        info = instance.event_log_storage.get_concurrency_info(TRAINING_POOL)
        assert info.limit == 2
        # the daemon looks at the run queue every second (Dagster's default, 5 s, delayed each launch wave
        # of a refresh), a setting Dagster takes beside the concurrency block
        assert instance.run_coordinator.dequeue_interval_seconds == 1


def test_make_copies_the_local_instance_only_when_absent(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    make = ["make", "-s", "-C", str(PROJECT), "instance", f"DAGSTER_HOME={home}"]
    subprocess.run(make, check=True, capture_output=True)
    assert (home / "dagster.yaml").read_text() == (DEPLOY / "dagster.local.yaml").read_text()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    subprocess.run(make, check=True, capture_output=True)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"
    makefile = (PROJECT / "Makefile").read_text()
    assert re.search(r"^ui: .*\binstance\b", makefile, re.MULTILINE) and re.search(r"^demo: .*\binstance\b", makefile, re.MULTILINE)


# ------------------------------------------------------------------------------- production instance


def test_production_instance_uses_postgres_and_queues_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)
    config = instance_config(tmp_path, DEPLOY / "dagster.yaml")
    db = config["storage"]["postgres"]["postgres_db"]
    assert {field: db[field] for field in ("hostname", "port", "db_name", "username", "password")} == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"}, "db_name": {"env": "DAGSTER_PG_DB"},
        "username": {"env": "DAGSTER_PG_USER"}, "password": {"env": "DAGSTER_PG_PASSWORD"}}
    assert db["scheme"] == "postgresql+psycopg2"  # SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    limits = {limit["key"]: limit for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert limits["dagster/partition"]["value"] == {"applyLimitPerUniqueValue": True}
    assert config["concurrency"]["pools"]["default_limit"] >= 1
    assert "secret" not in (DEPLOY / "dagster.yaml").read_text()


# ----------------------------------------------------------------------------------------- cluster


def test_helm_values_run_the_code_location_on_kubernetes() -> None:
    values = load_yaml(DEPLOY / "helm" / "values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["codeServerArgs"]
    assert args[args.index("--module-name") + 1] == MODULE == "cpvae_assets.definitions"
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env[EXECUTOR_ENV] == "k8s"  # -> k8s_job_executor (cpvae_assets/defs/runtime.py)
    assert env["CPVAE_LAKE"].startswith("s3://")
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["concurrency"]["enabled"] is True and values["concurrency"]["pools"]["defaultLimit"] >= 1
    assert values["postgresql"]["enabled"] is False and "postgresqlPassword" not in values["postgresql"]


def test_dockerfile_installs_from_the_lock_with_the_pinned_uv() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    makefile_uv = re.search(r"^UV_VERSION := (\S+)", (PROJECT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert re.search(rf"^ARG UV_VERSION={re.escape(makefile_uv)}$", text, re.MULTILINE)
    assert "COPY pyproject.toml uv.lock" in text
    assert len(re.findall(r"^RUN uv sync --frozen --no-dev", text, re.MULTILINE)) == 2
    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE)  # requires-python is 3.11
    assert MODULE in text
    extras = re.search(r'^ARG EXTRAS="(.*)"$', text, re.MULTILINE).group(1).split()[1::2]
    assert set(extras) <= set(PYPROJECT["project"]["optional-dependencies"]) and "cluster" in extras
    for copied in re.findall(r"^COPY (.+) \S+$", text, re.MULTILINE):
        for name in copied.split():
            assert (PROJECT / name).exists(), name
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "!uv.lock" in ignore and "!cpvae_assets/" in ignore


def test_make_test_installs_the_system_packages_ci_uses() -> None:
    """The README's test command installs what the tests need (one script, also what CI runs)."""
    script = DEPLOY / "system-packages.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "missing+=(postgresql)" in text and "missing+=(chromium)" in text
    assert "/usr/lib/postgresql/*/bin" in text
    makefile = (PROJECT / "Makefile").read_text()
    assert re.search(r"^test: .*system-packages", makefile, re.MULTILINE)
    assert "deploy/system-packages.sh" in makefile
    ci = (PROJECT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE) and "apt-get" not in ci
    # on this machine (the tests run after `make test` installed them) nothing is missing
    done = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
