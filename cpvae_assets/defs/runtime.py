"""How runs execute: the executor of every job, the resources, and the pool and Kubernetes tags of
training steps.

- On one machine (default): every step in the run's own process. A run is one partition, whose steps
  follow one another; a process per step would import TensorFlow again for each (seconds of two
  cores every time) and gain nothing, as TensorFlow already uses every core.
- ``CPVAE_EXECUTOR=multiprocess``: each step in its own process, at most ``$CPVAE_MAX_CONCURRENT`` at
  once (default: the number of CPUs, at least 2), for machines with cores to spare.
- On a cluster (``CPVAE_EXECUTOR=k8s``, set by ``deploy/helm/values.yaml``): ``k8s_job_executor``,
  each step its own Kubernetes job (dagster-k8s: the ``cluster`` extra, installed in the image).

Training steps (``tuned_hyperparameters``, ``trained_models``, ``leave_moa_out``) are in the
concurrency pool ``training``: the instance limits how many run at once across all runs
(``concurrency: pools: default_limit`` in ``deploy/dagster.local.yaml`` / ``deploy/dagster.yaml``,
or ``dagster instance concurrency set training N``); the other assets are in no pool and run freely.
``dg.materialize`` (tests, ``cpvae demo``) runs in process whatever is set here.
"""

from __future__ import annotations

import os
import sys

import dagster as dg

from cpvae_assets.orchestration.io_manager import LakeIOManager
from cpvae_assets.orchestration.resources import LakeResource, LincsRemoteResource
from cpvae_assets.orchestration.run_logs import python_logger
from cpvae_assets.orchestration.tags import TRAINS_TAG

EXECUTOR_ENV = "CPVAE_EXECUTOR"
MAX_CONCURRENT_ENV = "CPVAE_MAX_CONCURRENT"
TRAINING_POOL = "training"
# Step pods of training assets under k8s_job_executor: one GPU, on a GPU node (harmless elsewhere:
# op tags are only read by dagster-k8s). TensorFlow uses the GPU it sees; without one, the CPU.
TRAINING_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi"},
                "limits": {"nvidia.com/gpu": "1", "memory": "24Gi"},
            },
        },
        "pod_spec_config": {
            "node_selector": {"cpvae/node-pool": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    },
}


def max_concurrent() -> int:
    value = os.environ.get(MAX_CONCURRENT_ENV)
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"${MAX_CONCURRENT_ENV}={value!r}: expected a positive integer")
        return int(value)
    return max(2, os.cpu_count() or 1)


def executor() -> dg.ExecutorDefinition:
    kind = os.environ.get(EXECUTOR_ENV, "in_process")
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if kind == "in_process":
        return dg.in_process_executor
    if kind != "multiprocess":
        raise ValueError(f"${EXECUTOR_ENV}={kind!r}: expected in_process, multiprocess or k8s")
    return dg.multiprocess_executor.configured({"max_concurrent": max_concurrent()}, name="multiprocess")


def take_core_share(context: dg.AssetExecutionContext) -> int | None:
    """This run's share of the cores, among the runs that train in progress on the instance (this one
    included), taken before the run imports TensorFlow (whose thread pools are fixed then): the local
    instance runs two at once, each on one of two cores, as ``cpvae demo``'s two workers do; two runs
    that each took both cores waited on one another (each step 1.7x slower). A run that starts alone
    takes every core. The tables do not depend on the share (``cli/test_demo_run.py``). Only a run of a
    job that trains (the tag), and nothing where the cores are set already (``$CPVAE_CORES``: a demo
    worker) or TensorFlow is loaded. Returns the share, or None where it did not decide."""
    from cpvae_assets.models import CORES_ENV, process_cores, use_cores

    if context.run.tags.get(TRAINS_TAG) != "true" or "tensorflow" in sys.modules or os.environ.get(CORES_ENV):
        return None
    running = context.instance.get_runs_count(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED], tags={TRAINS_TAG: "true"}))
    share = max(1, process_cores() // max(1, running))
    if share < process_cores():  # alone, the process keeps its defaults (and sets nothing a child inherits)
        use_cores(share)
    context.log.info(f"{running} run(s) that train in progress: this one uses {share} of {process_cores()} cores")
    return share


@dg.definitions
def runtime() -> dg.Definitions:
    return dg.Definitions(
        executor=executor(),
        resources={"io_manager": LakeIOManager(), "lake": LakeResource(), "lincs_remote": LincsRemoteResource()},
        # the console logger is the default of every run; "python" is for processes that launch runs in
        # themselves (cpvae demo) and show progress instead of every event
        loggers={"console": dg.colored_console_logger, "python": python_logger},
    )
