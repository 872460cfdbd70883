"""The model tests' expensive fixtures, computed once for the whole ``models`` package (as they were
once per module when the model tests were one module): the data, one ``train_model`` run per model
type (TensorFlow trains each configuration once), and the two stack runs."""

from __future__ import annotations

import pytest

from cpvae_assets_tests.support.model_data import HIDDEN, LATENT, STACK_EPOCHS, Data, hp_for, low_rank


@pytest.fixture(scope="package")
def data() -> Data:
    x = low_rank()
    return Data(x[:360], x[360:420], x[420:])


@pytest.fixture(scope="package")
def trained(data: Data):
    """``trained(model_type)``: one ``train_model`` run per model type for the whole package."""
    from cpvae_assets.models.training import train_model

    cache = {}

    def get(model_type: str):
        if model_type not in cache:
            cache[model_type] = train_model(data.train, data.val, model_type, hp_for(model_type), seed=0, n_seeds=2)
        return cache[model_type]

    return get


@pytest.fixture(scope="package")
def stack_runs(data: Data) -> dict:
    """Member ``a`` alone and as the second member of a stack of two. ``b`` comes first (its seed would
    drive anything shared, e.g. noise or batch order) and differs in data, seed and objective (MMD),
    so only independence of the members makes ``a``'s history equal to its solo run."""
    from cpvae_assets.models.trainer import StackMember, train_stack

    other = low_rank(seed=5)
    a = StackMember("a", 0.3, 0.0, data.train, data.val, 1)
    b = StackMember("b", 0.0, 100.0, other[:360], other[360:420], 7)
    kwargs = dict(latent_dim=LATENT, hidden_dim=HIDDEN, learning_rate=3e-3, batch_size=32, encoder_batch_norm=True,
                  epochs=STACK_EPOCHS, patience=STACK_EPOCHS)
    return {"solo": train_stack([a], **kwargs), "ba": train_stack([b, a], **kwargs),
            "ba_chains": train_stack([b, a], chains=True, **kwargs), "x": data.train}
