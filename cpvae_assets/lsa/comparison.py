"""Paired comparison of two methods on the same A|B pairs (method.md, "Comparing methods").

A z-score is relative to its own method's null, so two methods' z-scores are not comparable; what is
comparable is their distance to the same real A|B profile, pair by pair. For each pair the difference
d = metric(LSA) - metric(baseline); its mean with a percentile bootstrap 95% CI over pairs, the
two-sided Wilcoxon signed-rank p, and the win rate (share of pairs where LSA is better). Fewer than
``MIN_PAIRS`` pairs give n and the reason, not numbers that look like evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

MIN_PAIRS = 5
RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedDifference:
    n: int
    mean_difference: float | None  # mean of metric(LSA) - metric(baseline) over pairs
    ci_low: float | None  # percentile bootstrap 95% CI of that mean
    ci_high: float | None
    wilcoxon_p: float | None  # two-sided signed-rank test of the differences
    win_rate: float | None  # share of pairs where LSA is strictly better
    reason: str = ""  # why the statistics are empty

    def as_row(self) -> dict[str, object]:
        return asdict(self)


def paired_difference(lsa: np.ndarray, baseline: np.ndarray, lower_is_better: bool = True, seed: int = 0,
                      resamples: int = RESAMPLES) -> PairedDifference:
    """Compare LSA with a baseline on the same pairs (arrays aligned pair by pair; NaN pairs dropped).

    ``lower_is_better``: True for distances (L2, cosine distance), False for similarities (Pearson r of
    the shifts); the difference is always LSA minus baseline, the win rate always counts LSA's wins."""
    lsa, baseline = np.asarray(lsa, np.float64), np.asarray(baseline, np.float64)
    if lsa.shape != baseline.shape:
        raise ValueError(f"LSA has {lsa.shape} values, the baseline {baseline.shape}: they must be the same pairs")
    finite = np.isfinite(lsa) & np.isfinite(baseline)
    d = lsa[finite] - baseline[finite]
    n = int(d.size)
    if n < MIN_PAIRS:
        return PairedDifference(n, None, None, None, None, None,
                                f"{n} pair(s) with both values; at least {MIN_PAIRS} are needed for a comparison")
    wins = d < 0 if lower_is_better else d > 0
    ci = stats.bootstrap((d,), np.mean, n_resamples=resamples, method="percentile", confidence_level=0.95,
                         random_state=np.random.default_rng(seed)).confidence_interval
    if np.all(d == 0):
        p, reason = 1.0, "every difference is zero"
    else:
        p, reason = float(stats.wilcoxon(d, alternative="two-sided").pvalue), ""
    return PairedDifference(n, float(d.mean()), float(ci.low), float(ci.high), p, float(wins.mean()), reason)


# the metrics compared, and whether lower is better: L2 alone rewards small predictions (the
# ``control`` baseline predicts no effect and can win on L2 while direction carries the signal), so
# the three are always reported side by side
METRICS = {"l2": True, "cosine_distance": True, "shift_pearson": False}
METRIC_LABELS = {"l2": "L2", "cosine_distance": "cosine distance", "shift_pearson": "shift Pearson r"}
_SHORT = {"l2": "L2", "cosine_distance": "cosine", "shift_pearson": "shift r"}
SUMMARY_COLUMNS = ["baseline", "metric", "lower_is_better", "n", "mean_difference", "ci_low", "ci_high", "wilcoxon_p",
                   "win_rate", "wins", "reason", "seed", "resamples"]
PAIR_COLUMNS = ["pair", "baseline", "metric", "lsa", "baseline_value", "difference", "lsa_better"]


def method_comparison(distances: pd.DataFrame, baselines: tuple[str, ...], seed: int = 0,
                      resamples: int = RESAMPLES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LSA against each baseline on the same pairs, for every metric of ``METRICS``.

    ``distances``: one row per pair x method (the ``lsa_distances`` table). Returns one row per
    baseline x metric (``paired_difference``; d = LSA - baseline, so for L2 and cosine a negative d
    means LSA is better, for the shift Pearson r a positive one) and the per-pair differences."""
    rows, pairs = [], []
    for baseline in baselines:
        for metric, lower in METRICS.items():
            wide = distances[distances["method"].isin(["lsa", baseline])].pivot_table(
                index="pair", columns="method", values=metric, aggfunc="first", dropna=False)
            wide = wide.reindex(columns=["lsa", baseline])
            lsa, base = wide["lsa"].to_numpy(np.float64), wide[baseline].to_numpy(np.float64)
            result = paired_difference(lsa, base, lower, seed, resamples)
            reason = result.reason
            if len(wide) == 0:
                reason = "no A|B pair with both singles present"
            elif result.mean_difference is None and np.isnan(base).all():
                reason = f"{baseline}'s {METRIC_LABELS[metric]} is undefined on every pair (no shift from the control); " + reason
            wins = None if result.win_rate is None else int(round(result.win_rate * result.n))
            rows.append({"baseline": baseline, "metric": metric, "lower_is_better": lower, **result.as_row(),
                         "wins": wins, "reason": reason, "seed": seed, "resamples": resamples})
            d = lsa - base
            better = np.where(np.isfinite(d), d < 0 if lower else d > 0, None)
            pairs.append(pd.DataFrame({"pair": wide.index.to_numpy(str), "baseline": baseline, "metric": metric,
                                       "lsa": lsa, "baseline_value": base, "difference": d, "lsa_better": better}))
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for col in ("mean_difference", "ci_low", "ci_high", "wilcoxon_p", "win_rate"):
        table[col] = table[col].astype(np.float64)  # None -> NULL in the stored table, not an object column
    table["wins"] = table["wins"].astype("Int64")
    per_pair = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(columns=PAIR_COLUMNS)
    per_pair["lsa_better"] = per_pair["lsa_better"].astype("boolean")
    return table, per_pair


def verdict_lines(table: pd.DataFrame, model_type: str) -> list[str]:
    """One line per baseline for the run log, all three metrics side by side, e.g.
    ``beta LSA vs mean_of_singles: +0.12 L2 [0.05, 0.19] wins 11 of 42; ...`` (d = LSA - baseline)."""
    lines = []
    for baseline, part in table.groupby("baseline", sort=False):
        if part["mean_difference"].isna().all():
            lines.append(f"{model_type} LSA vs {baseline}: no comparison ({part['reason'].iloc[0]})")
            continue
        parts = []
        for row in part.itertuples():
            if pd.isna(row.mean_difference):
                parts.append(f"{_SHORT[row.metric]}: n={row.n}, no comparison")
            else:
                parts.append(f"{row.mean_difference:+.3g} {_SHORT[row.metric]} [{row.ci_low:.3g}, {row.ci_high:.3g}] "
                             f"wins {row.wins} of {row.n}")
        lines.append(f"{model_type} LSA vs {baseline}: " + "; ".join(parts))
    return lines
