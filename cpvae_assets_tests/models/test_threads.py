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
