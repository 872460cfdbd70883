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
