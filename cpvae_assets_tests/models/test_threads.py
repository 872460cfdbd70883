"""TensorFlow's thread pools: set by ``cpvae_assets.models`` before TensorFlow starts, one thread per op
on a small machine, and a user's own setting wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cpvae_assets.models import BLAS_THREAD_VARIABLES, CORES_ENV, DEFAULTED_ENV, THREAD_VARIABLES

PROBE = "import json, cpvae_assets.models as m; print(json.dumps(m.tensorflow_threads()))"


def _threads(probe: str = PROBE, **env: str) -> dict[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in (*THREAD_VARIABLES, DEFAULTED_ENV, CORES_ENV, *BLAS_THREAD_VARIABLES)}
    out = subprocess.run([sys.executable, "-c", probe], env=clean | env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_one_thread_per_op_and_an_op_per_core() -> None:
    cores = len(os.sched_getaffinity(0))
    assert _threads() == {"inter_op": cores, "intra_op": max(1, cores // 4)}


@pytest.mark.parametrize(("env", "expected"), [
    ({"TF_NUM_INTRAOP_THREADS": "3"}, {"intra_op": 3}),
    ({"TF_NUM_INTEROP_THREADS": "0", "TF_NUM_INTRAOP_THREADS": "0"}, {"inter_op": 0, "intra_op": 0}),
])
def test_a_users_setting_wins(env: dict[str, str], expected: dict[str, int]) -> None:
    assert _threads(**env).items() >= expected.items()


def test_a_process_given_one_core_runs_one_thread() -> None:
    assert _threads(CPVAE_CORES="1") == {"inter_op": 1, "intra_op": 1}


# a worker of ``cpvae demo``: its parent imported cpvae_assets.models (defaults for all cores), then the
# worker starts with its share of the cores, before it imports TensorFlow
WORKER_PROBE = ("import json, queue, cpvae_assets.cli.workers as w; w._start_worker(queue.Queue(), 1); "
                "import numpy, cpvae_assets.models as m, threadpoolctl; "
                "print(json.dumps(m.tensorflow_threads() | {'blas': max(p['num_threads'] for p in threadpoolctl.threadpool_info())}))")


def test_a_worker_takes_its_share_of_the_cores_unless_the_user_set_the_threads() -> None:
    parent = {"TF_NUM_INTEROP_THREADS": "2", "TF_NUM_INTRAOP_THREADS": "1", DEFAULTED_ENV: ",".join(THREAD_VARIABLES)}
    assert _threads(WORKER_PROBE, **parent) == {"inter_op": 1, "intra_op": 1, "blas": 1}
    users = {"TF_NUM_INTEROP_THREADS": "2", "TF_NUM_INTRAOP_THREADS": "2"}  # nothing defaulted them
    assert _threads(WORKER_PROBE, **users) == {"inter_op": 2, "intra_op": 2, "blas": 1}


# a run of a job that trains, on the daemon path: a fresh process whose instance holds ``others`` runs that
# train in progress besides this one; it takes its share before TensorFlow loads
RUN_PROBE = """
import json, sys, uuid, dagster as dg
from cpvae_assets.defs.runtime import take_core_share
from cpvae_assets.orchestration.tags import TRAINS_TAG
import cpvae_assets.models as m

@dg.asset
def probe(context: dg.AssetExecutionContext) -> None:
    context.add_output_metadata({"share": take_core_share(context)})

job = dg.define_asset_job("probe_job", selection=[probe], tags={TRAINS_TAG: "true"})
defs = dg.Definitions(assets=[probe], jobs=[job])
with dg.instance_for_test() as instance:
    for _ in range(int(sys.argv[1])):
        instance.add_run(dg.DagsterRun(job_name="other", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED,
                                       tags={TRAINS_TAG: "true"}))
    result = defs.get_job_def("probe_job").execute_in_process(instance=instance, tags={TRAINS_TAG: "true"})
    share = result.asset_materializations_for_node("probe")[0].metadata["share"].value
    print(json.dumps(m.tensorflow_threads() | {"share": share, "cores": m.process_cores()}))
"""


@pytest.mark.parametrize("others", [0, 1])
def test_a_run_that_trains_beside_another_takes_its_share_of_the_cores(others: int) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in (*THREAD_VARIABLES, DEFAULTED_ENV, CORES_ENV, *BLAS_THREAD_VARIABLES)}
    out = subprocess.run([sys.executable, "-c", RUN_PROBE, str(others)], env=clean, capture_output=True, text=True,
                         check=True, timeout=300)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    cores = len(os.sched_getaffinity(0))
    share = max(1, cores // (1 + others))
    assert got == {"inter_op": share, "intra_op": max(1, share // 4), "share": share, "cores": share}
