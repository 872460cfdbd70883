"""TensorFlow's thread pools: set by ``cpvae_assets.models`` before TensorFlow starts, one thread per op
on a small machine, and a user's own setting wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = "import json, cpvae_assets.models as m; print(json.dumps(m.tensorflow_threads()))"


def _threads(**env: str) -> dict[str, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean | env, capture_output=True, text=True, check=True)
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
