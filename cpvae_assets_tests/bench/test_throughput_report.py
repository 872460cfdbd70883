"""The throughput benchmark's scaling bound (``bench/throughput_report.py``, no TensorFlow): one model on one
core times the cores, against the round's Keras, and each stack's share of it, from hand-made rows."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from cpvae_assets.storage.paths import project_root


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("throughput_report", project_root() / "bench" / "throughput_report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _row(report, config: str, k: int, epoch_seconds: list[float], rnd: int = 1, rows: int = 1000):
    return report.Row(report.SHAPES["cp5"], config, k, rows, epoch_seconds, 1.0, 5.0, 1.0, 0.0, 100.0, None, None,
                      False, round=rnd)


def _cells(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_bound_is_the_cores_times_one_model_on_one_core(report) -> None:
    rows = [_row(report, "keras", 1, [0.5, 0.5]),        # 2,000 model-profiles/s
            _row(report, "k1core", 1, [0.25, 0.25]),     # 4,000
            _row(report, "k4", 4, [1.25, 1.25]),         # 3,200: 40% of 2 x 4,000
            _row(report, "k6", 6, [1.0, 1.0]),           # 6,000: 75%
            _row(report, "keras", 1, [0.4], rnd=2),      # another round: its own bound, or none
            _row(report, "k4", 4, [1.0], rnd=2)]
    ref = report.references(rows)
    (cells,) = _cells(report.scaling(rows, ref, cores=2))
    assert cells == ["cp5", "1", "4,000", "2", "8,000", "4.00x", "k4 40%, k6 75%"]
    (cells,) = _cells(report.scaling(rows, ref, cores=3))
    assert cells[3:6] == ["3", "12,000", "6.00x"] and cells[6] == "k4 27%, k6 50%"


def test_no_one_core_row_no_scaling_table(report) -> None:
    rows = [_row(report, "keras", 1, [0.5]), _row(report, "k4", 4, [1.0])]
    assert report.scaling(rows, report.references(rows), cores=2) == ""


def test_bound_without_keras_in_the_run_says_so(report) -> None:
    rows = [_row(report, "k1core", 1, [0.5]), _row(report, "k6", 6, [2.0])]
    (cells,) = _cells(report.scaling(rows, report.references(rows), cores=2))
    assert cells[5:] == ["n/a", "k6 75%"]
