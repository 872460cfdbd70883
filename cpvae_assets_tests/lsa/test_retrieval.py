"""Retrieval of the real A|B profiles by a method's prediction: copairs' mAP, cosine distance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cpvae_assets.lsa.moa_groups import moa_groups
from cpvae_assets.lsa.retrieval import references, retrieval
from cpvae_assets_tests.lsa.test_lsa import planted


def setup():
    frame, x = planted()
    names = [f"f{i}" for i in range(x.shape[1])]
    splits = pd.concat([frame, pd.DataFrame(x, columns=names)], axis=1)
    groups, values = references(splits, moa_groups(frame).membership, names)
    means = {p: x[frame["moa"].eq(p).to_numpy()].mean(axis=0) for p in ("A|B", "C|D")}
    return names, groups, values, means


def queries(method: str, rows: dict[str, np.ndarray], names: list[str]) -> pd.DataFrame:
    return pd.DataFrame(np.stack(list(rows.values())), columns=names).assign(pair=list(rows), method=method)


def test_the_real_mean_retrieves_its_profiles_and_a_random_prediction_does_not() -> None:
    names, groups, values, means = setup()
    assert "DMSO" not in set(groups) and len(groups) == 120  # controls are no negatives
    rng = np.random.default_rng(0)
    random = [queries(f"random_{i}", {p: rng.normal(0, 2, len(names)) for p in means}, names) for i in range(10)]
    per_query, per_method = retrieval(pd.concat([queries("exact", means, names), *random]), groups, values, names,
                                      null_size=2000, seed=0)
    exact = per_method.set_index("method").loc["exact"]
    assert exact["mean_average_precision"] == pytest.approx(1.0) and exact["map_p"] < 0.01
    assert exact["queries"] == 2 and exact["distance"] == "cosine"
    row = per_query[per_query["method"] == "exact"].iloc[0]
    assert (row["positives"], row["negatives"]) == (20, 100) and row["ap_p"] < 0.01
    randoms = per_method[per_method["method"].str.startswith("random")]
    assert randoms["mean_average_precision"].mean() < 0.4
    again, _ = retrieval(pd.concat([queries("exact", means, names), *random]), groups, values, names, 2000, 0)
    pd.testing.assert_frame_equal(per_query, again)  # seeded: the same p-values on a re-run


def test_with_one_positive_ap_is_one_over_the_rank_of_the_group_mean() -> None:
    """Why the hand-written rank among group means went: copairs computes it when given the means."""
    names, groups, values, means = setup()
    table = pd.DataFrame(values).groupby(groups.to_numpy()).mean()
    query = means["A|B"] * 0.3 + means["C|D"] * 0.7  # nearest C|D, then others
    per_query, _ = retrieval(queries("mix", {"A|B": query}, names), pd.Series(table.index), table.to_numpy(), names,
                             null_size=100)
    sim = table.to_numpy() @ query / (np.linalg.norm(table.to_numpy(), axis=1) * np.linalg.norm(query))
    rank = int((sim > sim[list(table.index).index("A|B")]).sum()) + 1
    assert rank > 1 and per_query["average_precision"].iloc[0] == pytest.approx(1 / rank)


def test_no_predictions_give_empty_tables() -> None:
    names, groups, values, _ = setup()
    per_query, per_method = retrieval(pd.DataFrame(columns=["pair", "method", *names]), groups, values, names)
    assert per_query.empty and per_method.empty and "average_precision" in per_query.columns
    with pytest.raises(ValueError, match="null_size"):
        retrieval(pd.DataFrame(columns=["pair", "method", *names]), groups, values, names, null_size=0)


def test_the_similarity_table_gives_copairs_own_cosine_average_precision() -> None:
    """retrieval hands copairs each query's similarities, computed once, instead of the profiles:
    the APs must be those of copairs' own cosine on the profiles, value for value."""
    from copairs.map import average_precision

    names, groups, values, means = setup()
    rng = np.random.default_rng(1)
    preds = pd.concat([queries(f"m{i}", {p: 0.2 * m + rng.normal(0, 1, len(names)) for p, m in means.items()}, names)
                       for i in range(4)], ignore_index=True)
    per_query, _ = retrieval(preds, groups, values, names, null_size=50)
    meta = pd.concat([pd.DataFrame({"group": preds["pair"], "role": "query"}),
                      pd.DataFrame({"group": groups.to_numpy(str), "role": "reference"})], ignore_index=True)
    plain = average_precision(meta, np.vstack([preds[names].to_numpy(np.float64), values]), pos_sameby=["group"],
                              pos_diffby=["role"], neg_sameby=[], neg_diffby=["group", "role"], distance="cosine",
                              progress_bar=False)
    expected = plain.loc[plain["role"] == "query", "average_precision"].to_numpy()
    assert len(set(expected.round(6))) > 2  # the predictions are not all ranked alike
    np.testing.assert_array_equal(per_query["average_precision"].to_numpy(), expected)
