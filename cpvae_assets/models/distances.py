"""Distances between sets of profiles, shared by hyperparameter choice and generation QC."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import directed_hausdorff


def hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Hausdorff distance (scipy's directed distance, both ways)."""
    return max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0])
