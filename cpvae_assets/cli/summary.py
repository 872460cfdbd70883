"""The table and the findings ``cpvae demo`` / ``cpvae run`` print at the end, read from the lake with
SQL: per dataset and model type, how training went and how LSA compares with the baselines."""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

SUMMARY_SQL = """
WITH curves AS (
    SELECT dataset, model_type, min(val_loss) FILTER (WHERE role = 'real') AS real,
           min(val_loss) FILTER (WHERE role = 'shuffled') AS shuffled, max(epoch) AS epochs
    FROM training_curves GROUP BY ALL
), lsa AS (
    SELECT dataset, model_type, pairs, mean_l2 FROM lsa_zscores_summary WHERE method = 'lsa'
), baselines AS (
    SELECT dataset, model_type, arg_min(method, mean_l2) AS best, min(mean_l2) AS best_l2
    FROM lsa_zscores_summary WHERE method <> 'lsa' GROUP BY ALL
)
SELECT c.dataset, c.model_type, c.real, c.shuffled, c.epochs, l.pairs, l.mean_l2, b.best, b.best_l2
FROM curves c LEFT JOIN lsa l USING (dataset, model_type) LEFT JOIN baselines b USING (dataset, model_type)
WHERE c.dataset IN ({datasets}) ORDER BY c.dataset, c.model_type
"""
# per baseline: in how many partitions (with pairs) LSA's mean L2 is not below the baseline's
VERDICT_SQL = """
SELECT b.method, count(*) FILTER (WHERE l.mean_l2 >= b.mean_l2) AS not_beaten, count(*) AS partitions
FROM lsa_zscores_summary l JOIN lsa_zscores_summary b USING (dataset, model_type)
WHERE l.method = 'lsa' AND b.method <> 'lsa' AND l.pairs > 0 AND l.dataset IN ({datasets})
GROUP BY ALL ORDER BY not_beaten DESC, b.method
"""

# per baseline x metric, over partitions with a comparison (>= 5 pairs): where the 95% CI of
# LSA - baseline lies wholly on LSA's better or worse side
COMPARISON_SQL = """
SELECT baseline, metric, count(*) AS compared,
       count(*) FILTER (WHERE (lower_is_better AND ci_high < 0) OR (NOT lower_is_better AND ci_low > 0)) AS better,
       count(*) FILTER (WHERE (lower_is_better AND ci_low > 0) OR (NOT lower_is_better AND ci_high < 0)) AS worse
FROM method_comparison WHERE mean_difference IS NOT NULL AND dataset IN ({datasets})
GROUP BY ALL ORDER BY baseline, metric
"""
SHORT = {"l2": "L2", "cosine_distance": "cosine", "shift_pearson": "shift r"}


def _in(datasets: list[str]) -> str:
    return ", ".join("'" + d.replace("'", "''") + "'" for d in datasets) or "''"


def _rows(lake: Path, sql: str) -> list[tuple]:
    from cpvae_assets.storage.sql import rows

    try:
        return rows(lake, sql)[1]
    except Exception:  # a lake where nothing of this was materialised yet has no such view
        return []


def print_summary(console: Console, lake: Path, datasets: list[str]) -> None:
    found = _rows(lake, SUMMARY_SQL.format(datasets=_in(datasets)))
    if not found:
        return
    table = Table(title="Validation loss, real vs column-shuffled data; LSA against the best baseline, mean L2 over A|B",
                  title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("dataset", "model", "val loss", "shuffled", "epochs", "A|B", "LSA L2", "best baseline", "its L2"):
        table.add_column(name, justify="left" if name in ("dataset", "model", "best baseline") else "right",
                         no_wrap=True)
    for dataset, model, real, shuffled, epochs, pairs, lsa, best, best_l2 in found:
        scored = pairs is not None and pairs > 0 and best is not None
        table.add_row(dataset, model, _number(real), _number(shuffled), str(epochs), str(pairs or 0),
                      _number(lsa) if scored else "-", best if scored else "-", _number(best_l2) if scored else "-")
    console.print()
    console.print(table)


def lsa_verdicts(lake: Path, datasets: list[str]) -> list[str]:
    """'LSA does not beat mean_of_singles in 15 of 20 partitions' per baseline that it does not always beat."""
    lines = [f"LSA does not beat {method} in {n} of {total} partitions with A|B pairs (mean L2 alone)"
             for method, n, total in _rows(lake, VERDICT_SQL.format(datasets=_in(datasets))) if n]
    by_baseline: dict[str, list[str]] = {}
    for baseline, metric, compared, better, worse in _rows(lake, COMPARISON_SQL.format(datasets=_in(datasets))):
        by_baseline.setdefault(baseline, []).append(f"{SHORT.get(metric, metric)} better in {better}, worse in {worse} "
                                                    f"of {compared}")
    lines += [f"LSA vs {baseline} (partitions with >= 5 pairs, 95% CI of the paired difference): " + "; ".join(parts)
              for baseline, parts in by_baseline.items()]
    return lines


def _number(value: object) -> str:
    return "-" if value is None else f"{value:.4g}"
