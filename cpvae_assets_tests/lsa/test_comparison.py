"""method_comparison: LSA minus each baseline on the same pairs, checked by hand on tiny tables;
the verdict lines of the run log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.lsa.comparison import method_comparison, verdict_lines


def distances(lsa: dict[str, list[float]], baseline: dict[str, list[float]], name: str = "mean_of_singles") -> pd.DataFrame:
    rows = []
    for method, values in (("lsa", lsa), (name, baseline)):
        for i in range(len(values["l2"])):
            rows.append({"pair": f"P{i}|Q{i}", "method": method, **{m: v[i] for m, v in values.items()}})
    return pd.DataFrame(rows).sample(frac=1, random_state=0)  # row order must not matter


def test_numbers_match_a_hand_computation() -> None:
    # d = LSA - baseline: L2 [-1, -3, -2, 4, -5]; |d| ranks 1, 3, 2, 4, 5: W+ = 4, and 7 of the 32 sign
    # patterns have W+ <= 4, so the exact two-sided Wilcoxon p = 2 * 7 / 32
    lsa = {"l2": [1, 1, 1, 6, 1], "cosine_distance": [0.1, 0.2, 0.3, 0.4, 0.5], "shift_pearson": [0.9, 0.8, 0.7, 0.1, 0.6]}
    base = {"l2": [2, 4, 3, 2, 6], "cosine_distance": [0.1, 0.1, 0.1, 0.1, 0.1], "shift_pearson": [0.5, 0.5, 0.5, 0.5, 0.5]}
    table, pairs = method_comparison(distances(lsa, base), ("mean_of_singles",), seed=3, resamples=2000)
    row = table.set_index("metric").loc["l2"]
    assert row["n"] == 5 and row["mean_difference"] == pytest.approx(-7 / 5)
    assert row["wilcoxon_p"] == pytest.approx(14 / 32)
    assert row["win_rate"] == pytest.approx(4 / 5) and row["wins"] == 4 and row["reason"] == ""
    assert -5 <= row["ci_low"] <= -7 / 5 <= row["ci_high"] <= 4 and bool(row["lower_is_better"])
    cosine = table.set_index("metric").loc["cosine_distance"]
    assert cosine["mean_difference"] == pytest.approx(0.2) and cosine["win_rate"] == 0  # ties are no wins
    # shift Pearson r: higher is better, so LSA wins where d > 0 (4 of 5)
    r = table.set_index("metric").loc["shift_pearson"]
    assert r["mean_difference"] == pytest.approx(0.12) and r["win_rate"] == pytest.approx(0.8)
    assert not r["lower_is_better"]
    l2_pairs = pairs[pairs["metric"] == "l2"].set_index("pair")
    assert l2_pairs.loc["P3|Q3", "difference"] == 4 and not l2_pairs.loc["P3|Q3", "lsa_better"]
    assert l2_pairs["lsa_better"].sum() == 4
    again, _ = method_comparison(distances(lsa, base), ("mean_of_singles",), seed=3, resamples=2000)
    pd.testing.assert_frame_equal(table, again)  # the seed fixes the bootstrap


def test_fewer_than_five_pairs_give_n_and_the_reason() -> None:
    lsa = {"l2": [1.0, 2.0, 3.0], "cosine_distance": [0.1] * 3, "shift_pearson": [0.5, np.nan, 0.4]}
    table, pairs = method_comparison(distances(lsa, lsa), ("mean_of_singles",))
    assert table["n"].tolist() == [3, 3, 2]
    assert table[["mean_difference", "ci_low", "ci_high", "wilcoxon_p", "win_rate"]].isna().all().all()
    assert table["wins"].isna().all() and table["reason"].str.contains("at least 5 are needed").all()
    assert len(pairs) == 9
    empty, _ = method_comparison(distances(lsa, lsa).iloc[:0], ("mean_of_singles",))
    assert (empty["n"] == 0).all() and (empty["reason"] == "no A|B pair with both singles present").all()


def test_a_baseline_without_a_shift_says_why() -> None:
    lsa = {"l2": [1.0] * 6, "cosine_distance": [0.1] * 6, "shift_pearson": [0.5] * 6}
    control = {"l2": [0.5] * 6, "cosine_distance": [0.3] * 6, "shift_pearson": [np.nan] * 6}
    table, _ = method_comparison(distances(lsa, control, "control"), ("control",), resamples=500)
    r = table.set_index("metric").loc["shift_pearson"]
    assert r["n"] == 0 and "undefined on every pair" in r["reason"]
    # L2 crowns the control, cosine does not: the reason to show both
    assert table.set_index("metric").loc["l2", "win_rate"] == 0
    assert table.set_index("metric").loc["cosine_distance", "win_rate"] == 1


def test_verdict_lines() -> None:
    table = pd.DataFrame([
        {"baseline": "mean_of_singles", "metric": "l2", "n": 42, "mean_difference": 0.12, "ci_low": 0.05, "ci_high": 0.19,
         "wins": 11, "reason": ""},
        {"baseline": "mean_of_singles", "metric": "cosine_distance", "n": 42, "mean_difference": -0.0314,
         "ci_low": -0.05, "ci_high": -0.0102, "wins": 30, "reason": ""},
        {"baseline": "mean_of_singles", "metric": "shift_pearson", "n": 40, "mean_difference": np.nan, "ci_low": np.nan,
         "ci_high": np.nan, "wins": pd.NA, "reason": "x"},
        {"baseline": "control", "metric": "l2", "n": 3, "mean_difference": np.nan, "ci_low": np.nan, "ci_high": np.nan,
         "wins": pd.NA, "reason": "3 pair(s) with both values; at least 5 are needed for a comparison"},
    ])
    assert verdict_lines(table, "beta") == [
        "beta LSA vs mean_of_singles: +0.12 L2 [0.05, 0.19] wins 11 of 42; -0.0314 cosine [-0.05, -0.0102] wins 30 "
        "of 42; shift r: n=40, no comparison",
        "beta LSA vs control: no comparison (3 pair(s) with both values; at least 5 are needed for a comparison)",
    ]
