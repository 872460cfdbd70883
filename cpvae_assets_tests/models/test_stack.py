"""The stacked trainer: a member trains as if alone, history and best epoch, compiled functions traced
once per layout, and the opt-in bfloat16 matmuls. Data and stack runs: ``models/conftest.py``."""

from __future__ import annotations

import numpy as np
import pytest

from cpvae_assets_tests.support.model_data import HIDDEN, LATENT, N_FEATURES, STACK_EPOCHS, Data, low_rank


def _curve(result, name: str, column: str) -> np.ndarray:
    return np.array([row[column] for row in result.history if row["model"] == name])


def test_stack_member_trains_as_if_alone(stack_runs: dict) -> None:
    solo, together, index = stack_runs["solo"], stack_runs["ba"], 1
    assert len(together.members) == 2 and together.members[index].name == "a"
    for column in ("val_loss", "loss", "val_reconstruction", "kl"):
        expected = _curve(solo, "a", column)
        assert len(expected) == STACK_EPOCHS
        np.testing.assert_allclose(_curve(together, "a", column), expected, rtol=1e-5, err_msg=column)
    assert together.best_epoch[index] == solo.best_epoch[0]
    assert together.best_val_loss[index] == pytest.approx(solo.best_val_loss[0], rel=1e-5)
    # batch norm subtracts the mean: the encoder bias has no effect and a gradient of rounding noise only,
    # which Adam's normalised steps turn into arbitrary values; it is compared inside the mean it shifts
    mine = {**together.weights, "bn_mean": together.weights["bn_mean"] - together.weights["enc_b"]}
    alone = {**solo.weights, "bn_mean": solo.weights["bn_mean"] - solo.weights["enc_b"]}
    for name, value in alone.items():
        if name != "enc_b":
            np.testing.assert_allclose(mine[name][index], value[0], rtol=1e-4, atol=1e-5, err_msg=name)
    # ... so it cannot change what the model computes: the encoder's output is the same without it
    w = {name: value[index] for name, value in together.weights.items()}
    x = stack_runs["x"]
    def normalised(bias):
        h = x @ w["enc_w"] + bias
        return (h - h.mean(0)) / np.sqrt(h.var(0) + 1e-3)
    np.testing.assert_allclose(normalised(w["enc_b"][0]), normalised(0.0), atol=1e-4)
    # the other member really is another model (different data, seed and objective)
    assert not np.allclose(_curve(together, "b", "val_loss"), _curve(solo, "a", "val_loss"))


def test_chains_train_the_same_models(stack_runs: dict) -> None:
    """One chain of ops per member (the layout of large trainings) trains ``a`` as its solo run does and
    ``b`` as the batched layout does, up to the rounding of a batched matmul."""
    from cpvae_assets.models.compiled import compiled_traces, use_chains

    chains, batched, solo = stack_runs["ba_chains"], stack_runs["ba"], stack_runs["solo"]
    assert any(sig.chains and sig.k == 2 for sig in compiled_traces())
    for column in ("loss", "val_loss", "kl", "reconstruction"):
        np.testing.assert_allclose(_curve(chains, "a", column), _curve(solo, "a", column), rtol=1e-6, err_msg=column)
    for column in ("loss", "val_loss", "kl", "mmd"):
        np.testing.assert_allclose(_curve(chains, "b", column), _curve(batched, "b", column), rtol=1e-4, err_msg=column)
    assert chains.best_epoch == batched.best_epoch
    def centred(weights: dict) -> dict:  # the encoder bias is rounding noise under batch norm, see above
        return {**weights, "bn_mean": weights["bn_mean"] - weights["enc_b"]}

    mine = centred(chains.weights)
    for name, value in centred(batched.weights).items():
        if name != "enc_b":
            np.testing.assert_allclose(mine[name], value, rtol=1e-3, atol=1e-4, err_msg=name)
    # the default: chains where the work pays for their longer tracing
    assert not use_chains(1, 10**6, 50) and not use_chains(4, 400, 20) and use_chains(4, 9_331, 20)


def test_stack_history_and_best_epoch(stack_runs: dict) -> None:
    result = stack_runs["ba"]
    assert result.epochs_run == STACK_EPOCHS
    assert len(result.history) == 2 * STACK_EPOCHS
    for j, member in enumerate(result.members):
        curve = _curve(result, member.name, "val_loss")
        assert np.isfinite(curve).all()
        assert result.best_val_loss[j] == pytest.approx(curve.min())
        assert result.best_epoch[j] == int(np.argmin(curve)) + 1
    assert _curve(result, "b", "mmd").max() > 0 and (_curve(result, "b", "kl") > 0).all()


def test_train_stack_traces_once_per_layout(data: Data, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled epoch functions are cached per layout (K, batch norm, MMD, dtype, chains): a call with
    other data, rows, batch size, learning rate, seed, loss weight, or other features, hidden units or
    latent dimensions builds no trainer and traces nothing (issue 4: each tuning trial paid the tracing;
    issue 15: so did each width of a trial and each dataset), and a reused trainer trains exactly as a
    fresh one."""
    from cpvae_assets.models import compiled
    from cpvae_assets.models.compiled import Signature, compiled_traces
    from cpvae_assets.models.trainer import StackMember, train_stack

    built: list[Signature] = []

    class Counted(compiled.Trainer):
        def __init__(self, sig: Signature):
            built.append(sig.layout)
            super().__init__(sig)

    monkeypatch.setattr(compiled, "Trainer", Counted)
    k = 3  # a layout no other test uses, so the first call below builds its trainer
    layout = Signature(k, 0, 0, 0, batch_norm=True, use_mmd=False, chains=False)
    wide = low_rank(n=300, f=N_FEATURES + 12, seed=9)

    def run(x: np.ndarray, val: np.ndarray, latent: int, hidden: int, seed: int = 1, **changes):
        members = [StackMember(f"m{j}", 0.3, 0.0, x, val, seed + j) for j in range(k)]
        kwargs = {"latent_dim": latent, "hidden_dim": hidden, "learning_rate": 3e-3, "batch_size": 32,
                  "encoder_batch_norm": True, "epochs": 2, "patience": 2, "chains": False} | changes
        return train_stack(members, **kwargs)

    first = run(data.train, data.val, LATENT, HIDDEN)
    assert built == [layout]
    traced = compiled_traces()[layout]
    assert traced == {"run_epoch": 1, "evaluate": 1, "calibrate": 1}
    # other widths (features, hidden, latent), rows, batch size, learning rate and seeds: the same trainer
    other = run(wide[:260], wide[260:], LATENT + 4, HIDDEN + 7, seed=4, learning_rate=1e-3, batch_size=40)
    assert other.weights["enc_w"].shape == (k, N_FEATURES + 12, HIDDEN + 7)
    assert other.weights["mean_w"].shape == (k, HIDDEN + 7, LATENT + 4)
    assert np.isfinite(other.best_val_loss).all()
    # back to the first widths on the trainer the other widths left: bit for bit the fresh trainer's run
    again = run(data.train, data.val, LATENT, HIDDEN)
    assert built == [layout], "same layout, other widths / data / rows / batch / lr / seed: no new trainer"
    assert compiled_traces()[layout] == traced
    for name, value in first.weights.items():
        assert np.array_equal(again.weights[name], value), name
    assert again.history == first.history
    run(data.train, data.val, LATENT, HIDDEN, chains=True)  # another layout: a trainer of its own
    assert built == [layout, Signature(k, 0, 0, 0, batch_norm=True, use_mmd=False, chains=True)]


def test_open_and_fixed_widths_train_the_same_models_bit_for_bit(data: Data) -> None:
    """Open widths (small work: tuning trials, small datasets) and fixed widths (large work, where shapes
    folded into the graph make each step cheaper) are two compilations of the same ops: the same models,
    bit for bit, also on an open trainer that other widths used before."""
    from cpvae_assets.models.compiled import OPEN_WIDTHS_MAX_STEPS, Signature, compiled_traces, use_open_widths
    from cpvae_assets.models.trainer import StackMember, train_stack

    other = low_rank(n=len(data.train) + len(data.val), seed=11)
    narrow = low_rank(n=200, f=N_FEATURES - 8, seed=12)
    kwargs = {"latent_dim": LATENT + 2, "hidden_dim": HIDDEN + 5, "learning_rate": 3e-3, "batch_size": 32,
              "encoder_batch_norm": True, "epochs": 3, "patience": 3}
    members = [StackMember("a", 0.0, 50.0, data.train, data.val, 3),
               StackMember("b", 0.0, 50.0, other[:len(data.train)], other[len(data.train):], 4)]
    # the open trainer of this layout first trains other widths
    train_stack([StackMember("w", 0.0, 50.0, narrow[:160], narrow[160:], 5)] * 2, open_widths=True,
                **kwargs | {"latent_dim": LATENT})
    opened, fixed = train_stack(members, open_widths=True, **kwargs), train_stack(members, open_widths=False, **kwargs)
    for name, value in opened.weights.items():
        assert np.array_equal(fixed.weights[name], value), name
    assert fixed.history == opened.history
    # a fixed-widths trainer is cached under its widths
    widths = Signature(2, N_FEATURES, HIDDEN + 5, LATENT + 2, batch_norm=True, use_mmd=True, open_widths=False)
    assert compiled_traces()[widths]["run_epoch"] == 1
    assert use_open_widths(4, 100) and not use_open_widths(4, OPEN_WIDTHS_MAX_STEPS // 4)


def test_bfloat16_matmuls_are_opt_in_and_close(data: Data) -> None:
    """``matmul_dtype='bfloat16'`` (a speed option, off in the pipeline) trains to nearly the same losses."""
    from cpvae_assets.models.trainer import StackMember, train_stack

    member = StackMember("a", 0.3, 0.0, data.train, data.val, 1)
    kwargs = {"latent_dim": LATENT, "hidden_dim": HIDDEN, "learning_rate": 3e-3, "batch_size": 32,
              "encoder_batch_norm": True, "epochs": 3, "patience": 3}
    full, half = train_stack([member], **kwargs), train_stack([member], **kwargs, matmul_dtype="bfloat16")
    np.testing.assert_allclose(_curve(half, "a", "val_loss"), _curve(full, "a", "val_loss"), rtol=0.02)
    assert not np.array_equal(half.weights["enc_w"], full.weights["enc_w"])
    with pytest.raises(ValueError, match="matmul_dtype 'float16'"):
        train_stack([member], **kwargs, matmul_dtype="float16")
