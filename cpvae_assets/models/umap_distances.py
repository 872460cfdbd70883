"""umap's euclidean kernel over every pair of rows, compiled by numba (generation QC's precomputed
distances). A module of its own: importing it imports umap, which takes seconds."""

import numba
import numpy as np
from umap.distances import euclidean


@numba.njit(fastmath=True)
def pairwise(x, y):
    out = np.empty((x.shape[0], y.shape[0]), dtype=x.dtype)
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = euclidean(x[i], y[j])
    return out
