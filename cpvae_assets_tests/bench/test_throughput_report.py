"""The throughput benchmark's scaling table (``bench/throughput_report.py``, no TensorFlow): perfect scaling of one
model on one core over the cores, against the round's Keras, and each stack's share of it, from hand-made rows."""

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


def _row(report, config: str, k: int, epoch_seconds: list[float], rnd: int = 1, rows: int = 1000, cores: float = 1.5,
         shape: str = "cp5"):
    """A measured row; ``cores`` (CPU used) differs from 1, so speeds per CPU-second differ from speeds."""
    return report.Row(report.SHAPES[shape], config, k, rows, epoch_seconds, 1.0, 5.0, cores, 0.0, 100.0, None, None,
                      False, round=rnd)


def _cells(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_perfect_scaling_is_the_cores_times_one_model_on_one_core(report) -> None:
    rows = [_row(report, "keras", 1, [0.5, 0.5], cores=1.2),  # 2,000 model-profiles/s
            _row(report, "k1core", 1, [0.25, 0.25], cores=1.0),  # 4,000
            _row(report, "k1", 1, [0.2, 0.2]),                   # K = 1 is no stack: not listed
            _row(report, "k4", 4, [1.25, 1.25], cores=1.9),      # 3,200: 40% of 2 x 4,000
            _row(report, "k6", 6, [1.0, 1.0], cores=1.8),        # 6,000: 75%
            _row(report, "keras", 1, [0.4], rnd=2),              # another round without k1core: no line
            _row(report, "k4", 4, [1.0], rnd=2)]
    ref = report.references(rows)
    (cells,) = _cells(report.scaling(rows, ref, cores=2))
    assert cells == ["cp5", "1", "4,000", "2", "8,000", "4.00x", "k4 40%, k6 75%"]
    (cells,) = _cells(report.scaling(rows, ref, cores=3))
    assert cells[3:6] == ["3", "12,000", "6.00x"] and cells[6] == "k4 27%, k6 50%"


def test_each_round_and_shape_against_its_own_keras(report) -> None:
    rows = [_row(report, "keras", 1, [0.5]), _row(report, "k1core", 1, [0.25]), _row(report, "k4", 4, [1.0]),
            _row(report, "keras", 1, [1.0], rnd=2), _row(report, "k1core", 1, [0.5], rnd=2),
            _row(report, "k4", 4, [4.0], rnd=2),
            _row(report, "keras", 1, [0.1], shape="l1000"), _row(report, "k1core", 1, [0.4], shape="l1000")]
    lines = _cells(report.scaling(rows, report.references(rows), cores=2))
    assert [line[:2] + line[4:] for line in lines] == [
        ["cp5", "1", "8,000", "4.00x", "k4 50%"],       # 2 x 4,000 against Keras 2,000; k4 4,000
        ["cp5", "2", "4,000", "4.00x", "k4 25%"],       # 2 x 2,000 against Keras 1,000; k4 1,000
        ["l1000", "1", "5,000", "0.50x", "n/a"]]        # 2 x 2,500 against Keras 10,000; no stack rows


def test_no_one_core_row_no_scaling_table(report) -> None:
    rows = [_row(report, "keras", 1, [0.5]), _row(report, "k4", 4, [1.0])]
    assert report.scaling(rows, report.references(rows), cores=2) == ""


def test_perfect_scaling_without_keras_in_the_run_says_so(report) -> None:
    rows = [_row(report, "k1core", 1, [0.5]), _row(report, "k6", 6, [2.0])]
    (cells,) = _cells(report.scaling(rows, report.references(rows), cores=2))
    assert cells[5:] == ["n/a", "k6 75%"]
