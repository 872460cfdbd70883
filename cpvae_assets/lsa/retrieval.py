"""Retrieval of the real ``A|B`` profiles by each method's prediction, scored with copairs' mean
average precision (method.md, "Comparing methods": the profiling community's metric).

Query: a method's predicted ``A|B`` profile. Positives: the real profiles of the compounds annotated
``A|B``. Negatives: the profiles of every other compound (controls excluded; compounds outside the
MOA groups included: they are compounds a prediction could be mistaken for). Distance: cosine,
copairs' default, in the scaled feature space the predictions live in. copairs' null (random rank
lists of the same numbers of positives and negatives) gives a p per query and per method's mAP.

This replaces the hand-written retrieval rank of the real ``A|B`` mean among all group means (L2):
with one positive per query, copairs' AP is exactly 1 / that rank, so the rank measured nothing
copairs does not, while the profile-level AP also sees how spread the real ``A|B`` profiles are and
comes with a null.
"""

from __future__ import annotations

import tempfile

import numpy as np
import pandas as pd
from scipy import stats

DISTANCE = "cosine"
NULL_SIZE = 10_000
OTHER = "(no MOA group)"  # the group label of non-control profiles outside the kept MOA groups
AP_COLUMNS = ["method", "pair", "average_precision", "positives", "negatives", "ap_p", "ap_q", "distance"]
MAP_COLUMNS = ["method", "queries", "mean_average_precision", "map_p", "distance", "null_size"]


def references(splits: pd.DataFrame, group_of: pd.Series, feature_names: list[str]) -> tuple[pd.Series, np.ndarray]:
    """Every non-control profile with its MOA group (``OTHER`` outside the kept groups)."""
    keep = ~splits["is_control"].to_numpy(bool)
    groups = group_of[keep].fillna(OTHER).astype(str).reset_index(drop=True)
    return groups, splits.loc[keep, feature_names].to_numpy(np.float64)


def _cosine_lookup(queries: np.ndarray, references: np.ndarray):
    """copairs' cosine similarity of every query to every reference, computed once, as the callable
    copairs takes for its similarity, over features that are row numbers (queries first).

    copairs gathers both profiles of every pair it scores (queries x references x features: 6.6 GB of
    copies for 75 queries against 5,376 level-4 profiles, most of the arithmetic step's time). Here
    each query meets the references once, with copairs' own operations (rows scaled to unit norm, the
    products summed row by row), so the similarities, hence the ranks and APs, are the same."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1)[:, np.newaxis]

    q, r = unit(queries), unit(references)
    table = np.stack([np.sum(row * r, axis=1) for row in q])

    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # pairs join a query and a reference (their roles differ), in either order
        i, j = a[:, 0].astype(np.int64), b[:, 0].astype(np.int64)
        return table[np.minimum(i, j), np.maximum(i, j) - len(q)]

    return similarity


def _empty() -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.DataFrame(columns=AP_COLUMNS), pd.DataFrame(columns=MAP_COLUMNS)


def retrieval(predictions: pd.DataFrame, reference_groups: pd.Series, reference_values: np.ndarray,
              feature_names: list[str], null_size: int = NULL_SIZE, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AP per query (method x pair) and mAP per method, with copairs' permutation p-values.

    ``predictions``: one row per method x pair with the predicted profile in ``feature_names``
    (the ``lsa_predictions`` table). BH q-values of the per-query p are taken within a method."""
    from copairs import compute
    from copairs.map import average_precision, mean_average_precision

    if null_size < 1:
        raise ValueError(f"null_size must be at least 1, got {null_size}")
    queries = predictions[predictions["pair"].isin(set(reference_groups))]
    if queries.empty:
        return _empty()
    meta = pd.concat([pd.DataFrame({"method": queries["method"].to_numpy(str), "group": queries["pair"].to_numpy(str),
                                    "role": "query"}),
                      pd.DataFrame({"method": "", "group": reference_groups.to_numpy(str), "role": "reference"})],
                     ignore_index=True)
    similarity = _cosine_lookup(queries[feature_names].to_numpy(np.float64), reference_values)
    rows = np.arange(len(meta), dtype=np.float64)[:, np.newaxis]
    # positives: a query and a real profile of its A|B; negatives: a query and any other compound's
    # profile. Pairs within the references or within the queries are never formed (same role).
    ap = average_precision(meta, rows, pos_sameby=["group"], pos_diffby=["role"], neg_sameby=[],
                           neg_diffby=["group", "role"], distance=similarity, progress_bar=False)
    ap = ap[ap["role"] == "query"].reset_index(drop=True)
    # copairs caches null distributions in ~/.copairs keyed by configuration only, with seeds drawn
    # per call: a fresh cache per call keeps the p-values a function of the seed alone
    with tempfile.TemporaryDirectory() as cache:
        confs = ap[["n_pos_pairs", "n_total_pairs"]].to_numpy()
        unique, rev = np.unique(confs, axis=0, return_inverse=True)
        nulls = np.sort(compute.get_null_dists(unique, null_size, seed, cache_dir=cache, progress_bar=False), axis=1)
        scores = ap["average_precision"].to_numpy(np.float64)
        # copairs' p: share of null APs at least the observed one, (k + 1) / (n + 1)
        k = np.array([null_size - np.searchsorted(nulls[r], s) for r, s in zip(rev.ravel(), scores)])
        ap["ap_p"] = (k + 1) / (null_size + 1)
        maps = mean_average_precision(ap, ["method"], null_size=null_size, threshold=0.05, seed=seed,
                                      progress_bar=False, cache_dir=cache)
    ap["ap_q"] = ap.groupby("method")["ap_p"].transform(lambda p: stats.false_discovery_control(p.to_numpy(), method="bh"))
    per_query = pd.DataFrame({"method": ap["method"], "pair": ap["group"], "average_precision": scores,
                              "positives": ap["n_pos_pairs"].astype(int),
                              "negatives": (ap["n_total_pairs"] - ap["n_pos_pairs"]).astype(int),
                              "ap_p": ap["ap_p"], "ap_q": ap["ap_q"], "distance": DISTANCE})
    queries_per_method = per_query.groupby("method").size()
    per_method = pd.DataFrame({"method": maps["method"], "queries": maps["method"].map(queries_per_method).astype(int),
                               "mean_average_precision": maps["mean_average_precision"], "map_p": maps["p_value"],
                               "distance": DISTANCE, "null_size": null_size})
    return per_query, per_method.reset_index(drop=True)
